// ImagePuller: pulls a container image from an OCI distribution registry
// and unpacks it into a rootfs directory, inside the guest. The host is not
// trusted: every manifest, config and layer is verified against the digest
// that names it, and layers are unpacked without ever writing outside the
// rootfs (see unpack.h).
#ifndef CLOAK_AGENT_IMAGE_PULLER_H_
#define CLOAK_AGENT_IMAGE_PULLER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/image/image_config.h"
#include "agent/image/manifest.h"
#include "agent/image/registry_client.h"
#include "agent/image/unpack.h"
#include "policy/image_signatures.h"

namespace cloak::agent::image {

// Hook for ocicrypt: turns an encrypted layer into plaintext once a key has
// been released to the guest. Implementations are not part of this library.
class LayerDecryptor {
 public:
  virtual ~LayerDecryptor() = default;
  // `encrypted_path` holds the layer blob, already verified against
  // `layer` (whose annotations carry the wrapped keys). Writes the plaintext
  // to `plaintext_path` and returns its media type (a tar, tar+gzip or
  // tar+zstd layer type). FailedPrecondition if no key is available.
  virtual absl::StatusOr<std::string> Decrypt(const Descriptor& layer,
                                              const std::string& encrypted_path,
                                              const std::string& plaintext_path) = 0;
};

inline constexpr int64_t kDefaultMaxLayerBytes = int64_t{8} << 30;
inline constexpr size_t kDefaultMaxLayers = 256;
inline constexpr int kDefaultMaxConcurrentDownloads = 3;
inline constexpr int kMaxConcurrentDownloads = 16;

struct PullerOptions {
  RegistryOptions registry;
  // Platform chosen from an image index.
  std::string os = "linux";
  std::string architecture = "amd64";
  // Where layer blobs are staged before unpacking; empty: $TMPDIR or /tmp.
  std::string work_dir;
  // Layers downloaded in parallel (1 to kMaxConcurrentDownloads), each over
  // its own registry connection. Layers are still decrypted and unpacked
  // one at a time, in order; at most this many blobs are staged at once.
  int max_concurrent_downloads = kDefaultMaxConcurrentDownloads;
  int64_t max_config_bytes = kDefaultMaxConfigBytes;
  int64_t max_layer_bytes = kDefaultMaxLayerBytes;
  size_t max_layers = kDefaultMaxLayers;
  // Caps over all the layers of one image as they are unpacked (unpack.h).
  UnpackLimits unpack_limits;
  // nullptr: encrypted layers fail with FailedPrecondition.
  std::shared_ptr<LayerDecryptor> decryptor;
  // The signature rules in force (the agent policy's "image_signatures"),
  // asked for at every pull and applied to the manifest the reference
  // resolves to before anything else is fetched (signature.h). Unset, or
  // returning null: no signature is required.
  std::function<std::shared_ptr<const policy::ImageSignaturePolicy>()> signature_policy;
};

struct StepTiming {
  std::string step;  // "resolve", "config", "fetch layer 1/3", "unpack layer 1/3"
  absl::Duration duration;
};

struct PulledImage {
  std::string reference;        // normalised, e.g. "127.0.0.1:5000/cloak/test:1"
  std::string index_digest;     // when the reference named an index, else empty
  std::string manifest_digest;  // the image manifest that was unpacked
  std::string config_digest;
  std::string config_json;
  ImageConfig config;
  std::vector<std::string> layer_digests;
  int64_t bytes_downloaded = 0;  // layer blobs
  std::vector<StepTiming> timings;
  // The most layer downloads that were in flight at the same time.
  int peak_concurrent_downloads = 0;
  absl::Duration total;
};

class ImagePuller {
 public:
  virtual ~ImagePuller() = default;

  // Resolves `reference` (tag or digest; an index → the configured
  // platform), fetches and verifies the manifest, config and layers, and
  // applies the layers in order to `rootfs_dir` (created if missing; it
  // should be empty). Errors name the image, blob or tar entry at fault:
  // InvalidArgument (bad reference or manifest), NotFound (unknown image or
  // platform), Unauthenticated / PermissionDenied (registry auth, refused
  // layer entry), DataLoss (digest or size mismatch, truncated or corrupt
  // blob), FailedPrecondition (encrypted layer without a key, wrong
  // platform), Unavailable / DeadlineExceeded (network). After an error the
  // rootfs is incomplete and must be discarded; the puller itself stays
  // usable. Thread-safe: concurrent pulls into different rootfs directories
  // are fine.
  virtual absl::StatusOr<PulledImage> Pull(absl::string_view reference,
                                           const std::string& rootfs_dir) = 0;
};

class RegistryImagePuller final : public ImagePuller {
 public:
  // InvalidArgument for inconsistent options (missing CA file or work dir).
  static absl::StatusOr<std::unique_ptr<RegistryImagePuller>> Create(
      const PullerOptions& options);

  absl::StatusOr<PulledImage> Pull(absl::string_view reference,
                                   const std::string& rootfs_dir) override;

 private:
  explicit RegistryImagePuller(const PullerOptions& options) : options_(options) {}
  const PullerOptions options_;
};

}  // namespace cloak::agent::image

#endif  // CLOAK_AGENT_IMAGE_PULLER_H_
