#include "kbs/verify/verifier.h"

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kbs/verify/tdx.h"

namespace cloak::kbs {
namespace {

absl::StatusOr<Bytes> ByteArray(const nlohmann::json& j, absl::string_view what,
                                size_t want_size) {
  if (!j.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": want an array of bytes"));
  }
  if (want_size != 0 && j.size() != want_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": want ", want_size, " bytes, got ", j.size()));
  }
  Bytes out;
  out.reserve(j.size());
  for (const auto& v : j) {
    if (!v.is_number_unsigned() || v.get<uint64_t>() > 255) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": element is not a byte (0..255)"));
    }
    out += static_cast<char>(v.get<uint64_t>());
  }
  return out;
}

// Bytes given as a JSON byte array or a standard base64 string.
absl::StatusOr<Bytes> FlexibleBytes(const nlohmann::json& j, absl::string_view what) {
  if (j.is_string()) {
    auto decoded = tee::Base64Decode(j.get<std::string>());
    if (!decoded.ok()) return Annotate(decoded.status(), what);
    return decoded;
  }
  return ByteArray(j, what, 0);
}

class SerdeReport {
 public:
  explicit SerdeReport(const nlohmann::json& j) : j_(j), raw_(kSnpReportSize, '\0') {}

  absl::Status Uint(const char* key, size_t off, size_t size, bool optional = false) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (optional) return absl::OkStatus();
      return Missing(key);
    }
    if (!it->is_number_unsigned()) return Bad(key, "an unsigned number");
    Put(off, size, it->get<uint64_t>());
    return absl::OkStatus();
  }
  absl::Status Array(const char* key, size_t off, size_t size) {
    auto it = j_.find(key);
    if (it == j_.end()) return Missing(key);
    ASSIGN_OR_RETURN(Bytes b, ByteArray(*it, absl::StrCat("attestation_report.", key), size));
    raw_.replace(off, size, b);
    return absl::OkStatus();
  }
  absl::Status Tcb(const char* key, size_t off) {
    auto it = j_.find(key);
    if (it == j_.end()) return Missing(key);
    if (it->is_number_unsigned()) {  // older sev crates: the raw u64
      Put(off, 8, it->get<uint64_t>());
      return absl::OkStatus();
    }
    if (!it->is_object()) return Bad(key, "a TCB object");
    auto part = [&](const char* name) -> absl::StatusOr<uint64_t> {
      auto p = it->find(name);
      if (p == it->end() || p->is_null()) return uint64_t{0};
      if (!p->is_number_unsigned() || p->get<uint64_t>() > 255) {
        return Bad(absl::StrCat(key, ".", name).c_str(), "a byte");
      }
      return p->get<uint64_t>();
    };
    ASSIGN_OR_RETURN(uint64_t fmc, part("fmc"));
    ASSIGN_OR_RETURN(uint64_t bl, part("bootloader"));
    ASSIGN_OR_RETURN(uint64_t tee, part("tee"));
    ASSIGN_OR_RETURN(uint64_t snp, part("snp"));
    ASSIGN_OR_RETURN(uint64_t uc, part("microcode"));
    auto f = it->find("fmc");
    bool turin = f != it->end() && !f->is_null();
    uint64_t v = turin ? (fmc | bl << 8 | tee << 16 | snp << 24 | uc << 56)
                       : (bl | tee << 8 | snp << 48 | uc << 56);
    Put(off, 8, v);
    return absl::OkStatus();
  }
  absl::Status Version(const char* key, size_t off) {
    auto it = j_.find(key);
    if (it == j_.end()) {
      // sev crates before 4: "<key>_build", "<key>_minor", "<key>_major".
      const char* names[] = {"build", "minor", "major"};
      for (size_t i = 0; i < 3; ++i) {
        std::string flat = absl::StrCat(key, "_", names[i]);
        auto p = j_.find(flat);
        if (p == j_.end()) return Missing(key);
        if (!p->is_number_unsigned() || p->get<uint64_t>() > 255) return Bad(flat.c_str(), "a byte");
        raw_[off + i] = static_cast<char>(p->get<uint64_t>());
      }
      return absl::OkStatus();
    }
    if (!it->is_object()) return Bad(key, "a {major,minor,build} object");
    const char* names[] = {"build", "minor", "major"};
    for (size_t i = 0; i < 3; ++i) {
      auto p = it->find(names[i]);
      if (p == it->end() || !p->is_number_unsigned() || p->get<uint64_t>() > 255) {
        return Bad(absl::StrCat(key, ".", names[i]).c_str(), "a byte");
      }
      raw_[off + i] = static_cast<char>(p->get<uint64_t>());
    }
    return absl::OkStatus();
  }
  absl::Status Signature() {
    auto it = j_.find("signature");
    if (it == j_.end()) return Missing("signature");
    if (!it->is_object() || !it->contains("r") || !it->contains("s")) {
      return Bad("signature", "an {r,s} object");
    }
    ASSIGN_OR_RETURN(Bytes r, ByteArray((*it)["r"], "attestation_report.signature.r", 72));
    ASSIGN_OR_RETURN(Bytes s, ByteArray((*it)["s"], "attestation_report.signature.s", 72));
    raw_.replace(0x2A0, 72, r);
    raw_.replace(0x2E8, 72, s);
    return absl::OkStatus();
  }
  Bytes Take() { return std::move(raw_); }

 private:
  void Put(size_t off, size_t size, uint64_t v) {
    for (size_t i = 0; i < size; ++i) raw_[off + i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
  static absl::Status Missing(const char* key) {
    return absl::InvalidArgumentError(
        absl::StrCat("attestation_report: field \"", key, "\" is missing"));
  }
  static absl::Status Bad(const char* key, const char* want) {
    return absl::InvalidArgumentError(
        absl::StrCat("attestation_report: field \"", key, "\" is not ", want));
  }
  const nlohmann::json& j_;
  Bytes raw_;
};

absl::StatusOr<Bytes> SnpReportFromSerde(const nlohmann::json& j) {
  SerdeReport r(j);
  RETURN_IF_ERROR(r.Uint("version", 0x000, 4));
  RETURN_IF_ERROR(r.Uint("guest_svn", 0x004, 4));
  RETURN_IF_ERROR(r.Uint("policy", 0x008, 8));
  RETURN_IF_ERROR(r.Array("family_id", 0x010, 16));
  RETURN_IF_ERROR(r.Array("image_id", 0x020, 16));
  RETURN_IF_ERROR(r.Uint("vmpl", 0x030, 4));
  RETURN_IF_ERROR(r.Uint("sig_algo", 0x034, 4));
  RETURN_IF_ERROR(r.Tcb("current_tcb", 0x038));
  RETURN_IF_ERROR(r.Uint("plat_info", 0x040, 8));
  RETURN_IF_ERROR(r.Uint("key_info", 0x048, 4, /*optional=*/true));
  // sev crates before 4 name KEY_INFO "_author_key_en" (the same u32).
  RETURN_IF_ERROR(r.Uint("_author_key_en", 0x048, 4, /*optional=*/true));
  RETURN_IF_ERROR(r.Array("report_data", 0x050, 64));
  RETURN_IF_ERROR(r.Array("measurement", 0x090, 48));
  RETURN_IF_ERROR(r.Array("host_data", 0x0C0, 32));
  RETURN_IF_ERROR(r.Array("id_key_digest", 0x0E0, 48));
  RETURN_IF_ERROR(r.Array("author_key_digest", 0x110, 48));
  RETURN_IF_ERROR(r.Array("report_id", 0x140, 32));
  RETURN_IF_ERROR(r.Array("report_id_ma", 0x160, 32));
  RETURN_IF_ERROR(r.Tcb("reported_tcb", 0x180));
  RETURN_IF_ERROR(r.Uint("cpuid_fam_id", 0x188, 1, true));
  RETURN_IF_ERROR(r.Uint("cpuid_mod_id", 0x189, 1, true));
  RETURN_IF_ERROR(r.Uint("cpuid_step", 0x18A, 1, true));
  RETURN_IF_ERROR(r.Array("chip_id", 0x1A0, 64));
  RETURN_IF_ERROR(r.Tcb("committed_tcb", 0x1E0));
  RETURN_IF_ERROR(r.Version("current", 0x1E8));
  RETURN_IF_ERROR(r.Version("committed", 0x1EC));
  RETURN_IF_ERROR(r.Tcb("launch_tcb", 0x1F0));
  RETURN_IF_ERROR(r.Uint("launch_mit_vector", 0x1F8, 8, true));
  RETURN_IF_ERROR(r.Uint("current_mit_vector", 0x200, 8, true));
  RETURN_IF_ERROR(r.Signature());
  return r.Take();
}

// The entries of SNP evidence's "cert_chain": [{"cert_type", "data"}], data
// as base64 or a byte array. Entries whose cert_type is not a string (the
// sev crate's {"OTHER": "<guid>"}) are skipped.
absl::StatusOr<std::vector<std::pair<std::string, Bytes>>> SnpCertChainEntries(
    const nlohmann::json& evidence) {
  std::vector<std::pair<std::string, Bytes>> out;
  auto chain = evidence.find("cert_chain");
  if (chain == evidence.end() || chain->is_null()) return out;
  if (!chain->is_array()) {
    return absl::InvalidArgumentError("snp evidence: \"cert_chain\" is not an array");
  }
  for (const auto& entry : *chain) {
    if (!entry.is_object() || !entry.contains("cert_type") || !entry.contains("data")) {
      return absl::InvalidArgumentError(
          "snp evidence: cert_chain entries want {\"cert_type\",\"data\"}");
    }
    if (!entry["cert_type"].is_string()) continue;
    std::string type = entry["cert_type"].get<std::string>();
    ASSIGN_OR_RETURN(Bytes data,
                     FlexibleBytes(entry["data"], absl::StrCat("snp evidence: ", type, " data")));
    out.emplace_back(std::move(type), std::move(data));
  }
  return out;
}

class SnpVerifier final : public Verifier {
 public:
  explicit SnpVerifier(const VerifierConfig& config) : config_(config) {}

  absl::StatusOr<Claims> Verify(const nlohmann::json& evidence,
                                absl::string_view binding) const override {
    if (!evidence.is_object() || !evidence.contains("attestation_report")) {
      return absl::InvalidArgumentError("snp evidence: want an object with \"attestation_report\"");
    }
    ASSIGN_OR_RETURN(Bytes raw, SnpReportFromJson(evidence["attestation_report"]));
    ASSIGN_OR_RETURN(SnpReport report, ParseSnpReport(raw));
    ASSIGN_OR_RETURN(SnpSigningKey kind, SnpReportSigningKey(report));
    ASSIGN_OR_RETURN(auto entries, SnpCertChainEntries(evidence));
    ASSIGN_OR_RETURN(Bytes key, FindEndorsementKey(entries, report, kind));
    ASSIGN_OR_RETURN(X509Ptr key_cert, ParseCertificate(key, SnpSigningKeyName(kind)));
    ASSIGN_OR_RETURN(SnpProduct product, SnpEndorsementKeyProduct(key_cert.get(), kind));
    ASSIGN_OR_RETURN(SnpTrustAnchors anchors, LoadAnchors(product, kind, entries));
    SnpVerifyOptions options;
    ASSIGN_OR_RETURN(options.expected_report_data, PadReportData(binding));
    options.min_tcb = config_.snp_min_tcb;
    options.allow_unpinned_root = config_.allow_unpinned_root;
    // The claims say whether the guest is debuggable; each resource's
    // key-release policy decides (and refuses by default).
    options.reference.allow_debug = true;
    return VerifySnpAttestation(raw, key, anchors, options);
  }

 private:
  // The VCEK or VLEK the report's KEY_INFO names. When the chain carries only
  // the other kind, that one is returned so the check refuses it by name.
  absl::StatusOr<Bytes> FindEndorsementKey(
      const std::vector<std::pair<std::string, Bytes>>& entries, const SnpReport& report,
      SnpSigningKey kind) const {
    const std::string want(SnpSigningKeyName(kind));
    const std::string other(
        SnpSigningKeyName(kind == SnpSigningKey::kVcek ? SnpSigningKey::kVlek : SnpSigningKey::kVcek));
    for (const auto& [type, data] : entries) {
      if (type == want) return data;
    }
    for (const auto& [type, data] : entries) {
      if (type == other) return data;
    }
    if (kind == SnpSigningKey::kVcek && !config_.snp_certs_dir.empty()) {
      std::string hwid = tee::HexEncode(report.chip_id);
      std::string tcb = tee::HexEncode(absl::string_view(
          reinterpret_cast<const char*>(&report.reported_tcb), sizeof(report.reported_tcb)));
      for (const std::string& id : {hwid, hwid.substr(0, 16)}) {
        std::string path = absl::StrCat(config_.snp_certs_dir, "/vcek/", id, "_", tcb, ".der");
        if (std::filesystem::exists(path)) return ReadFile(path);
      }
    }
    if (kind == SnpSigningKey::kVlek) {
      return absl::FailedPreconditionError(
          "snp evidence: the report is signed by a VLEK (KEY_INFO) but cert_chain carries no "
          "VLEK certificate; the host must supply it with the extended report");
    }
    return absl::FailedPreconditionError(
        "snp evidence carries no VCEK in cert_chain and none is cached under "
        "<snp-certs-dir>/vcek/<chip id hex>_<reported tcb hex>.der; fetch it from AMD KDS");
  }

  // ARK from the configured directory only (the root is what is trusted);
  // the ASK / ASVK from there, or else from the evidence (it is checked
  // against the ARK either way).
  absl::StatusOr<SnpTrustAnchors> LoadAnchors(
      SnpProduct product, SnpSigningKey kind,
      const std::vector<std::pair<std::string, Bytes>>& entries) const {
    if (config_.snp_certs_dir.empty()) {
      return absl::FailedPreconditionError(
          "SEV-SNP evidence refused: no AMD certificate directory (ARK/ASK) is configured");
    }
    std::string name = absl::AsciiStrToLower(SnpProductName(product));
    const std::string inter = kind == SnpSigningKey::kVlek ? "asvk" : "ask";
    SnpTrustAnchors anchors;
    auto ark = ReadFile(absl::StrCat(config_.snp_certs_dir, "/", name, "_ark.pem"));
    if (!ark.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("SEV-SNP ", SnpProductName(product), " evidence refused: AMD's ", name,
                       "_ark.pem is not in ", config_.snp_certs_dir, ": ", ark.status().message()));
    }
    anchors.ark = *std::move(ark);
    std::string& slot = kind == SnpSigningKey::kVlek ? anchors.asvk : anchors.ask;
    auto configured = ReadFile(absl::StrCat(config_.snp_certs_dir, "/", name, "_", inter, ".pem"));
    if (configured.ok()) {
      slot = *std::move(configured);
      return anchors;
    }
    // From the evidence: "ASK", or for a VLEK "ASVK" (hosts put the ASVK in
    // the ASK slot of the certificate table, too).
    for (const auto& [type, data] : entries) {
      if (type == "ASK" || (kind == SnpSigningKey::kVlek && type == "ASVK")) {
        auto cert = ParseCertificate(data, type);
        if (!cert.ok()) continue;
        bool vlek_issuer = SubjectCommonName(cert->get()).rfind("SEV-VLEK-", 0) == 0;
        if (vlek_issuer == (kind == SnpSigningKey::kVlek)) {
          slot = data;
          return anchors;
        }
      }
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "SEV-SNP ", SnpProductName(product), " evidence refused: AMD's ", name, "_", inter,
        ".pem is not in ", config_.snp_certs_dir, " and the evidence's cert_chain carries no ",
        SnpIntermediateName(kind), ": ", configured.status().message()));
  }

  VerifierConfig config_;
};

