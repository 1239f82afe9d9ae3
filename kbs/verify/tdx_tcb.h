// Intel TDX TCB evaluation from collateral the operator provides in Intel
// PCS's JSON formats (docs/attestation.md, "TDX TCB status"): the TDX TCB
// info (v3) and the TD QE identity (v2), each signed by Intel's TCB signing
// key whose certificate chains to the Intel SGX Root CA, plus the CRLs of
// the root CA and of the PCK CAs. Nothing here downloads anything.
#ifndef CLOAK_KBS_VERIFY_TDX_TCB_H_
#define CLOAK_KBS_VERIFY_TDX_TCB_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/tee/tdx_quote.h"
#include "kbs/verify/openssl_util.h"

namespace cloak::kbs {

// The status names Intel's TCB info uses, best first.
inline constexpr const char* kTdxTcbStatuses[] = {
    "UpToDate",         "SWHardeningNeeded", "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded",
    "Revoked"};
bool IsTdxTcbStatus(absl::string_view status);

// The collateral, as the operator downloaded it from Intel PCS (or a PCCS).
struct TdxTcbCollateral {
  // GET /tdx/certification/v4/tcb?fmspc=…: {"tcbInfo":{…},"signature":"<hex>"}.
  std::string tcb_info;
  // GET /tdx/certification/v4/qe/identity: {"enclaveIdentity":{…},"signature":"<hex>"}.
  std::string qe_identity;
  // The TCB signing certificate (PEM; the response's TCB-Info-Issuer-Chain
  // header, which may include the root).
  std::string signing_chain;
  // CRLs, PEM or DER: the root CA's (its revoked intermediates) and the PCK
  // CAs' (revoked PCK certificates). Every certificate of the PCK chain and
  // of the signing chain must be covered by one.
  std::vector<std::string> crls;
  // The root the collateral's signing chain must end at, when it is not
  // the quote's root CA (PEM/DER; empty: the same root as the PCK chain).
  // Pinned like any root: another one needs allow_unpinned_root.
  std::string root_ca;
};

// Reads DIR/tcb_info.json, DIR/qe_identity.json, DIR/tcb_signing_chain.pem,
// DIR/root_ca_crl.{pem,der} and DIR/pck_crl.{pem,der} (both CRLs required).
// NotFound / InvalidArgument naming the file.
absl::StatusOr<TdxTcbCollateral> LoadTdxTcbCollateral(const std::string& dir);

// What Intel puts in a PCK certificate's SGX extensions
// (OID 1.2.840.113741.1.13.1) that TCB evaluation needs.
struct PckSgxExtensions {
  std::string fmspc;   // 6 bytes
  std::string pce_id;  // 2 bytes
  std::array<uint8_t, 16> sgx_tcb_comp_svn{};
  uint16_t pcesvn = 0;
  std::string cpusvn;  // 16 bytes
};
absl::StatusOr<PckSgxExtensions> ParsePckSgxExtensions(X509* pck);

// The raw text of top-level member `key` of the JSON object `text` (what
// Intel's signatures cover: the bytes as served, not a re-serialization).
absl::StatusOr<absl::string_view> RawJsonMember(absl::string_view text, absl::string_view key);

struct TdxTcbVerdict {
  std::string status;                     // one of kTdxTcbStatuses
  std::vector<std::string> advisory_ids;  // Intel-SA-… of the matched levels
  std::string tcb_date;                   // of the platform's level
  std::string collateral_root;            // the signing chain's root, for claims
  std::string detail;                     // "FMSPC …, TCB eval number …"
};

struct TdxTcbInputs {
  const tee::TdxQuote* quote = nullptr;
  absl::string_view qe_report = {};  // the 384-byte QE report body from the quote
  X509* pck = nullptr;          // the PCK leaf (already verified to the root)
  X509* pck_root = nullptr;     // the root the PCK chain ended at
  bool allow_unpinned_root = false;
  absl::Time now = absl::InfinitePast();
};

// Checks the collateral (signatures, chain to the pinned root or an
// explicitly allowed other one, CRLs, freshness, FMSPC/PCE-ID of the PCK)
// and evaluates the TCB status as Intel's quote verification library does:
// the platform level from the PCK's SGX TCB components and PCESVN and the
// quote's TEE_TCB_SVN; the TDX module identity (MRSIGNERSEAM,
// SEAM attributes, its own levels); the QE against the QE identity
// (MRSIGNER, ISVPRODID, MISCSELECT, ATTRIBUTES, ISVSVN levels); the three
// converged into one status. PermissionDenied for collateral that does not
// verify or does not fit, and for a "Revoked" TCB; FailedPrecondition for
// expired collateral (fetch fresh).
absl::StatusOr<TdxTcbVerdict> EvaluateTdxTcb(const TdxTcbInputs& inputs,
                                             const TdxTcbCollateral& collateral);

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_VERIFY_TDX_TCB_H_
