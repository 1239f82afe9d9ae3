#include "agent/image_rootfs.h"

namespace cloak::agent {

absl::StatusOr<std::unique_ptr<RootfsProvider>> MakeImageRootfsProvider() {
  return absl::UnimplementedError(
      "the image puller (agent/image) is not wired into this build; use --rootfs-provider=busybox");
}

}  // namespace cloak::agent