class TdxVerifier final : public Verifier {
 public:
  TdxVerifier(std::optional<TdxCollateral> collateral, bool allow_unverified)
      : collateral_(std::move(collateral)), allow_unverified_(allow_unverified) {}

  absl::StatusOr<Claims> Verify(const nlohmann::json& evidence,
                                absl::string_view binding) const override {
    if (!evidence.is_object() || !evidence.contains("quote") || !evidence["quote"].is_string()) {
      return absl::InvalidArgumentError(
          "tdx evidence: want an object with \"quote\" (standard base64)");
    }
    auto quote = tee::Base64Decode(evidence["quote"].get<std::string>());
    if (!quote.ok()) return Annotate(quote.status(), "tdx evidence quote");
    TdxVerifyOptions options;
    ASSIGN_OR_RETURN(options.expected_report_data, PadReportData(binding));
    options.collateral = collateral_;
    options.allow_unverified = allow_unverified_;
    options.reference.allow_debug = true;  // left to the key-release policy
    return VerifyTdxAttestation(*quote, options);
  }

 private:
  std::optional<TdxCollateral> collateral_;
  bool allow_unverified_;
};

class SampleVerifier final : public Verifier {
 public:
  absl::StatusOr<Claims> Verify(const nlohmann::json& evidence,
                                absl::string_view binding) const override {
    return VerifySampleEvidence(evidence, binding);
  }
};

}  // namespace

