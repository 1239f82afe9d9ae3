// The snapshot records cloak-snapshotter keeps (docs/snapshotter.md), in the
// terms of containerd's snapshots service.
#ifndef CLOAK_SNAPSHOTTER_SNAPSHOT_H_
#define CLOAK_SNAPSHOTTER_SNAPSHOT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cloak::snapshotter {

// containerd's snapshot kinds, with its enum values.
enum class Kind { kView = 1, kActive = 2, kCommitted = 3 };

absl::string_view KindName(Kind kind);  // "view", "active", "committed"

using Labels = std::map<std::string, std::string>;

// Labels containerd sets (docs/snapshotter.md).
inline constexpr absl::string_view kLabelTargetRef = "containerd.io/snapshot.ref";
inline constexpr absl::string_view kLabelImageRef = "containerd.io/snapshot/cri.image-ref";
inline constexpr absl::string_view kLabelManifestDigest =
    "containerd.io/snapshot/cri.manifest-digest";
inline constexpr absl::string_view kLabelLayerDigest = "containerd.io/snapshot/cri.layer-digest";
// Set by cloak-snapshotter on the snapshots whose content only the guest has.
inline constexpr absl::string_view kLabelGuestPull = "containerd.io/snapshot/cloak.guest-pull";

struct Snapshot {
  std::string name;
  std::string parent;  // name of the parent snapshot, "" for none
  Kind kind = Kind::kActive;
  // Directory <root>/snapshots/<id>; never derived from a name.
  uint64_t id = 0;
  absl::Time created = absl::UnixEpoch();
  absl::Time updated = absl::UnixEpoch();
  Labels labels;
  // The content exists only in the guest, which pulls `image` itself; the
  // host holds an empty directory for it.
  bool guest_pull = false;
  std::string image;
  // Committed snapshots: disk usage measured at commit.
  int64_t size = 0;
  int64_t inodes = 0;
};

// Everything cloak-snapshotter persists.
struct State {
  uint64_t next_id = 1;
  std::map<std::string, Snapshot> snapshots;  // by name
};

// One mount as containerd's Mount message carries it.
struct Mount {
  std::string type;
  std::string source;
  std::vector<std::string> options;
};

}  // namespace cloak::snapshotter

#endif  // CLOAK_SNAPSHOTTER_SNAPSHOT_H_
