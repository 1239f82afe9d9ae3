#include "agent/attest/attester.h"

#include <fcntl.h>
#include <linux/sev-guest.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/tee/sp_protocol.h"
#include "common/status_macros.h"
#include "common/tee/bytes.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "common/tee/initdata.h"
#include "common/tee/report_data.h"
#include "common/tee/snp_report.h"
#include "common/tee/snp_report_json.h"
#include "common/tee/tdx_quote.h"
#include "common/transport/virtio_port.h"

namespace cloak::agent::attest {
namespace {

// The device of the simulated SNP SP's virtio-serial port, if the shim
// offers one.
absl::StatusOr<std::string> SimulatedSpDevice(const AttesterOptions& options) {
  ASSIGN_OR_RETURN(std::string port, transport::FindVirtioPort(options.virtio_ports_sysfs,
                                                               options.simulated_sp_port));
  return absl::StrCat(options.dev_root, "/", port);
}

using tee::Le32;

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError(errno, "read ", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status WriteAll(const std::string& path, absl::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_CREAT, 0600);
  if (fd < 0) return ErrnoError(errno, "open ", path);
  ssize_t n = ::write(fd, data.data(), data.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(data.size())) return ErrnoError(n < 0 ? err : EIO, "write ", path);
  return absl::OkStatus();
}

struct TsmOutput {
  std::string provider;
  std::string outblob;
  std::string auxblob;
};

// One configfs-tsm report (docs/formats.md, "Getting evidence in the guest"): mkdir an entry, write
// inblob, read outblob, check `generation` for racing writers, rmdir.
absl::StatusOr<TsmOutput> TsmReport(const AttesterOptions& options, absl::string_view inblob,
                                    bool probe_only) {
  static std::atomic<int> counter{0};
  std::string entry =
      absl::StrCat(options.tsm_report_dir, "/cloak-", ::getpid(), "-", counter.fetch_add(1));
  if (::mkdir(entry.c_str(), 0700) != 0) {
    return ErrnoError(errno, "configfs-tsm: mkdir ", entry);
  }
  struct Remove {
    std::string path;
    ~Remove() {
      if (::rmdir(path.c_str()) != 0 && errno == ENOTEMPTY) {
        std::error_code ec;  // a fake configfs in tests: plain files
        std::filesystem::remove_all(path, ec);
      }
    }
  } remove{entry};
  if (options.tsm_after_mkdir) options.tsm_after_mkdir(entry);
  TsmOutput out;
  ASSIGN_OR_RETURN(out.provider, ReadAll(entry + "/provider"));
  out.provider = std::string(absl::StripAsciiWhitespace(out.provider));
  if (probe_only) return out;
  int writes = 0;
  if (out.provider == "sev_guest") {
    // Under an SVSM the guest runs above VMPL0: ask at the floor.
    absl::StatusOr<std::string> floor = ReadAll(entry + "/privlevel_floor");
    int level = 0;
    if (floor.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*floor), &level) && level > 0) {
      RETURN_IF_ERROR(WriteAll(entry + "/privlevel", absl::StrCat(level)));
      ++writes;
    }
  }
  RETURN_IF_ERROR(WriteAll(entry + "/inblob", inblob));
  ++writes;
  if (options.tsm_after_inblob) options.tsm_after_inblob(entry);
  absl::StatusOr<std::string> outblob = ReadAll(entry + "/outblob");
  if (!outblob.ok()) return Annotate(outblob.status(), "configfs-tsm: the TEE gave no report");
  out.outblob = std::move(*outblob);
  if (absl::StatusOr<std::string> aux = ReadAll(entry + "/auxblob"); aux.ok()) {
    out.auxblob = std::move(*aux);
  }
  ASSIGN_OR_RETURN(std::string generation, ReadAll(entry + "/generation"));
  int gen = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(generation), &gen) || gen != writes) {
    return absl::AbortedError(absl::StrCat("configfs-tsm: generation is ",
                                           absl::StripAsciiWhitespace(generation), ", expected ",
                                           writes, ": another writer raced on ", entry));
  }
  return out;
}

// `reported` / `init_data`: the report's REPORT_DATA and its init-data field
// (SNP HOST_DATA, TDX MRCONFIGID).
absl::Status CheckReport(absl::string_view reported, absl::string_view init_data,
                         absl::string_view report_data, absl::string_view initdata_digest,
                         absl::string_view tee, absl::string_view field_name) {
  if (!tee::SecureEquals(reported, report_data)) {
    return absl::FailedPreconditionError(absl::StrCat(
        tee, " report: REPORT_DATA is not the runtime-data digest the guest asked for"));
  }
  std::string want = tee::DigestForField(initdata_digest, init_data.size());
  if (!tee::SecureEquals(init_data, want)) {
    return absl::FailedPreconditionError(
        absl::StrCat(tee, " report: ", field_name, " ", tee::HexEncode(init_data),
                     " is not the digest of the init-data the host passed (", tee::HexEncode(want),
                     "): the host handed over init-data other than the one launched; refusing it"));
  }
  return absl::OkStatus();
}

