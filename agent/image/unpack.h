// Applies one image layer (a tar stream, uncompressed or gzip / zstd) to a
// rootfs directory, with OCI whiteouts, refusing anything that could reach
// outside the rootfs.
//
// The layer comes from an untrusted host, so every entry is checked:
//  - names containing a ".." component are refused (absolute names are taken
//    relative to the rootfs, as containerd does);
//  - parents are resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
//    from the rootfs fd, so a symlink in the path (made by this layer or an
//    earlier one) that leads outside the rootfs — an absolute target or
//    enough ".." — makes the entry fail with an error naming it; files are
//    created with O_EXCL | O_NOFOLLOW after removing whatever was there, so a
//    write never goes through a symlink or into a shared hardlinked inode;
//  - hardlink targets follow the same rules (no "..", resolved beneath);
//  - character and block device nodes and sockets are refused; fifos,
//    setuid/setgid bits and ownership (when running as root) are kept.
// Whiteouts: ".wh.<name>" removes <name> from lower layers;
// ".wh..wh..opq" empties its directory of lower-layer content (entries of
// the same layer are kept, whatever their order in the tar).
//
// On error the rootfs is partly written and must be discarded by the caller.
#ifndef CLOAK_AGENT_IMAGE_UNPACK_H_
#define CLOAK_AGENT_IMAGE_UNPACK_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::agent::image {

struct UnpackStats {
  int64_t entries = 0;
  int64_t files = 0;
  int64_t directories = 0;
  int64_t symlinks = 0;
  int64_t hardlinks = 0;
  int64_t whiteouts = 0;
  int64_t bytes = 0;  // regular file content written
};

// Applies the tar (optionally gzip or zstd compressed; detected from the
// content) in `layer_path` on top of `rootfs_dir`, which must exist.
// `layer_name` (normally the digest) names the layer in errors.
// PermissionDenied "layer <name>: entry "<path>": <why>" for a refused entry,
// DataLoss for a corrupt archive, errno-derived codes for I/O failures.
absl::StatusOr<UnpackStats> ApplyLayer(const std::string& layer_path,
                                       const std::string& rootfs_dir,
                                       absl::string_view layer_name);

}  // namespace cloak::agent::image

#endif  // CLOAK_AGENT_IMAGE_UNPACK_H_
