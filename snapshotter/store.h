// Persistence of cloak-snapshotter's State: one JSON document replaced
// atomically (temp file, fsync, rename, fsync of the directory) on every
// change, so a kill -9 at any point leaves the last complete state.
#ifndef CLOAK_SNAPSHOTTER_STORE_H_
#define CLOAK_SNAPSHOTTER_STORE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "snapshotter/snapshot.h"

namespace cloak::snapshotter {

// The JSON form of `state` (format version 1).
std::string EncodeState(const State& state);
// Parses EncodeState's output. DataLoss, naming the problem, for anything
// else (truncated, wrong version, inconsistent records).
absl::StatusOr<State> DecodeState(absl::string_view json);

class MetadataFile {
 public:
  explicit MetadataFile(std::string path) : path_(std::move(path)) {}

  // The saved state; an empty State when the file does not exist yet.
  // A leftover temp file of an interrupted Save is ignored (and replaced by
  // the next Save). DataLoss when the file itself is unreadable.
  absl::StatusOr<State> Load() const;
  absl::Status Save(const State& state) const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace cloak::snapshotter

#endif  // CLOAK_SNAPSHOTTER_STORE_H_
