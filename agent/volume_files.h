// Pod volumes in the guest (docs/cri.md "Volumes"): applying the host's
// CopyFile requests under the sandbox's volume directory, and the bind
// mounts that put a volume into a container. The host's requests are
// hostile input: every path is walked component by component without
// following symlinks, so nothing is ever written outside the directory.
#ifndef CLOAK_AGENT_VOLUME_FILES_H_
#define CLOAK_AGENT_VOLUME_FILES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cloak/agent/v1/agent.pb.h"
#include "common/volumes.h"
#include "nlohmann/json.hpp"

namespace cloak::agent {

// Largest file one CopyFile may carry (the policy's max_bytes may be lower).
inline constexpr size_t kMaxCopyFileBytes = 8 << 20;

// Writes (or removes) the entry `request.path` names. `volume_root_dir` is
// the guest directory that kGuestVolumeRoot names (the same path in the
// guest; another one for an agent run on a host in tests). A regular file
// and a symlink are replaced atomically (written beside, then renamed), so
// a container never sees half a file. Missing parent directories are made
// (0755). InvalidArgument for a path outside the root or not clean,
// FailedPrecondition when a parent is a symlink or not a directory.
absl::Status ApplyCopyFile(const std::string& volume_root_dir,
                           const cloak::agent::v1::CopyFileRequest& request);

// The pod volumes the host spec's mounts bind (common/volumes.h), with
// their destinations checked: clean absolute paths, not "/", not under
// /proc or /sys. Pure.
struct VolumeMount {
  GuestVolume volume;
  std::string destination;
};
absl::StatusOr<std::vector<VolumeMount>> VolumeMountsOfSpec(const nlohmann::json& host_spec);

// The OCI mount that binds `m` from under `volume_root_dir` (ro when the
// host's mount was). Pure.
nlohmann::json VolumeBindMount(const VolumeMount& m, const std::string& volume_root_dir);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_VOLUME_FILES_H_
