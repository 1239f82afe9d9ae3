// cloak-snapshotter's core: containerd's snapshot operations over a state
// directory (docs/snapshotter.md). Ordinary images get overlayfs snapshots
// as with containerd's own overlayfs snapshotter; layers the guest pulls are
// recorded without content (decision.h).
//
// Layout of the root: metadata.json (store.h), snapshots/<id>/fs and
// snapshots/<id>/work. Directories are named by number, never by a key.
#ifndef CLOAK_SNAPSHOTTER_SNAPSHOTTER_H_
#define CLOAK_SNAPSHOTTER_SNAPSHOTTER_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "snapshotter/decision.h"
#include "snapshotter/snapshot.h"
#include "snapshotter/store.h"

namespace cloak::snapshotter {

// Where image manifests come from: containerd's content store.
class ManifestSource {
 public:
  virtual ~ManifestSource() = default;
  // The blob `digest` of containerd namespace `ns`.
  virtual absl::StatusOr<std::string> ReadBlob(const std::string& ns,
                                               const std::string& digest) = 0;
};

struct SnapshotterOptions {
  std::string root;
  GuestPullMode mode = GuestPullMode::kEncrypted;
  // Namespace for content lookups when a request carries none (CRI's).
  std::string default_namespace = "k8s.io";
};

struct Usage {
  int64_t size = 0;
  int64_t inodes = 0;
};

class Snapshotter final {
 public:
  // Loads the state in options.root (creating the root if needed) and
  // removes directories no snapshot owns (left by a crash). `manifests` may
  // be null: then no manifest can be read and CRI layer unpacks in mode
  // `encrypted` fail with FailedPrecondition.
  static absl::StatusOr<std::unique_ptr<Snapshotter>> Create(
      const SnapshotterOptions& options, std::unique_ptr<ManifestSource> manifests);

  // containerd's operations, with its error codes: NotFound for an unknown
  // key or parent, AlreadyExists for a taken key (and, by design, for a
  // layer recorded for the guest), FailedPrecondition for a snapshot in the
  // wrong kind or with children, InvalidArgument for bad input.
  absl::StatusOr<std::vector<Mount>> Prepare(const std::string& ns, const std::string& key,
                                             const std::string& parent, const Labels& labels);
  absl::StatusOr<std::vector<Mount>> View(const std::string& ns, const std::string& key,
                                          const std::string& parent, const Labels& labels);
  absl::StatusOr<std::vector<Mount>> Mounts(const std::string& key);
  absl::Status Commit(const std::string& name, const std::string& key, const Labels& labels);
  absl::Status Remove(const std::string& key);
  absl::StatusOr<Snapshot> Stat(const std::string& key);
  // Only labels change: paths "labels" or "labels.<key>"; none means all.
  absl::StatusOr<Snapshot> Update(const std::string& name, const Labels& labels,
                                  const std::vector<std::string>& paths);
  absl::StatusOr<std::vector<Snapshot>> List(const std::vector<std::string>& filters);
  absl::StatusOr<Usage> GetUsage(const std::string& key);
  // Removes snapshot directories that no snapshot owns.
  absl::Status Cleanup();

  std::string FsDir(uint64_t id) const;
  std::string WorkDir(uint64_t id) const;

 private:
  Snapshotter(SnapshotterOptions options, std::unique_ptr<ManifestSource> manifests, State state)
      : options_(std::move(options)),
        file_(options_.root + "/metadata.json"),
        manifests_(std::move(manifests)),
        state_(std::move(state)) {}

  absl::StatusOr<std::vector<Mount>> CreateSnapshot(Kind kind, const std::string& ns,
                                                    const std::string& key,
                                                    const std::string& parent,
                                                    const Labels& labels);
  absl::StatusOr<std::vector<ManifestLayer>> ManifestLayers(const std::string& ns,
                                                            const Labels& labels);
  // Saves `next` and makes it the state; the state is unchanged on failure.
  absl::Status Persist(State next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<Mount> MountsOf(const Snapshot& s) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status MakeDirs(const Snapshot& s) const;

  const SnapshotterOptions options_;
  const MetadataFile file_;
  std::unique_ptr<ManifestSource> manifests_;

  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_);

  absl::Mutex cache_mu_;
  std::map<std::pair<std::string, std::string>, std::vector<ManifestLayer>> manifest_cache_
      ABSL_GUARDED_BY(cache_mu_);
};

// Disk usage of the tree at `path` (hard links counted once), not crossing
// into other filesystems.
absl::StatusOr<Usage> TreeUsage(const std::string& path);
// Removing trees is common/files.h's RemoveTree.

}  // namespace cloak::snapshotter

#endif  // CLOAK_SNAPSHOTTER_SNAPSHOTTER_H_
