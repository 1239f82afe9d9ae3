#include "agent/image/digest.h"

#include "absl/strings/str_cat.h"
#include "agent/image/reference.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"

namespace cloak::agent::image {

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
  v.hash_ = std::make_unique<tee::HashStream>(tee::HashAlgorithm::kSha256);
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
  hash_->Update(data);
  return absl::OkStatus();
}

absl::Status BlobVerifier::Finish() {
  if (received_ != expected_size_) {
    return absl::DataLossError(absl::StrCat(what_, " ", digest_, " is truncated: received ",
                                            received_, " of ", expected_size_, " bytes"));
  }
  std::string got = absl::StrCat("sha256:", tee::HexEncode(hash_->Finish()));
  if (got != digest_) {
    return absl::DataLossError(absl::StrCat(what_, " ", digest_,
                                            " failed verification: its content hashes to ", got,
                                            "; the registry sent different content"));
  }
  return absl::OkStatus();
}

}  // namespace cloak::agent::image
