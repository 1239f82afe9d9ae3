#include "agent/image/digest.h"

#include <openssl/evp.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "agent/image/reference.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"

namespace cloak::agent::image {

void BlobVerifier::CtxDeleter::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

std::string Sha256Digest(absl::string_view data) {
  return absl::StrCat("sha256:", tee::HexEncode(tee::Sha256(data)));
}

absl::StatusOr<BlobVerifier> BlobVerifier::Create(absl::string_view what,
                                                  absl::string_view digest,
                                                  int64_t expected_size) {
  if (!IsValidSha256Digest(digest)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " digest \"", digest.substr(0, 80), "\" is not sha256:<64 hex>"));
  }
  if (expected_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", digest, " has a negative size"));
  }
  BlobVerifier v;
  v.what_ = std::string(what);
  v.digest_ = std::string(digest);
  v.expected_size_ = expected_size;
  v.ctx_.reset(EVP_MD_CTX_new());
  if (!v.ctx_ || EVP_DigestInit_ex(v.ctx_.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("OpenSSL could not initialise a sha256 context");
  }
  return v;
}

BlobVerifier::BlobVerifier(BlobVerifier&&) noexcept = default;
BlobVerifier& BlobVerifier::operator=(BlobVerifier&&) noexcept = default;
BlobVerifier::~BlobVerifier() = default;

absl::Status BlobVerifier::Update(absl::string_view data) {
  received_ += static_cast<int64_t>(data.size());
  if (received_ > expected_size_) {
    return absl::DataLossError(absl::StrCat(what_, " ", digest_, " is larger than the ",
                                            expected_size_, " bytes its descriptor states; the "
                                            "registry sent different content"));
  }
  if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) {
    return absl::InternalError("OpenSSL sha256 update failed");
  }
  return absl::OkStatus();
}

absl::Status BlobVerifier::Finish() {
  if (received_ != expected_size_) {
    return absl::DataLossError(absl::StrCat(what_, " ", digest_, " is truncated: received ",
                                            received_, " of ", expected_size_, " bytes"));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1) {
    return absl::InternalError("OpenSSL sha256 final failed");
  }
  std::string got = absl::StrCat(
      "sha256:", absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(md), len)));
  if (got != digest_) {
    return absl::DataLossError(absl::StrCat(what_, " ", digest_,
                                            " failed verification: its content hashes to ", got,
                                            "; the registry sent different content"));
  }
  return absl::OkStatus();
}

}  // namespace cloak::agent::image