class SampleAttester final : public Attester {
 public:
  explicit SampleAttester(std::string initdata_digest)
      : initdata_digest_(std::move(initdata_digest)) {}
  std::string tee() const override { return "sample"; }
  absl::StatusOr<nlohmann::json> GetEvidence(absl::string_view runtime_digest) override {
    nlohmann::json ev{{"svn", "1"}, {"report_data", tee::Base64Encode(runtime_digest)}};
    if (!initdata_digest_.empty()) ev["init_data"] = tee::HexEncode(initdata_digest_);
    return ev;
  }

 private:
  std::string initdata_digest_;
};

class SnpAttester final : public Attester {
 public:
  enum class Source { kTsm, kDevice, kSimulated };
  SnpAttester(AttesterOptions options, Source source)
      : options_(std::move(options)), source_(source) {}
  std::string tee() const override { return "snp"; }

  absl::StatusOr<nlohmann::json> GetEvidence(absl::string_view runtime_digest) override {
    std::string report_data = tee::ReportData64(runtime_digest);
    std::string report;
    nlohmann::json chain = nullptr;
    if (source_ == Source::kSimulated) {
      ASSIGN_OR_RETURN(std::string device, SimulatedSpDevice(options_));
      int fd = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) return ErrnoError(errno, "open the simulated SNP SP port ", device);
      absl::StatusOr<simsp::SpResponse> answer = simsp::RequestReport(fd, report_data);
      ::close(fd);
      if (!answer.ok()) return Annotate(answer.status(), "simulated SNP SP");
      report = std::move(answer->report);
      if (!answer->vcek_der.empty()) {
        chain = nlohmann::json::array(
            {{{"cert_type", "VCEK"}, {"data", tee::JsonByteArrayOf(answer->vcek_der)}}});
      }
    } else if (source_ == Source::kTsm) {
      ASSIGN_OR_RETURN(TsmOutput out, TsmReport(options_, report_data, false));
      if (out.provider != "sev_guest") {
        return absl::FailedPreconditionError(
            absl::StrCat("configfs-tsm provider is \"", out.provider, "\", not sev_guest"));
      }
      report = std::move(out.outblob);
      if (!out.auxblob.empty()) chain = SnpCertChain(out.auxblob);
    } else {
      ASSIGN_OR_RETURN(report, DeviceReport(report_data));
    }
    ASSIGN_OR_RETURN(tee::SnpReport parsed, tee::ParseSnpReport(report));
    RETURN_IF_ERROR(CheckReport(parsed.report_data, parsed.host_data, report_data,
                                options_.initdata_digest, "snp", "HOST_DATA"));
    // Trustee's form (its attester serializes the sev crate's objects), which
    // both a Trustee KBS and cloak-kbs take (docs/formats.md, "Evidence").
    return nlohmann::json{{"attestation_report", tee::SnpReportToSevJson(report)},
                          {"cert_chain", chain}};
  }

 private:
  absl::StatusOr<std::string> DeviceReport(absl::string_view report_data) {
    int fd = ::open(options_.sev_guest_device.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, "open ", options_.sev_guest_device);
    snp_report_req req{};
    std::memcpy(req.user_data, report_data.data(), 64);
    snp_report_resp resp{};
    snp_guest_request_ioctl io{};
    io.msg_version = 1;
    io.req_data = reinterpret_cast<uintptr_t>(&req);
    io.resp_data = reinterpret_cast<uintptr_t>(&resp);
    int rc = ::ioctl(fd, SNP_GET_REPORT, &io);
    int err = errno;
    ::close(fd);
    if (rc != 0) {
      return ErrnoError(err, "SNP_GET_REPORT on ", options_.sev_guest_device,
                        " (exitinfo2 0x", absl::Hex(io.exitinfo2), ")");
    }
    return ParseSnpReportResponse(
        absl::string_view(reinterpret_cast<const char*>(resp.data), sizeof(resp.data)));
  }

  AttesterOptions options_;
  Source source_;
};

class TdxAttester final : public Attester {
 public:
  explicit TdxAttester(AttesterOptions options) : options_(std::move(options)) {}
  std::string tee() const override { return "tdx"; }
  absl::StatusOr<nlohmann::json> GetEvidence(absl::string_view runtime_digest) override {
    std::string report_data = tee::ReportData64(runtime_digest);
    ASSIGN_OR_RETURN(TsmOutput out, TsmReport(options_, report_data, false));
    if (out.provider != "tdx_guest") {
      return absl::FailedPreconditionError(
          absl::StrCat("configfs-tsm provider is \"", out.provider, "\", not tdx_guest"));
    }
    ASSIGN_OR_RETURN(tee::TdxQuote quote, tee::ParseTdxQuote(out.outblob));
    RETURN_IF_ERROR(CheckReport(quote.report_data, quote.mrconfigid, report_data,
                                options_.initdata_digest, "tdx", "MRCONFIGID"));
    return nlohmann::json{{"cc_eventlog", nullptr}, {"quote", tee::Base64Encode(out.outblob)}};
  }

