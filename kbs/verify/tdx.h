// Intel TDX: the TD quote (v4 and v5, docs/formats.md "TDX quote") and its verification.
#ifndef CLOAK_KBS_VERIFY_TDX_H_
#define CLOAK_KBS_VERIFY_TDX_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "common/tee/tdx_quote.h"
#include "kbs/verify/claims.h"
#include "kbs/verify/openssl_util.h"
#include "kbs/verify/tdx_tcb.h"

namespace cloak::kbs {

// The quote layout and its parser are common/tee's (tdx_quote.h).
using tee::kTdxAttributeDebug;
using tee::kTdxTeeType;
using tee::ParseTdxQuote;
using tee::TdxQuote;

// What the verifier trusts to check a quote's signature chain.
struct TdxCollateral {
  // The Intel SGX Root CA certificate (PEM or DER). The PCK chain carried in
  // the quote must end at it. It must be Intel's (pinned by fingerprint,
  // kbs/verify/trust_anchors.h) unless allow_unpinned_root.
  std::string root_ca = "";
  bool allow_unpinned_root = false;
  // Intel PCS collateral (TCB info, QE identity, CRLs; kbs/verify/tdx_tcb.h).
  // Set: the PCK chain is checked against the CRLs and the TCB status is
  // evaluated. Unset: no tcb_status claim.
  std::optional<TdxTcbCollateral> tcb = std::nullopt;
};

struct TdxSignatureResult {
  // What claims report as the trust anchor.
  std::string trust_anchor;
  // With collateral.tcb: the evaluated TCB.
  std::optional<TdxTcbVerdict> tcb;
};

// Checks the quote's ECDSA P-256 signature with its attestation key, the QE
// report's binding of that key (SHA-256(key ‖ QE auth data)), the QE report's
// signature with the PCK key, the PCK chain up to `collateral.root_ca`, and,
// with `collateral.tcb`, the CRLs and the TCB status (EvaluateTdxTcb).
absl::StatusOr<TdxSignatureResult> VerifyTdxQuoteSignature(const TdxQuote& quote,
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
