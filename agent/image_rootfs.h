// The production RootfsProvider: the image is pulled, verified and unpacked
// inside the guest by agent/image.
#ifndef CLOAK_AGENT_IMAGE_ROOTFS_H_
#define CLOAK_AGENT_IMAGE_ROOTFS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/rootfs.h"

namespace cloak::agent {

namespace image {
class LayerDecryptor;
}  // namespace image

struct ImageRootfsOptions {
  // Registries ("host:port") spoken to over plain HTTP.
  std::vector<std::string> insecure_registries;
  // Layers downloaded in parallel.
  int max_concurrent_downloads = 3;
  // Staging directory for layer blobs (guest memory).
  std::string work_dir = "/run/cloak/pull";
  // ocicrypt layers (agent/attest); nullptr: encrypted images are refused.
  std::shared_ptr<image::LayerDecryptor> decryptor;
};

// Unimplemented if the agent was built without agent/image.
absl::StatusOr<std::unique_ptr<RootfsProvider>> MakeImageRootfsProvider(
    const ImageRootfsOptions& options);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_IMAGE_ROOTFS_H_