 private:
  AttesterOptions options_;
};

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

absl::StatusOr<std::string> ParseSnpReportResponse(absl::string_view response) {
  if (response.size() < 0x20 + tee::kSnpReportSize) {
    return absl::InvalidArgumentError("SNP report response too short");
  }
  uint32_t status = Le32(response, 0);
  if (status != 0) {
    return absl::UnavailableError(
        absl::StrCat("SNP firmware refused the report request: status 0x", absl::Hex(status)));
  }
  uint32_t size = Le32(response, 4);
  if (size < tee::kSnpReportSize || size > response.size() - 0x20) {
    return absl::InvalidArgumentError(absl::StrCat("SNP report response: report_size ", size));
  }
  return std::string(response.substr(0x20, size));
}

nlohmann::json SnpCertChain(absl::string_view table) {
  // GUIDs as the table stores them (RFC 4122 byte order).
  static const std::pair<const char*, const char*> kGuids[] = {
      {"63da758de6644564adc5f4b93be8accd", "VCEK"}, {"a8074bc2a25a483eaae639c045a0b8a1", "VLEK"},
      {"4ab7b379bbac4fe4a02f05aef327c782", "ASK"},  {"c0b406a4a803495297433fb6014cd0ae", "ARK"},
      {"92f81bc358114d3d97ffd19f88dc67ea", "CRL"}};
  nlohmann::json chain = nlohmann::json::array();
  for (size_t off = 0; off + 24 <= table.size(); off += 24) {
    absl::string_view guid = table.substr(off, 16);
    if (guid.find_first_not_of('\0') == absl::string_view::npos) break;
    uint32_t cert_off = Le32(table, off + 16), cert_len = Le32(table, off + 20);
    if (cert_off > table.size() || cert_len > table.size() - cert_off) continue;
    std::string hex = tee::HexEncode(guid);
    for (const auto& [want, name] : kGuids) {
      if (hex == want) {
        chain.push_back(
            {{"cert_type", name}, {"data", tee::JsonByteArrayOf(table.substr(cert_off, cert_len))}});
      }
    }
  }
  return chain;
}

absl::StatusOr<std::unique_ptr<Attester>> CreateAttester(absl::string_view tee,
                                                         const AttesterOptions& options) {
  if (tee == "sample") return std::make_unique<SampleAttester>(options.initdata_digest);
  if (tee == "snp") {
    return std::make_unique<SnpAttester>(options, Exists(options.tsm_report_dir)
                                                      ? SnpAttester::Source::kTsm
                                                      : SnpAttester::Source::kDevice);
  }
  if (tee == "tdx") return std::make_unique<TdxAttester>(options);
  return absl::InvalidArgumentError(absl::StrCat("unknown TEE \"", tee, "\""));
}

absl::StatusOr<std::unique_ptr<Attester>> DetectAttester(const AttesterOptions& options) {
  auto log = Logger("attest");
  if (Exists(options.tsm_report_dir)) {
    absl::StatusOr<TsmOutput> probe = TsmReport(options, "", /*probe_only=*/true);
    if (probe.ok() && probe->provider == "sev_guest") {
      log->info("tee=snp (configfs-tsm {})", options.tsm_report_dir);
      return std::make_unique<SnpAttester>(options, SnpAttester::Source::kTsm);
    }
    if (probe.ok() && probe->provider == "tdx_guest") {
      log->info("tee=tdx (configfs-tsm {})", options.tsm_report_dir);
      return std::make_unique<TdxAttester>(options);
    }
    log->warn("configfs-tsm at {} unusable ({}); looking for devices", options.tsm_report_dir,
              probe.ok() ? absl::StrCat("provider \"", probe->provider, "\"")
                         : std::string(probe.status().message()));
  }
  if (Exists(options.sev_guest_device)) {
    log->info("tee=snp ({} ioctl)", options.sev_guest_device);
    return std::make_unique<SnpAttester>(options, SnpAttester::Source::kDevice);
  }
  if (Exists(options.tdx_guest_device)) {
    return absl::FailedPreconditionError(
        absl::StrCat("this is a TDX guest (", options.tdx_guest_device,
                     ") without configfs-tsm at ", options.tsm_report_dir,
                     ": a remotely verifiable quote needs configfs-tsm (Linux >= 6.7)"));
  }
  if (SimulatedSpDevice(options).ok()) {
    log->warn("tee=snp from the SIMULATED SNP security processor on port {} (development only: "
              "a key broker accepts it only if it trusts the simulator's TEST chain)",
              options.simulated_sp_port);
    return std::make_unique<SnpAttester>(options, SnpAttester::Source::kSimulated);
  }
  log->warn("tee=sample: no SNP or TDX guest device found (development fallback)");
  return std::make_unique<SampleAttester>(options.initdata_digest);
}

}  // namespace cloak::agent::attest
