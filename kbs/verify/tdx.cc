#include "kbs/verify/tdx.h"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kbs/verify/trust_anchors.h"

namespace cloak::kbs {
namespace {

constexpr size_t kHeaderSize = 48;
constexpr size_t kBody10Size = 584;
constexpr size_t kBody15Size = 648;
constexpr size_t kQeReportSize = 384;
constexpr uint16_t kCertDataQeReport = 6;
constexpr uint16_t kCertDataPckChain = 5;

uint16_t Le16(absl::string_view b, size_t off) {
  return static_cast<uint16_t>(static_cast<unsigned char>(b[off]) |
                               (static_cast<unsigned char>(b[off + 1]) << 8));
}
uint32_t Le32(absl::string_view b, size_t off) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[off + i]);
  return v;
}
uint64_t Le64(absl::string_view b, size_t off) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[off + i]);
  return v;
}

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
                                           const TdxCollateral& collateral) {
  ASSIGN_OR_RETURN(X509Ptr root, ParseCertificate(collateral.root_ca, "Intel SGX root CA"));
  ASSIGN_OR_RETURN(RootVerdict verdict,
                   ClassifyRoot(root.get(), "Intel SGX Root CA", kIntelSgxRootCaSha256,
                                /*simulated_possible=*/false, collateral.allow_unpinned_root));
  X509_STORE* store = X509_STORE_new();
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  absl::Status status = absl::OkStatus();
  if (store == nullptr || untrusted == nullptr || ctx == nullptr) {
    status = absl::ResourceExhaustedError("X509 store allocation");
  } else {
    X509_STORE_add_cert(store, root.get());
    for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted, chain[i].get());
    ERR_clear_error();
    if (X509_STORE_CTX_init(ctx, store, chain[0].get(), untrusted) != 1) {
      status = absl::InternalError(OpenSslErrors("X509_STORE_CTX_init"));
    } else if (X509_verify_cert(ctx) != 1) {
      int err = X509_STORE_CTX_get_error(ctx);
      status = absl::PermissionDeniedError(absl::StrCat(
          "PCK certificate chain (leaf \"", SubjectCommonName(chain[0].get()),
          "\") does not verify up to the configured Intel root CA \"",
          SubjectCommonName(root.get()), "\": ", X509_verify_cert_error_string(err)));
    }
    ERR_clear_error();
  }
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);  // the certificates stay owned by `chain`
  X509_STORE_free(store);
  if (!status.ok()) return status;
  return verdict.description;
}

}  // namespace

absl::StatusOr<TdxQuote> ParseTdxQuote(absl::string_view raw) {
  if (raw.size() < kHeaderSize + kBody10Size + 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("TDX quote too short: ", raw.size(), " bytes"));
  }
  TdxQuote q;
  q.version = Le16(raw, 0);
  q.att_key_type = Le16(raw, 2);
  q.tee_type = Le32(raw, 4);
  if (q.version != 4 && q.version != 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported TDX quote version ", q.version, " (want 4 or 5)"));
  }
  if (q.tee_type != kTdxTeeType) {
    return absl::InvalidArgumentError(absl::StrCat("quote TEE type is 0x", absl::Hex(q.tee_type),
                                                   ", not TDX (0x81)"));
  }
  if (q.att_key_type != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported TDX attestation key type ", q.att_key_type, " (want 2, ECDSA P-256)"));
  }
  size_t body = kHeaderSize;
  size_t body_size = kBody10Size;
  if (q.version == 5) {
    q.body_type = Le16(raw, kHeaderSize);
    uint32_t size = Le32(raw, kHeaderSize + 2);
    body = kHeaderSize + 6;
    if (q.body_type == 2 && size == kBody10Size) {
      body_size = kBody10Size;
    } else if (q.body_type == 3 && size == kBody15Size) {
      body_size = kBody15Size;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unsupported TDX v5 quote body type ",
                                                     q.body_type, " of size ", size,
                                                     " (want 2/584 or 3/648)"));
    }
  }
  if (raw.size() < body + body_size + 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("TDX quote too short for its body: ", raw.size(), " bytes"));
  }
  absl::string_view b = raw.substr(body, body_size);
  q.tee_tcb_svn = Bytes(b.substr(0, 16));
  q.mrseam = Bytes(b.substr(16, 48));
  q.td_attributes = Le64(b, 120);
  q.xfam = Le64(b, 128);
  q.mrtd = Bytes(b.substr(136, 48));
  q.mrconfigid = Bytes(b.substr(184, 48));
  q.mrowner = Bytes(b.substr(232, 48));
  q.mrownerconfig = Bytes(b.substr(280, 48));
  for (size_t i = 0; i < 4; ++i) q.rtmr[i] = Bytes(b.substr(328 + 48 * i, 48));
  q.report_data = Bytes(b.substr(520, 64));
  size_t sig_len_off = body + body_size;
  uint32_t sig_len = Le32(raw, sig_len_off);
  if (sig_len != raw.size() - sig_len_off - 4) {
    return absl::InvalidArgumentError(absl::StrCat("TDX quote signature length ", sig_len,
                                                   " does not match the ",
                                                   raw.size() - sig_len_off - 4,
                                                   " bytes that follow"));
  }
  q.signed_bytes = Bytes(raw.substr(0, sig_len_off));
  q.signature_data = Bytes(raw.substr(sig_len_off + 4));
  return q;
}

