// File helpers every component shares: whole-file reads with a size bound,
// atomic and durable replacement, mkdir -p and recursive removal that never
// crosses into another filesystem. Errors carry errno and the path
// (status_macros.h ErrnoError: NotFound, PermissionDenied, ...).
#ifndef CLOAK_COMMON_FILES_H_
#define CLOAK_COMMON_FILES_H_

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak {

inline constexpr size_t kDefaultMaxFileBytes = 64u << 20;

enum class Symlinks { kFollow, kRefuse };

// The whole of `path`. ResourceExhausted when it is larger than `max_bytes`;
// with Symlinks::kRefuse, ELOOP when `path` itself is a symbolic link.
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     size_t max_bytes = kDefaultMaxFileBytes,
                                     Symlinks symlinks = Symlinks::kFollow);

// Replaces `path` with `data` so that readers see the old or the new file,
// never a torn one: writes `path`.tmp.<pid> (never following a link),
// fsyncs it and renames it over `path`.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view data, mode_t mode = 0600);

// WriteFileAtomic, and then fsyncs the directory so the rename survives a
// crash.
absl::Status WriteFileDurably(const std::string& path, absl::string_view data, mode_t mode = 0600);

// mkdir -p; directories it creates get `mode`. OK when `path` exists.
absl::Status MakeDirs(const std::string& path, mode_t mode = 0755);

// Removes `path` and everything below it on the same filesystem; OK when it
// does not exist. It never descends into a filesystem mounted below `path`:
// such a mount point makes the removal fail with its errno (EBUSY), naming it.
absl::Status RemoveTree(const std::string& path);

}  // namespace cloak

#endif  // CLOAK_COMMON_FILES_H_
