// The mounts containerd gets for a snapshot (pure), as containerd's own
// overlayfs snapshotter makes them, plus the guest-pull form.
#ifndef CLOAK_SNAPSHOTTER_MOUNTS_H_
#define CLOAK_SNAPSHOTTER_MOUNTS_H_

#include <string>
#include <vector>

#include "snapshotter/snapshot.h"

namespace cloak::snapshotter {

// `fs` and `work` are the snapshot's own directories; `parents_fs` the fs
// directories of its ancestors, nearest first.
//  - guest pull: bind `fs` (empty) with "cloak.image=<ref>"
//  - active, no parent: bind `fs` rw; active over parents: overlay with
//    upperdir=fs, workdir=work, lowerdir=parents
//  - view, no parent: bind `fs` ro; one parent: bind it ro; more: overlay
//    with lowerdir only
std::vector<Mount> SnapshotMounts(const Snapshot& snapshot, const std::string& fs,
                                  const std::string& work,
                                  const std::vector<std::string>& parents_fs);

}  // namespace cloak::snapshotter

#endif  // CLOAK_SNAPSHOTTER_MOUNTS_H_
