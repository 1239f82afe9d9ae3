// AMD SEV-SNP: the ATTESTATION_REPORT (docs/formats.md) and its verification
// against the chip's VCEK (chained VCEK → ASK → ARK) or a cloud provider's
// VLEK (chained VLEK → ASVK → ARK) (docs/formats.md, "SEV-SNP
// certificates").
#ifndef CLOAK_KBS_VERIFY_SNP_H_
#define CLOAK_KBS_VERIFY_SNP_H_

#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "common/tee/snp_report.h"
#include "kbs/verify/claims.h"
#include "kbs/verify/openssl_util.h"

namespace cloak::kbs {

// The report layout and its parser are common/tee's (snp_report.h).
using tee::kSnpPolicyDebugBit;
using tee::kSnpPolicyReservedBit;
using tee::kSnpReportSize;
using tee::kSnpSignedSize;
using tee::ParseSnpReport;
using tee::SnpReport;

// Product lines and TCB_VERSION: common/tee/snp_report.h.
using tee::DecodeSnpTcb;
using tee::ParseSnpProduct;
using tee::SnpProduct;
using tee::SnpProductName;
using tee::SnpTcb;

// The key that signed a report (KEY_INFO bits 4:2): the chip's VCEK (0) or
// a VLEK AMD issued to a cloud provider (1). 7 (unsigned) is refused.
enum class SnpSigningKey { kVcek, kVlek };
absl::string_view SnpSigningKeyName(SnpSigningKey key);           // "VCEK", "VLEK"
absl::string_view SnpIntermediateName(SnpSigningKey key);         // "ASK", "ASVK"
// The signing key a report names, or PermissionDenied (unsigned, reserved).
absl::StatusOr<SnpSigningKey> SnpReportSigningKey(const SnpReport& report);

// Verifies the report's ECDSA P-384 / SHA-384 signature with the VCEK's or
// VLEK's key (the same signature format for both).
absl::Status VerifySnpReportSignature(const SnpReport& report, X509* endorsement_key,
                                      SnpSigningKey kind = SnpSigningKey::kVcek);

// The pinned SHA-256 of AMD's ARK for `product` (kbs/verify/trust_anchors.h).
absl::string_view PinnedArkSha256(SnpProduct product);

// AMD's root and intermediates for one product line, PEM or DER. `asvk`
// (CN "SEV-VLEK-<Product>") is needed only for VLEK-signed reports.
struct SnpTrustAnchors {
  std::string ark = "";
  std::string ask = "";
  std::string asvk = "";
};

// The product an endorsement key belongs to, from its issuer: "SEV-<Product>"
// for a VCEK, "SEV-VLEK-<Product>" for a VLEK. PermissionDenied otherwise
// (including a VCEK presented where a VLEK is expected and vice versa).
absl::StatusOr<SnpProduct> SnpEndorsementKeyProduct(X509* cert, SnpSigningKey kind);

// Verifies ARK and the intermediate for `kind` (ASK or ASVK): ARK
// self-signed, the intermediate signed by it, RSA-PSS as AMD issues them,
// both within their validity. Returns the intermediate.
absl::StatusOr<X509Ptr> VerifySnpIntermediate(const SnpTrustAnchors& anchors, SnpSigningKey kind);

// Verifies VCEK → ASK → ARK (or VLEK → ASVK → ARK for kVlek): ARK
// self-signed, each link an RSA-PSS signature (as AMD issues them), all
// certificates within their validity. Returns the product the key belongs
// to (from its issuer).
absl::StatusOr<SnpProduct> VerifySnpCertChain(X509* endorsement_key,
                                              const SnpTrustAnchors& anchors,
                                              SnpSigningKey kind = SnpSigningKey::kVcek);

struct SnpVerifyOptions {
  // The 64 bytes the guest must have put in REPORT_DATA. Required.
  Bytes expected_report_data;
  ReferenceValues reference;
  // Every component of REPORTED_TCB must be at least this.
  std::optional<SnpTcb> min_tcb;
  // Accept an ARK that is not AMD's pinned one for the product
  // (kbs/verify/trust_anchors.h); the claims then name it.
  bool allow_unpinned_root = false;
};

// The whole check: parse, the signing key KEY_INFO names (VCEK or VLEK),
// chain, root pinning (or the simulated SP's TEST root, which sets
// Claims::simulated), key certificate ↔ report (hwID for a VCEK; TCB for
// both), signature, policy bits, report_data binding, reference values,
// minimum TCB. `endorsement_pem_or_der` is the VCEK or VLEK certificate, as
// the report's KEY_INFO says. PermissionDenied / InvalidArgument naming what
// failed.
absl::StatusOr<Claims> VerifySnpAttestation(absl::string_view report_raw,
                                            absl::string_view endorsement_pem_or_der,
                                            const SnpTrustAnchors& anchors,
                                            const SnpVerifyOptions& options);

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_VERIFY_SNP_H_
