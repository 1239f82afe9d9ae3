// AMD SEV-SNP: the ATTESTATION_REPORT (docs/formats.md) and its verification
// against the VCEK and AMD's ASK/ARK (docs/formats.md, "SEV-SNP
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

// Verifies the report's ECDSA P-384 / SHA-384 signature with `vcek`'s key.
absl::Status VerifySnpReportSignature(const SnpReport& report, X509* vcek);

// The pinned SHA-256 of AMD's ARK for `product` (kbs/verify/trust_anchors.h).
absl::string_view PinnedArkSha256(SnpProduct product);

// AMD's root and intermediate for one product line, PEM or DER.
struct SnpTrustAnchors {
  std::string ark;
  std::string ask;
};

// Verifies VCEK → ASK → ARK: ARK self-signed, each link an RSA-PSS signature
// (as AMD issues them), all certificates within their validity. Returns the
// product the VCEK belongs to (from its issuer, "SEV-<Product>").
absl::StatusOr<SnpProduct> VerifySnpCertChain(X509* vcek, const SnpTrustAnchors& anchors);

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

// The whole check: parse, chain, root pinning (or the simulated SP's TEST
// root, which sets Claims::simulated), VCEK ↔ report (hwID, TCB), signature,
// policy bits, report_data binding, reference values, minimum TCB.
// PermissionDenied / InvalidArgument naming what failed.
absl::StatusOr<Claims> VerifySnpAttestation(absl::string_view report_raw,
                                            absl::string_view vcek_pem_or_der,
                                            const SnpTrustAnchors& anchors,
                                            const SnpVerifyOptions& options);

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_VERIFY_SNP_H_
