// Attesters: evidence of what this guest is, bound to the KBS session
// (docs/formats.md: "Report-data binding", "Evidence",
// "Getting evidence in the guest"). The TEE is detected from the guest's own
// devices, never configured by the host:
//   snp    — configfs-tsm (provider sev_guest), else /dev/sev-guest SNP_GET_REPORT;
//   tdx    — configfs-tsm (provider tdx_guest): a TD quote;
//   sample — no TEE (development): cloak-kbs's sample evidence.
// For snp and tdx the attester checks the report it got back: REPORT_DATA is
// what it asked for, and HOST_DATA (snp) / MRCONFIGID (tdx) equals the
// init-data digest (zero-padded or truncated) — otherwise the init-data the
// host handed over is not the one the TEE measured and the guest refuses.
#ifndef CLOAK_AGENT_ATTEST_ATTESTER_H_
#define CLOAK_AGENT_ATTEST_ATTESTER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cloak::agent::attest {

inline constexpr char kTsmReportDir[] = "/sys/kernel/config/tsm/report";
inline constexpr char kSevGuestDevice[] = "/dev/sev-guest";
inline constexpr char kTdxGuestDevice[] = "/dev/tdx_guest";

struct AttesterOptions {
  std::string tsm_report_dir = kTsmReportDir;
  std::string sev_guest_device = kSevGuestDevice;
  std::string tdx_guest_device = kTdxGuestDevice;
  // Development: the simulated SNP security processor the shim may offer
  // as a virtio-serial port (shim/simsp, docs/simulated-snp.md), found by
  // name under `virtio_ports_sysfs` and opened as <dev_root>/<vportXpY>.
  // Used only when neither configfs-tsm nor /dev/sev-guest is there.
  std::string virtio_ports_sysfs = "/sys/class/virtio-ports";
  std::string dev_root = "/dev";
  std::string simulated_sp_port = "cloak.sp";
  // Raw digest of the init-data the guest holds (InitData::digest).
  std::string initdata_digest;
  // Test seams standing in for the kernel behind a fake configfs-tsm
  // directory: called after the agent made a report entry, and after it
  // wrote `inblob` (a fake then writes provider / outblob / generation).
  std::function<void(const std::string& entry)> tsm_after_mkdir;
  std::function<void(const std::string& entry)> tsm_after_inblob;
};

class Attester {
 public:
  virtual ~Attester() = default;
  // "snp", "tdx" or "sample" (the KBS `tee` name).
  virtual std::string tee() const = 0;
  // The primary evidence for `runtime_digest`, the 48-byte SHA-384 of the
  // runtime data (RuntimeDataDigest). FailedPrecondition when the report's
  // init-data field does not match; Unavailable when the device fails.
  virtual absl::StatusOr<nlohmann::json> GetEvidence(absl::string_view runtime_digest) = 0;
};

// Picks snp, tdx or sample from what the guest has (see above).
// FailedPrecondition for a TEE this agent cannot get evidence from (TDX
// without configfs-tsm).
absl::StatusOr<std::unique_ptr<Attester>> DetectAttester(const AttesterOptions& options);

// Explicit choice ("snp" via configfs-tsm or the device, "tdx", "sample").
absl::StatusOr<std::unique_ptr<Attester>> CreateAttester(absl::string_view tee,
                                                         const AttesterOptions& options);

// The report-data binding (tee::RuntimeDataDigest) and the report and quote
// parsers (tee::ParseSnpReport, tee::ParseTdxQuote) live in common/tee.

// The report inside a MSG_REPORT_RSP (the /dev/sev-guest response buffer).
absl::StatusOr<std::string> ParseSnpReportResponse(absl::string_view response);
// The SNP certificate table (auxblob / extended report) as evidence's
// cert_chain in Trustee's form (the sev crate's CertTableEntry), which
// cloak-kbs takes too: [{"cert_type":"VCEK"|"VLEK"|"ASK"|"ARK"|"CRL",
// "data":[<bytes>]}].
nlohmann::json SnpCertChain(absl::string_view table);

}  // namespace cloak::agent::attest

#endif  // CLOAK_AGENT_ATTEST_ATTESTER_H_
