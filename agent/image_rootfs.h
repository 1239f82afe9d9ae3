// The production RootfsProvider: the image is pulled, verified and unpacked
// inside the guest by agent/image.
#ifndef CLOAK_AGENT_IMAGE_ROOTFS_H_
#define CLOAK_AGENT_IMAGE_ROOTFS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "agent/rootfs.h"

namespace cloak::agent {

// Unimplemented if the agent was built without agent/image.
absl::StatusOr<std::unique_ptr<RootfsProvider>> MakeImageRootfsProvider();

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_IMAGE_ROOTFS_H_
