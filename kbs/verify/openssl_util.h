// Small OpenSSL 3 helpers shared by the verifiers and the KBS: owning
// pointers, certificate loading
// and the OpenSSL error queue turned into a readable message.
#ifndef CLOAK_KBS_VERIFY_OPENSSL_UTIL_H_
#define CLOAK_KBS_VERIFY_OPENSSL_UTIL_H_

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/files.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"

namespace cloak::kbs {

struct EvpPkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct EvpPkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct EvpCipherCtxFree {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
struct EvpMdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct X509CrlFree {
  void operator()(X509_CRL* p) const { X509_CRL_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using X509CrlPtr = std::unique_ptr<X509_CRL, X509CrlFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxFree>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, EvpCipherCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree>;

// Bytes are kept in std::string (binary-safe) throughout.
using Bytes = std::string;

// Drains the OpenSSL error queue into "context: reason; reason".
std::string OpenSslErrors(absl::string_view context);

// Encodings, digests and random bytes are common/tee's (encoding.h,
// digest.h); files are common/files.h's.

// Parses one certificate, PEM or DER (sniffed).
absl::StatusOr<X509Ptr> ParseCertificate(absl::string_view pem_or_der, absl::string_view what);
// Parses every PEM certificate in `pem`, in order. InvalidArgument if none.
absl::StatusOr<std::vector<X509Ptr>> ParsePemCertificates(absl::string_view pem,
                                                          absl::string_view what);
absl::StatusOr<X509Ptr> LoadCertificateFile(const std::string& path, absl::string_view what);
// Parses the CRLs in `pem_or_der`: every PEM CRL, or one DER CRL.
absl::StatusOr<std::vector<X509CrlPtr>> ParseCrls(absl::string_view pem_or_der,
                                                  absl::string_view what);

// Verifies `leaf` up to `root` (the only trusted certificate) through
// `intermediates`, at the current time. With `crls` non-empty, every
// certificate in the chain must be covered by a valid CRL of its issuer and
// must not be listed (revoked). PermissionDenied naming `what` and OpenSSL's
// reason.
absl::Status VerifyCertChain(X509* leaf, const std::vector<X509*>& intermediates, X509* root,
                             const std::vector<X509_CRL*>& crls, absl::string_view what);

// The certificate's subject CN, or "" if absent.
std::string SubjectCommonName(X509* cert);
std::string IssuerCommonName(X509* cert);

// Converts a raw big-endian r||s pair (each `half` bytes) into a DER ECDSA
// signature OpenSSL verifies.
absl::StatusOr<Bytes> RawEcdsaToDer(absl::string_view r_be, absl::string_view s_be);
// Converts a DER ECDSA signature into raw r||s, each `half` bytes big-endian.
absl::StatusOr<Bytes> DerEcdsaToRaw(absl::string_view der, size_t half);

// Builds an EC public key on the named curve ("P-256", "P-384", "P-521")
// from big-endian affine coordinates.
absl::StatusOr<PkeyPtr> EcPublicKeyFromXY(absl::string_view curve, absl::string_view x,
                                          absl::string_view y);
// Verifies `sig_der` over `data` with `key` and digest `md` (nullptr for
// keys that take none). OK, or PermissionDenied saying what did not verify.
absl::Status VerifySignature(EVP_PKEY* key, const EVP_MD* md, absl::string_view data,
                             absl::string_view sig_der, absl::string_view what);

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_VERIFY_OPENSSL_UTIL_H_