absl::StatusOr<Bytes> PadReportData(absl::string_view binding) {
  if (binding.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("runtime-data digest of ", binding.size(), " bytes exceeds 64"));
  }
  Bytes out(binding);
  out.resize(64, '\0');
  return out;
}

absl::StatusOr<Bytes> SnpReportFromJson(const nlohmann::json& report) {
  if (report.is_string()) {
    auto raw = tee::Base64Decode(report.get<std::string>());
    if (!raw.ok()) return Annotate(raw.status(), "snp attestation_report");
    return raw;
  }
  if (report.is_array()) return ByteArray(report, "snp attestation_report", kSnpReportSize);
  if (report.is_object()) return SnpReportFromSerde(report);
  return absl::InvalidArgumentError(
      "snp attestation_report: want base64, a byte array or the sev crate's object form");
}

absl::StatusOr<Claims> VerifySampleEvidence(const nlohmann::json& evidence,
                                            absl::string_view binding) {
  if (!evidence.is_object() || !evidence.contains("report_data") ||
      !evidence["report_data"].is_string()) {
    return absl::InvalidArgumentError(
        "sample evidence: want {\"svn\":..., \"report_data\":\"<base64>\"}");
  }
  auto rd = tee::Base64Decode(evidence["report_data"].get<std::string>());
  if (!rd.ok()) return Annotate(rd.status(), "sample evidence report_data");
  if (!tee::SecureEquals(*rd, binding)) {
    return absl::PermissionDeniedError(
        "sample evidence report_data does not match the runtime-data digest (evidence made for "
        "another nonce or key)");
  }
  Claims claims;
  claims.tee = kTeeSample;
  claims.report_data = *rd;
  if (auto it = evidence.find("init_data"); it != evidence.end() && !it->is_null()) {
    if (!it->is_string() || !tee::HexDecode(it->get<std::string>()).ok()) {
      return absl::InvalidArgumentError("sample evidence init_data: want a hex digest");
    }
    claims.init_data_digest = absl::AsciiStrToLower(it->get<std::string>());
  }
  std::string svn = "?";
  if (auto it = evidence.find("svn"); it != evidence.end() && it->is_string()) {
    svn = it->get<std::string>();
  }
  claims.detail = absl::StrCat("sample evidence (no TEE), svn ", svn);
  return claims;
}

