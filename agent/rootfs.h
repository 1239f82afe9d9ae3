// RootfsProvider: how a container's root filesystem comes to be. The
// container manager does not know whether images are pulled inside the guest
// (production: agent/image) or made up locally (tests, the pause container).
#ifndef CLOAK_AGENT_ROOTFS_H_
#define CLOAK_AGENT_ROOTFS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::agent {

struct PreparedRootfs {
  // Absolute path of the root filesystem, inside the `dir` given to Prepare.
  std::string rootfs_dir;
  // The OCI image config JSON (the whole config blob), or empty when there
  // is no image (then the host's process is used as is).
  std::string image_config_json;
  // Digest of the manifest that was verified, if any.
  std::string image_digest;
};

// Contract: Prepare() is called once per container, with a fresh, empty
// directory `dir` owned by the agent; everything it creates lives below
// `dir`, which the agent removes with the container (after unmounting
// `rootfs_dir` if it is a mount point). `image_ref` is host input: the
// provider validates it. Must be safe to call concurrently for different
// containers.
class RootfsProvider {
 public:
  virtual ~RootfsProvider() = default;
  virtual absl::StatusOr<PreparedRootfs> Prepare(absl::string_view container_id,
                                                 absl::string_view image_ref,
                                                 const std::string& dir) = 0;
};

// Builds a tiny rootfs from a static busybox: <dir>/rootfs/bin/busybox plus
// applet symlinks, /etc/passwd and /etc/group for root, empty /proc /sys
// /dev /tmp. Ignores the image reference (used by tests and for the pause
// container).
class BusyboxRootfsProvider final : public RootfsProvider {
 public:
  // `busybox` must be a statically linked busybox.
  static absl::StatusOr<std::unique_ptr<BusyboxRootfsProvider>> Create(const std::string& busybox);
  absl::StatusOr<PreparedRootfs> Prepare(absl::string_view container_id,
                                         absl::string_view image_ref,
                                         const std::string& dir) override;

 private:
  explicit BusyboxRootfsProvider(std::string busybox) : busybox_(std::move(busybox)) {}
  std::string busybox_;
};

// Detaches everything mounted below `dir` (deepest first), then removes it
// with cloak::RemoveTree (common/files.h). Returns the first error.
absl::Status UnmountAndRemoveTree(const std::string& dir);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_ROOTFS_H_
