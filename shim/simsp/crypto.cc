#include "shim/simsp/crypto.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/status_macros.h"

namespace cloak::simsp {
namespace {

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace

absl::Status OpenSslError(absl::string_view context) {
  std::string out(context);
  const char* sep = ": ";
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&out, sep, buf);
    sep = "; ";
  }
  return absl::InternalError(out);
}

absl::StatusOr<std::string> CertificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return OpenSslError("PEM_write_bio_X509");
  return BioContents(bio.get());
}

absl::StatusOr<std::string> CertificateDer(X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) return OpenSslError("i2d_X509");
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<X509Ptr> ParseCertificate(absl::string_view pem_or_der, absl::string_view what) {
  ERR_clear_error();
  X509* cert = nullptr;
  if (pem_or_der.find("-----BEGIN") != absl::string_view::npos) {
    BioPtr bio(BIO_new_mem_buf(pem_or_der.data(), static_cast<int>(pem_or_der.size())));
    cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  } else {
    const auto* p = reinterpret_cast<const unsigned char*>(pem_or_der.data());
    cert = d2i_X509(nullptr, &p, static_cast<long>(pem_or_der.size()));
  }
  if (cert == nullptr) {
    absl::Status s = OpenSslError(absl::StrCat(what, " is not a PEM or DER certificate"));
    return absl::InvalidArgumentError(s.message());
  }
  return X509Ptr(cert);
}

absl::StatusOr<std::string> PrivateKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("PEM_write_bio_PrivateKey");
  }
  return BioContents(bio.get());
}

absl::StatusOr<PkeyPtr> ParsePrivateKeyPem(absl::string_view pem, absl::string_view what) {
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    absl::Status s = OpenSslError(absl::StrCat(what, " is not a PEM private key"));
    return absl::InvalidArgumentError(s.message());
  }
  return PkeyPtr(key);
}

}  // namespace cloak::simsp
