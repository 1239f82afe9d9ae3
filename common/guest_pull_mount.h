// How cloak-snapshotter marks the rootfs of a container whose image only the
// guest has: the snapshot's mount is a `bind` of an empty directory with the
// option "cloak.image=<reference>". The shim reads the reference from it and
// never uses host layers for such a container (docs/snapshotter.md).
#ifndef CLOAK_COMMON_GUEST_PULL_MOUNT_H_
#define CLOAK_COMMON_GUEST_PULL_MOUNT_H_

#include "absl/strings/string_view.h"

namespace cloak {

// Prefix of the mount option that names the image the guest pulls. mount(2)
// ignores the data of a bind mount, so containerd (and runc) can still mount
// it: they see an empty directory.
inline constexpr absl::string_view kGuestPullImageOption = "cloak.image=";

}  // namespace cloak

#endif  // CLOAK_COMMON_GUEST_PULL_MOUNT_H_
