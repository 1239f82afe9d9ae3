// Small OpenSSL 3 helpers for the simulated SP: owning pointers and PEM /
// DER encodings.
#ifndef CLOAK_SHIM_SIMSP_CRYPTO_H_
#define CLOAK_SHIM_SIMSP_CRYPTO_H_

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/files.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"

namespace cloak::simsp {

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Deleter {
  void operator()(X509* p) const { X509_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

// Drains the OpenSSL error queue into "context: reason; reason" (Internal).
absl::Status OpenSslError(absl::string_view context);

// Hex and digests are common/tee's; files common/files.h's.

// PEM / DER encodings of certificates and private keys.
absl::StatusOr<std::string> CertificatePem(X509* cert);
absl::StatusOr<std::string> CertificateDer(X509* cert);
absl::StatusOr<X509Ptr> ParseCertificate(absl::string_view pem_or_der, absl::string_view what);
absl::StatusOr<std::string> PrivateKeyPem(EVP_PKEY* key);
absl::StatusOr<PkeyPtr> ParsePrivateKeyPem(absl::string_view pem, absl::string_view what);

}  // namespace cloak::simsp

#endif  // CLOAK_SHIM_SIMSP_CRYPTO_H_