absl::StatusOr<std::unique_ptr<Verifier>> CreateVerifier(absl::string_view tee,
                                                         const VerifierConfig& config) {
  if (tee == kTeeSnp) return std::make_unique<SnpVerifier>(config);
  if (tee == kTeeTdx) {
    std::optional<TdxCollateral> collateral;
    if (!config.tdx_root_ca_file.empty()) {
      ASSIGN_OR_RETURN(std::string root, ReadFile(config.tdx_root_ca_file));
      ASSIGN_OR_RETURN(X509Ptr parsed, ParseCertificate(root, "Intel SGX root CA"));
      collateral = TdxCollateral{.root_ca = std::move(root),
                                 .allow_unpinned_root = config.allow_unpinned_root};
      if (!config.tdx_collateral_dir.empty()) {
        ASSIGN_OR_RETURN(collateral->tcb, LoadTdxTcbCollateral(config.tdx_collateral_dir));
      }
    } else if (!config.tdx_collateral_dir.empty()) {
      return absl::InvalidArgumentError(
          "TDX collateral is configured without the Intel SGX Root CA (--tdx-root-ca) it chains "
          "to");
    }
    return std::make_unique<TdxVerifier>(std::move(collateral), config.tdx_allow_unverified);
  }
  if (tee == kTeeSample) return std::make_unique<SampleVerifier>();
  return absl::UnimplementedError(
      absl::StrCat("no verifier for TEE \"", tee, "\" (supported: snp, tdx, sample)"));
}

}  // namespace cloak::kbs
