// Where a pod volume lives in the guest (docs/cri.md "Volumes"). The shim
// copies a volume's files to this path through the agent's CopyFile RPC; the
// agent bind-mounts the same path into the container. Both compute it from
// the OCI mount the host sent with this one pure function, so they cannot
// disagree. The host never shares a filesystem with the guest.
#ifndef CLOAK_COMMON_VOLUMES_H_
#define CLOAK_COMMON_VOLUMES_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak {

// The sandbox's volume directory in the guest.
inline constexpr char kGuestVolumeRoot[] = "/run/cloak/sandbox/volumes";
// The kind given to a bind of a host path outside kubelet's pod volume
// layout (a Kubernetes hostPath, or any `crictl` mount).
inline constexpr char kHostPathVolumeKind[] = "host-path";
// kubelet's emptyDir plugin directory: the guest makes an empty directory
// in its own memory instead of copying anything.
inline constexpr char kEmptyDirVolumeKind[] = "kubernetes.io~empty-dir";
// Longest guest path a copy may name.
inline constexpr size_t kMaxGuestPathBytes = 4096;

struct GuestVolume {
  // kubelet's plugin directory name ("kubernetes.io~configmap",
  // "kubernetes.io~secret", "kubernetes.io~projected",
  // "kubernetes.io~downward-api", "kubernetes.io~empty-dir") or
  // kHostPathVolumeKind.
  std::string kind;
  // The volume's name (kubelet's directory), or for a host path a name made
  // from the path's last component and a hash of the whole path.
  std::string name;
  // The host path the mount binds (the copy's source).
  std::string host_source;
  // <kGuestVolumeRoot>/<kind>/<name>[/<path inside the volume>].
  std::string guest_path;
  // <kGuestVolumeRoot>/<kind>/<name>: symlinks may not point outside it.
  std::string guest_volume_dir;
  bool empty_dir = false;
  bool readonly = false;
};

// The pod volume an OCI mount binds, or nullopt when the mount is not one:
// not a bind, or one of the sandbox files containerd's CRI plugin binds into
// every container (/etc/hosts, /etc/hostname, /etc/resolv.conf, /dev/shm,
// /dev/termination-log), which the agent provides itself.
// InvalidArgument for a bind whose source is not a clean absolute path.
absl::StatusOr<std::optional<GuestVolume>> GuestVolumeForMount(
    absl::string_view destination, absl::string_view type, absl::string_view source,
    const std::vector<std::string>& options);

// True when `path` is absolute, has no empty, "." or ".." component and no
// trailing slash ("/" itself is clean).
bool IsCleanAbsolutePath(absl::string_view path);

// Lexically resolves a symlink `target` (relative) found at `link_path`;
// nullopt for an absolute target or one that climbs above "/".
std::optional<std::string> ResolveSymlinkLexically(absl::string_view link_path,
                                                   absl::string_view target);

}  // namespace cloak

#endif  // CLOAK_COMMON_VOLUMES_H_
