#include "snapshotter/mounts.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/guest_pull_mount.h"

namespace cloak::snapshotter {

std::vector<Mount> SnapshotMounts(const Snapshot& snapshot, const std::string& fs,
                                  const std::string& work,
                                  const std::vector<std::string>& parents_fs) {
  const bool ro = snapshot.kind == Kind::kView;
  if (snapshot.guest_pull) {
    return {
        Mount{"bind",
              fs,
              {"rbind", ro ? "ro" : "rw", absl::StrCat(kGuestPullImageOption, snapshot.image)}}};
  }
  if (parents_fs.empty()) return {Mount{"bind", fs, {"rbind", ro ? "ro" : "rw"}}};
  const std::string lower = absl::StrCat("lowerdir=", absl::StrJoin(parents_fs, ":"));
  if (ro) {
    if (parents_fs.size() == 1) return {Mount{"bind", parents_fs[0], {"rbind", "ro"}}};
    return {Mount{"overlay", "overlay", {lower}}};
  }
  return {Mount{"overlay",
                "overlay",
                {absl::StrCat("workdir=", work), absl::StrCat("upperdir=", fs), lower}}};
}

}  // namespace cloak::snapshotter
