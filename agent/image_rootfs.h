// The production RootfsProvider: the image is pulled, verified and unpacked
// inside the guest by agent/image.
#ifndef CLOAK_AGENT_IMAGE_ROOTFS_H_
#define CLOAK_AGENT_IMAGE_ROOTFS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/rootfs.h"
#include "policy/image_signatures.h"

namespace cloak::agent {

namespace image {
class LayerDecryptor;
}  // namespace image

// What the pod's init-data ([data.agent]) adds to the class's settings.
struct PodImageSettings {
  std::vector<std::string> insecure_registries;  // added to the class's
  int max_concurrent_downloads = 0;              // 0: the class's
  int pull_retries = -1;                         // -1: the default (registry_client.h)
  int64_t pull_retry_backoff_ms = 0;             // 0: the default
};

struct ImageRootfsOptions {
  // Registries ("host:port") spoken to over plain HTTP.
  std::vector<std::string> insecure_registries;
  // Dev class only (cloak.tee=none on the measured command line): a
  // registry on a loopback address or 10.0.2.2 (the host under QEMU user
  // networking) is spoken to over plain HTTP, as containerd does for
  // localhost (docs/attestation.md, "No plain http outside dev").
  bool plain_http_to_host = false;
  // The pod's settings, asked for when the first image is pulled
  // (CreateSandbox has stored the init-data by then). Null: none.
  std::function<PodImageSettings()> pod_settings;
  // Layers downloaded in parallel.
  int max_concurrent_downloads = 3;
  // Staging directory for layer blobs (guest memory).
  std::string work_dir = "/run/cloak/pull";
  // ocicrypt layers (agent/attest); nullptr: encrypted images are refused.
  std::shared_ptr<image::LayerDecryptor> decryptor;
  // The policy's image signature rules, asked for at every pull (the policy
  // is loaded at CreateSandbox and may be replaced). Unset: none.
  std::function<std::shared_ptr<const policy::ImageSignaturePolicy>()> signature_policy;
};

// Unimplemented if the agent was built without agent/image.
absl::StatusOr<std::unique_ptr<RootfsProvider>> MakeImageRootfsProvider(
    const ImageRootfsOptions& options);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_IMAGE_ROOTFS_H_
