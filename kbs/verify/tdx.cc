#include "kbs/verify/tdx.h"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "kbs/verify/trust_anchors.h"
#include "common/tee/bytes.h"

namespace cloak::kbs {
namespace {

constexpr size_t kQeReportSize = 384;
constexpr uint16_t kCertDataQeReport = 6;
constexpr uint16_t kCertDataPckChain = 5;

using tee::Le16;
using tee::Le32;

// A bounds-checked reader over the signature data.
class Reader {
 public:
  explicit Reader(absl::string_view data) : data_(data) {}
  absl::StatusOr<absl::string_view> Take(size_t n, absl::string_view what) {
    if (n > data_.size() - pos_) {
      return absl::InvalidArgumentError(absl::StrCat("TDX quote signature data truncated at ",
                                                     what, " (need ", n, " bytes, have ",
                                                     data_.size() - pos_, ")"));
    }
    absl::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  absl::StatusOr<uint16_t> U16(absl::string_view what) {
    ASSIGN_OR_RETURN(absl::string_view b, Take(2, what));
    return Le16(b, 0);
  }
  absl::StatusOr<uint32_t> U32(absl::string_view what) {
    ASSIGN_OR_RETURN(absl::string_view b, Take(4, what));
    return Le32(b, 0);
  }

 private:
  absl::string_view data_;
  size_t pos_ = 0;
};

absl::Status VerifyP256(EVP_PKEY* key, absl::string_view data, absl::string_view raw_sig,
                        absl::string_view what) {
  ASSIGN_OR_RETURN(Bytes der, RawEcdsaToDer(raw_sig.substr(0, 32), raw_sig.substr(32, 32)));
  return VerifySignature(key, EVP_sha256(), data, der, what);
}

absl::StatusOr<std::string> VerifyPckChain(const std::vector<X509Ptr>& chain,
                                           const TdxCollateral& collateral,
                                           const std::vector<X509_CRL*>& crls) {
  ASSIGN_OR_RETURN(X509Ptr root, ParseCertificate(collateral.root_ca, "Intel SGX root CA"));
  ASSIGN_OR_RETURN(RootVerdict verdict,
                   ClassifyRoot(root.get(), "Intel SGX Root CA", kIntelSgxRootCaSha256,
                                /*simulated_possible=*/false, collateral.allow_unpinned_root));
  std::vector<X509*> intermediates;
  for (size_t i = 1; i < chain.size(); ++i) intermediates.push_back(chain[i].get());
  absl::Status status = VerifyCertChain(chain[0].get(), intermediates, root.get(), crls,
                                        "PCK certificate chain");
  if (!status.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat(status.message(), " (the configured Intel root CA)"));
  }
  return verdict.description;
}

}  // namespace

absl::StatusOr<TdxSignatureResult> VerifyTdxQuoteSignature(const TdxQuote& quote,
                                                           const TdxCollateral& collateral) {
  Reader r(quote.signature_data);
  ASSIGN_OR_RETURN(absl::string_view quote_sig, r.Take(64, "quote signature"));
  ASSIGN_OR_RETURN(absl::string_view att_key, r.Take(64, "attestation key"));
  ASSIGN_OR_RETURN(uint16_t cert_type, r.U16("certification data type"));
  ASSIGN_OR_RETURN(uint32_t cert_size, r.U32("certification data size"));
  if (cert_type != kCertDataQeReport) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TDX quote certification data type ", cert_type, " is not supported (want 6, QE report)"));
  }
  ASSIGN_OR_RETURN(absl::string_view cert_data, r.Take(cert_size, "certification data"));
  Reader c(cert_data);
  ASSIGN_OR_RETURN(absl::string_view qe_report, c.Take(kQeReportSize, "QE report"));
  ASSIGN_OR_RETURN(absl::string_view qe_sig, c.Take(64, "QE report signature"));
  ASSIGN_OR_RETURN(uint16_t auth_size, c.U16("QE auth data size"));
  ASSIGN_OR_RETURN(absl::string_view auth_data, c.Take(auth_size, "QE auth data"));
  ASSIGN_OR_RETURN(uint16_t inner_type, c.U16("PCK certification data type"));
  ASSIGN_OR_RETURN(uint32_t inner_size, c.U32("PCK certification data size"));
  if (inner_type != kCertDataPckChain) {
    return absl::InvalidArgumentError(absl::StrCat("TDX quote carries certification data type ",
                                                   inner_type,
                                                   ", not a PCK certificate chain (5); fetching "
                                                   "PCK certificates is not supported"));
  }
  ASSIGN_OR_RETURN(absl::string_view pem, c.Take(inner_size, "PCK certificate chain"));

