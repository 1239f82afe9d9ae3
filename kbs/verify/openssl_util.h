// Small OpenSSL 3 helpers shared by the verifiers and the KBS: owning
// pointers, encodings (hex, base64, base64url), digests, certificate loading
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
using PkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxFree>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, EvpCipherCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree>;

// Bytes are kept in std::string (binary-safe) throughout.
using Bytes = std::string;

// Drains the OpenSSL error queue into "context: reason; reason".
std::string OpenSslErrors(absl::string_view context);

std::string HexEncode(absl::string_view bytes);  // lowercase
// Accepts upper and lower case; InvalidArgument on odd length or non-hex.
absl::StatusOr<Bytes> HexDecode(absl::string_view hex);

std::string Base64Encode(absl::string_view bytes);     // standard, padded
std::string Base64UrlEncode(absl::string_view bytes);  // url-safe, no padding
// Standard alphabet; padding optional. InvalidArgument on bad input.
absl::StatusOr<Bytes> Base64Decode(absl::string_view text);
// URL-safe alphabet; padding optional. InvalidArgument on bad input.
absl::StatusOr<Bytes> Base64UrlDecode(absl::string_view text);

Bytes Sha256(absl::string_view data);
Bytes Sha384(absl::string_view data);
Bytes HmacSha256(absl::string_view key, absl::string_view data);
// Cryptographically random bytes (RAND_bytes); Internal on failure.
absl::StatusOr<Bytes> RandomBytes(size_t n);
// Constant-time equality (CRYPTO_memcmp) of two byte strings.
bool SecureEquals(absl::string_view a, absl::string_view b);

// Parses one certificate, PEM or DER (sniffed).
absl::StatusOr<X509Ptr> ParseCertificate(absl::string_view pem_or_der, absl::string_view what);
// Parses every PEM certificate in `pem`, in order. InvalidArgument if none.
absl::StatusOr<std::vector<X509Ptr>> ParsePemCertificates(absl::string_view pem,
                                                          absl::string_view what);
absl::StatusOr<X509Ptr> LoadCertificateFile(const std::string& path, absl::string_view what);
// The certificate's subject CN, or "" if absent.
std::string SubjectCommonName(X509* cert);
std::string IssuerCommonName(X509* cert);

// Reads a whole file; NotFound / PermissionDenied with the path.
absl::StatusOr<std::string> ReadFile(const std::string& path);

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
