// Pod volumes into the guest (docs/cri.md "Volumes"). The host's copy of a
// configMap, secret, downwardAPI or projected (service-account token)
// volume is sent to the agent file by file with the CopyFile RPC (no
// filesystem is shared with the guest), and sent again when kubelet updates
// it: VolumeSync polls each volume's host directory and re-copies it when
// anything changed (kubelet's atomic writer swaps the `..data` symlink to a
// new timestamped directory; the agent replaces each entry atomically, then
// the entries the host removed are removed). emptyDir volumes are made by
// the agent in guest memory and are not copied.
#ifndef CLOAK_SHIM_VOLUMES_H_
#define CLOAK_SHIM_VOLUMES_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "cloak/agent/v1/agent.pb.h"
#include "common/volumes.h"

namespace cloak::shim {

// How often VolumeSync looks at the host directories (kubelet refreshes
// configMaps and secrets about once a minute; tokens before they expire).
inline constexpr absl::Duration kVolumePollInterval = absl::Seconds(2);
// Bounds on one volume: entries, total bytes, depth.
inline constexpr size_t kMaxVolumeEntries = 4096;
inline constexpr size_t kMaxVolumeBytes = 64 << 20;
inline constexpr int kMaxVolumeDepth = 16;

// The pod volumes an OCI spec's mounts bind (common/volumes.h), parsed from
// the bundle's config.json. Pure.
absl::StatusOr<std::vector<GuestVolume>> VolumesOfSpec(absl::string_view spec_json);

// One volume as it is on the host now: the CopyFile requests that make it
// in the guest (the volume's own directory first, each directory before
// what it holds, symlinks after the files and directories beside them),
// and a fingerprint that changes when anything in it changes.
struct VolumeSnapshot {
  std::vector<cloak::agent::v1::CopyFileRequest> entries;
  std::string fingerprint;
};
absl::StatusOr<VolumeSnapshot> SnapshotVolume(const GuestVolume& volume);

class VolumeSync {
 public:
  // Sends one request to the agent (Sandbox::CopyFile).
  using Sender = std::function<absl::Status(const cloak::agent::v1::CopyFileRequest&)>;

  // `interval` 0: no watcher thread (tests call PollOnce).
  VolumeSync(std::string sandbox_id, Sender send, absl::Duration interval = kVolumePollInterval);
  // Stops the watcher.
  ~VolumeSync();
  VolumeSync(const VolumeSync&) = delete;
  VolumeSync& operator=(const VolumeSync&) = delete;

  // Copies `volume` into the guest now and keeps it refreshed. A volume
  // already tracked (another container mounting it) is brought up to date.
  // The agent's refusal (PermissionDenied with the policy's reason) comes
  // back as is; the volume is then not tracked.
  absl::Status Add(const GuestVolume& volume);

  // One pass over every tracked volume: re-copies those whose host content
  // changed. A failure is logged (the shim log) and retried next pass.
  void PollOnce();

  size_t tracked() const;

 private:
  struct Tracked {
    GuestVolume volume;
    std::string fingerprint;
    std::vector<std::string> guest_paths;  // what the last copy wrote
  };
  // Copies `snapshot` and removes what the previous copy had and this one
  // has not.
  absl::Status Apply(Tracked& t, const VolumeSnapshot& snapshot);

  const std::string sandbox_id_;
  const Sender send_;
  mutable absl::Mutex mu_;
  std::map<std::string, Tracked> volumes_ ABSL_GUARDED_BY(mu_);  // by guest path
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_VOLUMES_H_