absl::StatusOr<std::string> VerifyTdxQuoteSignature(const TdxQuote& quote,
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
  std::string bound = Sha256(absl::StrCat(att_key, auth_data));
  if (!SecureEquals(qe_report.substr(320, 32), bound)) {
    return absl::PermissionDeniedError(
        "QE report data does not bind the quote's attestation key (SHA-256(key || auth data))");
  }
  // 3. The QE report is signed by the PCK key, whose chain ends at the root.
  ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParsePemCertificates(pem, "PCK certificate chain"));
  EVP_PKEY* pck = X509_get0_pubkey(chain[0].get());
  if (pck == nullptr) return absl::InvalidArgumentError("PCK certificate has no public key");
  RETURN_IF_ERROR(VerifyP256(pck, qe_report, qe_sig, "QE report signature with the PCK key"));
  return VerifyPckChain(chain, collateral);
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
  if (options.collateral.has_value()) {
    ASSIGN_OR_RETURN(trust_anchor, VerifyTdxQuoteSignature(quote, *options.collateral));
    verified = true;
  } else if (!options.allow_unverified) {
    return absl::FailedPreconditionError(
        "TDX quote refused: no collateral (Intel SGX root CA) is configured, so its signature "
        "chain cannot be verified; configure the root CA, or allow unverified quotes for "
        "development only");
  }
  if (!SecureEquals(quote.report_data, options.expected_report_data)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "TDX REPORTDATA ", HexEncode(quote.report_data).substr(0, 32),
        "... does not match the expected binding ",
        HexEncode(options.expected_report_data).substr(0, 32),
        "... (evidence made for another nonce or key)"));
  }
  Claims claims;
  claims.tee = kTeeTdx;
  claims.report_data = quote.report_data;
  claims.measurements["mrtd"] = HexEncode(quote.mrtd);
  claims.measurements["mrconfigid"] = HexEncode(quote.mrconfigid);
  for (size_t i = 0; i < 4; ++i) {
    claims.measurements[absl::StrCat("rtmr", i)] = HexEncode(quote.rtmr[i]);
  }
  if (quote.mrconfigid != Bytes(48, '\0')) claims.init_data_digest = HexEncode(quote.mrconfigid);
  claims.debug = quote.debug();
  claims.signature_verified = verified;
  claims.trust_anchor = trust_anchor;
  claims.detail = absl::StrCat("TDX quote v", quote.version,
                               verified ? ", PCK chain verified (TCB status not evaluated), root "
                                        : ", signature NOT verified (dev)",
                               trust_anchor);
  RETURN_IF_ERROR(CheckReferenceValues(claims, options.reference));
  return claims;
}

}  // namespace cloak::kbs
