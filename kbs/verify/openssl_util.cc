#include "kbs/verify/openssl_util.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509_vfy.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cloak::kbs {

std::string OpenSslErrors(absl::string_view context) {
  std::string out(context);
  unsigned long err;
  bool first = true;
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    absl::StrAppend(&out, first ? ": " : "; ", buf);
    first = false;
  }
  return out;
}

absl::StatusOr<X509Ptr> ParseCertificate(absl::string_view pem_or_der, absl::string_view what) {
  ERR_clear_error();
  X509* cert = nullptr;
  if (pem_or_der.find("-----BEGIN") != absl::string_view::npos) {
    BIO* bio = BIO_new_mem_buf(pem_or_der.data(), static_cast<int>(pem_or_der.size()));
    if (bio == nullptr) return absl::ResourceExhaustedError("BIO_new_mem_buf");
    cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
  } else {
    const auto* p = reinterpret_cast<const unsigned char*>(pem_or_der.data());
    cert = d2i_X509(nullptr, &p, static_cast<long>(pem_or_der.size()));
  }
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        OpenSslErrors(absl::StrCat("cannot parse ", what, " certificate (expected PEM or DER)")));
  }
  return X509Ptr(cert);
}

absl::StatusOr<std::vector<X509Ptr>> ParsePemCertificates(absl::string_view pem,
                                                          absl::string_view what) {
  ERR_clear_error();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return absl::ResourceExhaustedError("BIO_new_mem_buf");
  std::vector<X509Ptr> out;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) out.emplace_back(cert);
  BIO_free(bio);
  ERR_clear_error();  // the terminating "no start line" is expected
  if (out.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": no PEM certificate found"));
  }
  return out;
}

absl::StatusOr<X509Ptr> LoadCertificateFile(const std::string& path, absl::string_view what) {
  ASSIGN_OR_RETURN(std::string data, ReadFile(path));
  auto cert = ParseCertificate(data, what);
  if (!cert.ok()) return Annotate(cert.status(), path);
  return cert;
}

absl::StatusOr<std::vector<X509CrlPtr>> ParseCrls(absl::string_view pem_or_der,
                                                  absl::string_view what) {
  ERR_clear_error();
  std::vector<X509CrlPtr> out;
  if (pem_or_der.find("-----BEGIN") != absl::string_view::npos) {
    BIO* bio = BIO_new_mem_buf(pem_or_der.data(), static_cast<int>(pem_or_der.size()));
    if (bio == nullptr) return absl::ResourceExhaustedError("BIO_new_mem_buf");
    while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr)) {
      out.emplace_back(crl);
    }
    BIO_free(bio);
    ERR_clear_error();
  } else {
    const auto* p = reinterpret_cast<const unsigned char*>(pem_or_der.data());
    if (X509_CRL* crl = d2i_X509_CRL(nullptr, &p, static_cast<long>(pem_or_der.size()))) {
      out.emplace_back(crl);
    }
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        OpenSslErrors(absl::StrCat("cannot parse ", what, " (expected PEM or DER CRLs)")));
  }
  return out;
}

absl::Status VerifyCertChain(X509* leaf, const std::vector<X509*>& intermediates, X509* root,
                             const std::vector<X509_CRL*>& crls, absl::string_view what) {
  X509_STORE* store = X509_STORE_new();
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  absl::Status status = absl::OkStatus();
  if (store == nullptr || untrusted == nullptr || ctx == nullptr) {
    status = absl::ResourceExhaustedError("X509 store allocation");
  } else {
    X509_STORE_add_cert(store, root);
    for (X509_CRL* crl : crls) X509_STORE_add_crl(store, crl);
    if (!crls.empty()) {
      X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
    for (X509* cert : intermediates) sk_X509_push(untrusted, cert);
    ERR_clear_error();
    if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
      status = absl::InternalError(OpenSslErrors("X509_STORE_CTX_init"));
    } else if (X509_verify_cert(ctx) != 1) {
      int err = X509_STORE_CTX_get_error(ctx);
      X509* at = X509_STORE_CTX_get_current_cert(ctx);
      status = absl::PermissionDeniedError(absl::StrCat(
          what, " (leaf \"", SubjectCommonName(leaf), "\") does not verify up to the root \"",
          SubjectCommonName(root), "\"", crls.empty() ? "" : " with the configured CRLs", ": ",
          X509_verify_cert_error_string(err),
          at != nullptr ? absl::StrCat(" (at \"", SubjectCommonName(at), "\")") : ""));
    }
    ERR_clear_error();
  }
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);  // the certificates stay owned by the caller
  X509_STORE_free(store);
  return status;
}

