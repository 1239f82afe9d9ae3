// Finding a virtio-serial port by name without udev (docs/formats.md, "Agent channel"): a port
// named N shows up as /dev/vportXpY with /sys/class/virtio-ports/vportXpY/name = N.
#ifndef CLOAK_COMMON_TRANSPORT_VIRTIO_PORT_H_
#define CLOAK_COMMON_TRANSPORT_VIRTIO_PORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::transport {

inline constexpr absl::string_view kVirtioPortsSysfsRoot = "/sys/class/virtio-ports";

// Returns the device name ("vport1p2") of the port called `port_name` under
// `sysfs_root` (normally kVirtioPortsSysfsRoot; tests pass a fake tree).
// Reads only `<sysfs_root>/*/name`; trailing whitespace in a name is ignored.
// If several ports share the name, the first in sorted order wins.
// Errors: NotFound if the root is missing or no port has that name (the
// message lists the names it saw), InvalidArgument for an empty name.
absl::StatusOr<std::string> FindVirtioPort(absl::string_view sysfs_root,
                                           absl::string_view port_name);

}  // namespace cloak::transport

#endif  // CLOAK_COMMON_TRANSPORT_VIRTIO_PORT_H_
