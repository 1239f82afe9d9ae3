// AMD SEV-SNP: the ATTESTATION_REPORT (FACTS §F1-F3) and its verification
// against the VCEK and AMD's ASK/ARK (FACTS §F5).
#ifndef CLOAK_KBS_VERIFY_SNP_H_
#define CLOAK_KBS_VERIFY_SNP_H_

#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "kbs/verify/claims.h"
#include "kbs/verify/openssl_util.h"

namespace cloak::kbs {

inline constexpr size_t kSnpReportSize = 0x4A0;     // 1184
inline constexpr size_t kSnpSignedSize = 0x2A0;     // bytes covered by the signature
inline constexpr uint64_t kSnpPolicyDebugBit = 1ull << 19;
inline constexpr uint64_t kSnpPolicyReservedBit = 1ull << 17;

enum class SnpProduct { kMilan, kGenoa, kTurin };
absl::string_view SnpProductName(SnpProduct product);  // "Milan", ...
// "milan"/"Milan" → kMilan; InvalidArgument otherwise.
absl::StatusOr<SnpProduct> ParseSnpProduct(absl::string_view name);

// TCB_VERSION components (FACTS §F2); fmc is zero before Turin.
struct SnpTcb {
  uint8_t fmc = 0;
  uint8_t bootloader = 0;
  uint8_t tee = 0;
  uint8_t snp = 0;
  uint8_t microcode = 0;
  std::string ToString() const;  // "bl=3 tee=0 snp=8 ucode=115" (+ fmc on Turin)
};
SnpTcb DecodeSnpTcb(uint64_t raw, SnpProduct product);

struct SnpReport {
  uint32_t version = 0;
  uint32_t guest_svn = 0;
  uint64_t policy = 0;
  uint32_t vmpl = 0;
  uint32_t signature_algo = 0;
  uint64_t current_tcb = 0;
  uint64_t platform_info = 0;
  uint32_t key_info = 0;
  Bytes report_data;  // 64
  Bytes measurement;  // 48
  Bytes host_data;    // 32
  Bytes id_key_digest;
  Bytes author_key_digest;
  uint64_t reported_tcb = 0;
  uint8_t cpuid_fam_id = 0;  // v3+
  uint8_t cpuid_mod_id = 0;
  Bytes chip_id;  // 64
  uint64_t committed_tcb = 0;
  uint64_t launch_tcb = 0;
  Bytes signed_bytes;  // 0x000-0x29F
  Bytes sig_r_be;      // 48 bytes, big-endian
  Bytes sig_s_be;

  bool debug() const { return (policy & kSnpPolicyDebugBit) != 0; }
  // KEY_INFO bits 4:2: 0 VCEK, 1 VLEK, 7 none.
  uint32_t signing_key() const { return (key_info >> 2) & 7; }
  bool mask_chip_id() const { return (key_info & 2) != 0; }
};

// Parses the 1184-byte report. InvalidArgument on a wrong size, an
// unsupported version (2..5 accepted) or signature algorithm.
absl::StatusOr<SnpReport> ParseSnpReport(absl::string_view raw);

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
