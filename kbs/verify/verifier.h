// Verifier: checks one TEE's evidence in the JSON form the Trustee protocol
// carries it (docs/formats.md, "Evidence") and returns its claims. Chosen by TEE name.
#ifndef CLOAK_KBS_VERIFY_VERIFIER_H_
#define CLOAK_KBS_VERIFY_VERIFIER_H_

#include <memory>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "common/tee/snp_report_json.h"
#include "kbs/verify/claims.h"
#include "kbs/verify/snp.h"
#include "nlohmann/json.hpp"

namespace cloak::kbs {

struct VerifierConfig {
  // Directory with AMD's anchors named <product>_ark.pem and <product>_ask.pem
  // (product: milan, genoa, turin), and optionally cached VCEKs as
  // vcek/<hwid hex>_<REPORTED_TCB as 16 hex digits>.der. Empty: SNP refused.
  std::string snp_certs_dir;
  // Minimum REPORTED_TCB for SNP evidence (unset: not checked).
  std::optional<SnpTcb> snp_min_tcb;
  // Intel SGX Root CA (PEM/DER file) for TDX quote chains. Empty: TDX quotes
  // are refused unless tdx_allow_unverified.
  std::string tdx_root_ca_file;
  // Directory of Intel PCS collateral for TDX TCB evaluation
  // (LoadTdxTcbCollateral, kbs/verify/tdx_tcb.h). Needs tdx_root_ca_file.
  // Empty: TDX claims carry no tcb_status.
  std::string tdx_collateral_dir;
  // Trust an ARK / Intel root that is not the vendor's pinned one
  // (kbs/verify/trust_anchors.h). Claims then name the root.
  bool allow_unpinned_root = false;
  // Development only: accept TDX quotes whose signature cannot be checked.
  // Their claims say signature_verified=false, which policies may refuse.
  bool tdx_allow_unverified = false;
};

class Verifier {
 public:
  virtual ~Verifier() = default;
  // `binding` is the runtime-data digest the evidence must carry (docs/formats.md,
  // §D3: 48 bytes of SHA-384; SNP and TDX compare it zero-padded to 64).
  // Debug guests are not refused here: Claims::debug carries the bit and
  // the key-release policy decides (refusing by default).
  // Errors: InvalidArgument for malformed evidence, PermissionDenied for
  // evidence that does not verify, FailedPrecondition for missing
  // configuration; each message says what failed.
  virtual absl::StatusOr<Claims> Verify(const nlohmann::json& evidence,
                                        absl::string_view binding) const = 0;
};

// tee: "snp", "tdx" or "sample". Unimplemented for other TEE names.
absl::StatusOr<std::unique_ptr<Verifier>> CreateVerifier(absl::string_view tee,
                                                         const VerifierConfig& config);

// The Trustee `sample` evidence: {"svn":"1","report_data":"<b64>"} plus,
// in Cloak's dev form, an optional "init_data":"<hex digest>".
absl::StatusOr<Claims> VerifySampleEvidence(const nlohmann::json& evidence,
                                            absl::string_view binding);

// Rebuilds the 1184-byte report from SNP evidence's "attestation_report"
// (common/tee/snp_report_json.h).
using tee::SnpReportFromJson;

// Zero-pads a binding digest to the 64-byte report-data field.
absl::StatusOr<Bytes> PadReportData(absl::string_view binding);

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_VERIFY_VERIFIER_H_