  // 1. The quote is signed by the attestation key.
  ASSIGN_OR_RETURN(PkeyPtr ak, EcPublicKeyFromXY("P-256", att_key.substr(0, 32),
                                                 att_key.substr(32, 32)));
  RETURN_IF_ERROR(VerifyP256(ak.get(), quote.signed_bytes, quote_sig,
                             "TDX quote signature (ECDSA P-256 with the attestation key)"));
  // 2. The QE vouches for the attestation key in its report data.
  std::string bound = tee::Sha256(absl::StrCat(att_key, auth_data));
  if (!tee::SecureEquals(qe_report.substr(320, 32), bound)) {
    return absl::PermissionDeniedError(
        "QE report data does not bind the quote's attestation key (SHA-256(key || auth data))");
  }
  // 3. The QE report is signed by the PCK key, whose chain ends at the root.
  ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParsePemCertificates(pem, "PCK certificate chain"));
  EVP_PKEY* pck = X509_get0_pubkey(chain[0].get());
  if (pck == nullptr) return absl::InvalidArgumentError("PCK certificate has no public key");
  RETURN_IF_ERROR(VerifyP256(pck, qe_report, qe_sig, "QE report signature with the PCK key"));
  std::vector<X509CrlPtr> crls;
  std::vector<X509_CRL*> crl_ptrs;
  if (collateral.tcb.has_value()) {
    for (const std::string& data : collateral.tcb->crls) {
      ASSIGN_OR_RETURN(auto parsed, ParseCrls(data, "TDX collateral CRL"));
      for (auto& crl : parsed) {
        crl_ptrs.push_back(crl.get());
        crls.push_back(std::move(crl));
      }
    }
  }
  TdxSignatureResult result;
  ASSIGN_OR_RETURN(result.trust_anchor, VerifyPckChain(chain, collateral, crl_ptrs));
  if (collateral.tcb.has_value()) {
    ASSIGN_OR_RETURN(X509Ptr root, ParseCertificate(collateral.root_ca, "Intel SGX root CA"));
    TdxTcbInputs inputs{.quote = &quote,
                        .qe_report = qe_report,
                        .pck = chain[0].get(),
                        .pck_root = root.get(),
                        .allow_unpinned_root = collateral.allow_unpinned_root,
                        .now = absl::Now()};
    ASSIGN_OR_RETURN(TdxTcbVerdict verdict, EvaluateTdxTcb(inputs, *collateral.tcb));
    if (!collateral.tcb->root_ca.empty()) {  // the collateral names its own root
      absl::StrAppend(&result.trust_anchor, "; TCB collateral root ", verdict.collateral_root);
    }
    result.tcb = std::move(verdict);
  }
  return result;
}

absl::StatusOr<Claims> VerifyTdxAttestation(absl::string_view quote_raw,
                                            const TdxVerifyOptions& options) {
  if (options.expected_report_data.size() != 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected report_data must be 64 bytes, got ", options.expected_report_data.size()));
  }
  ASSIGN_OR_RETURN(TdxQuote quote, ParseTdxQuote(quote_raw));
  bool verified = false;
  std::string trust_anchor;
  std::optional<TdxTcbVerdict> tcb;
  if (options.collateral.has_value()) {
    ASSIGN_OR_RETURN(TdxSignatureResult result, VerifyTdxQuoteSignature(quote, *options.collateral));
    trust_anchor = std::move(result.trust_anchor);
    tcb = std::move(result.tcb);
    verified = true;
  } else if (!options.allow_unverified) {
    return absl::FailedPreconditionError(
        "TDX quote refused: no collateral (Intel SGX root CA) is configured, so its signature "
        "chain cannot be verified; configure the root CA, or allow unverified quotes for "
        "development only");
  }
  if (!tee::SecureEquals(quote.report_data, options.expected_report_data)) {
    return absl::PermissionDeniedError(
        absl::StrCat("TDX REPORTDATA ", tee::HexEncode(quote.report_data).substr(0, 32),
                     "... does not match the expected binding ",
                     tee::HexEncode(options.expected_report_data).substr(0, 32),
                     "... (evidence made for another nonce or key)"));
  }
  Claims claims;
  claims.tee = kTeeTdx;
  claims.report_data = quote.report_data;
  claims.measurements["mrtd"] = tee::HexEncode(quote.mrtd);
  claims.measurements["mrconfigid"] = tee::HexEncode(quote.mrconfigid);
  for (size_t i = 0; i < 4; ++i) {
    claims.measurements[absl::StrCat("rtmr", i)] = tee::HexEncode(quote.rtmr[i]);
  }
  // The TDX module and the TD's configuration, for policies and audit.
  claims.measurements["mrseam"] = tee::HexEncode(quote.mrseam);
  claims.measurements["td_attributes"] = absl::StrCat(absl::Hex(quote.td_attributes, absl::kZeroPad16));
  claims.measurements["xfam"] = absl::StrCat(absl::Hex(quote.xfam, absl::kZeroPad16));
  if (quote.mrconfigid != Bytes(48, '\0'))
    claims.init_data_digest = tee::HexEncode(quote.mrconfigid);
  claims.debug = quote.debug();
  claims.signature_verified = verified;
  claims.trust_anchor = trust_anchor;
  if (tcb.has_value()) {
    claims.tcb_status = tcb->status;
    claims.advisory_ids = tcb->advisory_ids;
  }
  claims.detail = absl::StrCat(
      "TDX quote v", quote.version,
      !verified          ? ", signature NOT verified (dev)"
      : tcb.has_value()  ? absl::StrCat(", PCK chain and CRLs verified, ", tcb->detail, ", root ")
                         : ", PCK chain verified (TCB status not evaluated: no collateral), root ",
      trust_anchor);
  RETURN_IF_ERROR(CheckReferenceValues(claims, options.reference));
  return claims;
}

}  // namespace cloak::kbs
