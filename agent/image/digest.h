// Streaming sha256 + size verification of a blob against its descriptor.
#ifndef CLOAK_AGENT_IMAGE_DIGEST_H_
#define CLOAK_AGENT_IMAGE_DIGEST_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tee/digest.h"

namespace cloak::agent::image {

// "sha256:<hex>" of `data`.
std::string Sha256Digest(absl::string_view data);

class BlobVerifier {
 public:
  // `what` names the blob in errors, e.g. "layer" or "config".
  static absl::StatusOr<BlobVerifier> Create(absl::string_view what, absl::string_view digest,
                                             int64_t expected_size);
  BlobVerifier(BlobVerifier&&) noexcept;
  BlobVerifier& operator=(BlobVerifier&&) noexcept;
  ~BlobVerifier();

  // Feeds the next bytes. DataLoss as soon as more than the expected size
  // has arrived (the rest need not be downloaded).
  absl::Status Update(absl::string_view data);
  // DataLoss naming the digest if the size is short (truncated) or the
  // digest differs. Call once, after the last Update.
  absl::Status Finish();

  int64_t received() const { return received_; }

 private:
  BlobVerifier() = default;
  std::string what_;
  std::string digest_;
  int64_t expected_size_ = 0;
  int64_t received_ = 0;
  std::unique_ptr<tee::HashStream> hash_;
};

}  // namespace cloak::agent::image

#endif  // CLOAK_AGENT_IMAGE_DIGEST_H_