namespace {
std::string NameCn(X509_NAME* name) {
  if (name == nullptr) return "";
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  if (data == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<size_t>(ASN1_STRING_length(data)));
}
}  // namespace

std::string SubjectCommonName(X509* cert) { return NameCn(X509_get_subject_name(cert)); }
std::string IssuerCommonName(X509* cert) { return NameCn(X509_get_issuer_name(cert)); }

absl::StatusOr<Bytes> RawEcdsaToDer(absl::string_view r_be, absl::string_view s_be) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(r_be.data()),
                        static_cast<int>(r_be.size()), nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(s_be.data()),
                        static_cast<int>(s_be.size()), nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr) {
    ECDSA_SIG_free(sig);
    BN_free(r);
    BN_free(s);
    return absl::ResourceExhaustedError("ECDSA_SIG allocation");
  }
  ECDSA_SIG_set0(sig, r, s);  // takes r and s
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (len <= 0) return absl::InternalError(OpenSslErrors("i2d_ECDSA_SIG"));
  Bytes out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<Bytes> DerEcdsaToRaw(absl::string_view der, size_t half) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (sig == nullptr) return absl::InternalError(OpenSslErrors("d2i_ECDSA_SIG"));
  Bytes out(2 * half, '\0');
  const BIGNUM* r = ECDSA_SIG_get0_r(sig);
  const BIGNUM* s = ECDSA_SIG_get0_s(sig);
  bool ok = BN_bn2binpad(r, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(half)) > 0 &&
            BN_bn2binpad(s, reinterpret_cast<unsigned char*>(out.data()) + half,
                         static_cast<int>(half)) > 0;
  ECDSA_SIG_free(sig);
  if (!ok) return absl::InternalError("ECDSA signature component too large");
  return out;
}

absl::StatusOr<PkeyPtr> EcPublicKeyFromXY(absl::string_view curve, absl::string_view x,
                                          absl::string_view y) {
  const char* group = nullptr;
  size_t size = 0;
  if (curve == "P-256") {
    group = SN_X9_62_prime256v1;
    size = 32;
  } else if (curve == "P-384") {
    group = SN_secp384r1;
    size = 48;
  } else if (curve == "P-521") {
    group = SN_secp521r1;
    size = 66;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported EC curve \"", curve, "\" (want P-256, P-384 or P-521)"));
  }
  if (x.size() != size || y.size() != size) {
    return absl::InvalidArgumentError(absl::StrCat("EC ", curve, " coordinates must be ", size,
                                                   " bytes each, got ", x.size(), " and ",
                                                   y.size()));
  }
  std::string point = absl::StrCat("\x04", x, y);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (bld == nullptr) return absl::ResourceExhaustedError("OSSL_PARAM_BLD_new");
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  OSSL_PARAM_BLD_free(bld);
  if (params == nullptr) return absl::ResourceExhaustedError("OSSL_PARAM_BLD_to_param");
  ERR_clear_error();
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* key = nullptr;
  int rc = ctx ? EVP_PKEY_fromdata_init(ctx.get()) : 0;
  if (rc == 1) rc = EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params);
  OSSL_PARAM_free(params);
  if (rc != 1 || key == nullptr) {
    return absl::InvalidArgumentError(
        OpenSslErrors(absl::StrCat("EC ", curve, " public key is not a valid curve point")));
  }
  PkeyPtr out(key);
  // EVP_PKEY_fromdata does not check that the point is on the curve.
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    return absl::InvalidArgumentError(
        OpenSslErrors(absl::StrCat("EC ", curve, " public key is not a valid curve point")));
  }
  return out;
}

absl::Status VerifySignature(EVP_PKEY* key, const EVP_MD* md, absl::string_view data,
                             absl::string_view sig_der, absl::string_view what) {
  ERR_clear_error();
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return absl::ResourceExhaustedError("EVP_MD_CTX_new");
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) != 1) {
    return absl::InternalError(OpenSslErrors(absl::StrCat(what, ": EVP_DigestVerifyInit")));
  }
  int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig_der.data()),
                            sig_der.size(), reinterpret_cast<const unsigned char*>(data.data()),
                            data.size());
  ERR_clear_error();
  if (rc != 1) return absl::PermissionDeniedError(absl::StrCat(what, " does not verify"));
  return absl::OkStatus();
}

}  // namespace cloak::kbs
