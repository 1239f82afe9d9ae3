// Intel TDX: the TD quote (v4 and v5, FACTS §G2) and its verification.
#ifndef CLOAK_KBS_VERIFY_TDX_H_
#define CLOAK_KBS_VERIFY_TDX_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "kbs/verify/claims.h"
#include "kbs/verify/openssl_util.h"

namespace cloak::kbs {

inline constexpr uint32_t kTdxTeeType = 0x81;
inline constexpr uint64_t kTdxAttributeDebug = 1;

struct TdxQuote {
  uint16_t version = 0;       // 4 or 5
  uint16_t att_key_type = 0;  // 2 = ECDSA P-256
  uint32_t tee_type = 0;      // 0x81
  uint16_t body_type = 2;     // v5: 2 = TDX 1.0, 3 = TDX 1.5; v4: 2
  Bytes tee_tcb_svn;
  Bytes mrseam;
  uint64_t td_attributes = 0;
  uint64_t xfam = 0;
  Bytes mrtd;
  Bytes mrconfigid;
  Bytes mrowner;
  Bytes mrownerconfig;
  std::array<Bytes, 4> rtmr;
  Bytes report_data;  // 64
  // Header and body: what the attestation key signs.
  Bytes signed_bytes;
  // The ECDSA quote signature data that follows the length field.
  Bytes signature_data;

  bool debug() const { return (td_attributes & kTdxAttributeDebug) != 0; }
};

// Parses a TDX quote, version 4 or 5. InvalidArgument naming the problem on
// short data, another TEE type, or an unknown body type.
absl::StatusOr<TdxQuote> ParseTdxQuote(absl::string_view raw);

// What the verifier trusts to check a quote's signature chain.
struct TdxCollateral {
  // The Intel SGX Root CA certificate (PEM or DER). The PCK chain carried in
  // the quote must end at it. It must be Intel's (pinned by fingerprint,
  // kbs/verify/trust_anchors.h) unless allow_unpinned_root.
  std::string root_ca;
  bool allow_unpinned_root = false;
};

// Checks the quote's ECDSA P-256 signature with its attestation key, the QE
// report's binding of that key (SHA-256(key ‖ QE auth data)), the QE report's
// signature with the PCK key, and the PCK chain up to `collateral.root_ca`.
// TCB status (Intel's TCB info and QE identity, CRLs) is not evaluated.
// Returns what claims report as the trust anchor.
absl::StatusOr<std::string> VerifyTdxQuoteSignature(const TdxQuote& quote,
                                                    const TdxCollateral& collateral);

struct TdxVerifyOptions {
  // The 64 bytes the guest must have put in REPORTDATA. Required.
  Bytes expected_report_data;
  ReferenceValues reference;
  // Without collateral the signature cannot be checked, and the quote is
  // refused unless allow_unverified (dev only) is set.
  std::optional<TdxCollateral> collateral;
  bool allow_unverified = false;
};

absl::StatusOr<Claims> VerifyTdxAttestation(absl::string_view quote_raw,
                                            const TdxVerifyOptions& options);

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_VERIFY_TDX_H_
