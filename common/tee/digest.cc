#include "common/tee/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace cloak::tee {

absl::StatusOr<HashAlgorithm> ParseHashAlgorithm(absl::string_view name) {
  if (name == "sha256") return HashAlgorithm::kSha256;
  if (name == "sha384") return HashAlgorithm::kSha384;
  if (name == "sha512") return HashAlgorithm::kSha512;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown hash algorithm \"", name, "\" (want sha256, sha384 or sha512)"));
}

absl::string_view HashAlgorithmName(HashAlgorithm algorithm) {
  switch (algorithm) {
    case HashAlgorithm::kSha256:
      return "sha256";
    case HashAlgorithm::kSha384:
      return "sha384";
    case HashAlgorithm::kSha512:
      return "sha512";
  }
  return "?";
}

size_t HashSize(HashAlgorithm algorithm) {
  switch (algorithm) {
    case HashAlgorithm::kSha256:
      return 32;
    case HashAlgorithm::kSha384:
      return 48;
    case HashAlgorithm::kSha512:
      return 64;
  }
  return 0;
}

std::string Hash(HashAlgorithm algorithm, absl::string_view data) {
  const EVP_MD* md = algorithm == HashAlgorithm::kSha256   ? EVP_sha256()
                     : algorithm == HashAlgorithm::kSha384 ? EVP_sha384()
                                                           : EVP_sha512();
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

struct HashStream::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

HashStream::HashStream(HashAlgorithm algorithm) : ctx_(std::make_unique<Ctx>()) {
  const EVP_MD* md = algorithm == HashAlgorithm::kSha256   ? EVP_sha256()
                     : algorithm == HashAlgorithm::kSha384 ? EVP_sha384()
                                                           : EVP_sha512();
  // Only fails when out of memory.
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, md, nullptr) != 1) std::abort();
}
HashStream::~HashStream() = default;
HashStream::HashStream(HashStream&&) noexcept = default;
HashStream& HashStream::operator=(HashStream&&) noexcept = default;

void HashStream::Update(absl::string_view data) {
  EVP_DigestUpdate(ctx_->md, data.data(), data.size());
}

std::string HashStream::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

absl::StatusOr<std::string> FileSha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path, " to hash it"));
  HashStream hash(HashAlgorithm::kSha256);
  std::string buf(1 << 16, '\0');
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    hash.Update(absl::string_view(buf.data(), static_cast<size_t>(in.gcount())));
  }
  if (in.bad()) return absl::InternalError(absl::StrCat("error reading ", path, " to hash it"));
  return hash.Finish();
}

bool SecureEquals(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n != 0 &&
      RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return absl::InternalError("the OpenSSL random generator failed (RAND_bytes)");
  }
  return out;
}

}  // namespace cloak::tee
