#include "common/tee/measure/hash.h"

#include <openssl/evp.h>

#include <cstdlib>

namespace cloak::tee::measure {
namespace {

std::string Digest(const EVP_MD* md, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1) std::abort();
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace

std::string Sha256(absl::string_view data) { return Digest(EVP_sha256(), data); }
std::string Sha384(absl::string_view data) { return Digest(EVP_sha384(), data); }

struct Sha384Stream::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha384Stream::Sha384Stream() : ctx_(std::make_unique<Ctx>()) {
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, EVP_sha384(), nullptr) != 1) std::abort();
}
Sha384Stream::~Sha384Stream() = default;

void Sha384Stream::Update(absl::string_view data) {
  if (EVP_DigestUpdate(ctx_->md, data.data(), data.size()) != 1) std::abort();
}

std::string Sha384Stream::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, out, &len) != 1) std::abort();
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string HexLower(absl::string_view raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

}  // namespace cloak::tee::measure
