#include "kbs/verify/verifier.h"

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tee/snp_report_json.h"
#include "kbs/verify/tdx.h"

namespace cloak::kbs {
namespace {

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
                     tee::JsonBytes(entry["data"], absl::StrCat("snp evidence: ", type, " data")));
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
