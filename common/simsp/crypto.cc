#include "common/simsp/crypto.h"

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

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Digest(const EVP_MD* md, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<const char*>(out), len);
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

std::string HexEncode(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

absl::StatusOr<std::string> HexDecode(absl::string_view hex) {
  if (hex.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("hex string of odd length ", hex.size()));
  }
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexValue(hex[i]), lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(absl::StrCat("not a hex digit at offset ", i));
    }
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::string Sha256(absl::string_view data) { return Digest(EVP_sha256(), data); }
std::string Sha384(absl::string_view data) { return Digest(EVP_sha384(), data); }

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError(errno, "open ", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return ErrnoError(errno, "read ", path);
  return ss.str();
}

absl::Status WriteFile(const std::string& path, absl::string_view data, int mode) {
  std::string tmp = absl::StrCat(path, ".tmp");
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) return ErrnoError(errno, "create ", tmp);
  if (::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0) return ErrnoError(errno, "chmod ", tmp);
  RETURN_IF_ERROR(WriteAll(fd.get(), data));
  if (::fsync(fd.get()) != 0) return ErrnoError(errno, "fsync ", tmp);
  fd.Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError(errno, "rename to ", path);
  return absl::OkStatus();
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
