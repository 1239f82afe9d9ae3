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
//  - device nodes are handled as containerd does, except for the ones that
//    would open the guest itself (docs/agent.md, "Layer unpacking"): the
//    character devices every runtime puts in a container's /dev anyway
//    (null, zero, full, random, urandom, tty, console, ptmx) are created;
//    any other device node (block devices, mem, kmem, port, disks...) is
//    skipped, not created, and counted in UnpackStats::skipped_devices, as
//    containerd skips all of them when it cannot mknod; the container's /dev
//    is the runtime's own. Sockets are refused; fifos, setuid/setgid bits
//    and ownership (when running as root) are kept;
//  - caps per image (UnpackLimits) on uncompressed bytes, entries, path
//    depth and xattr bytes: a decompression bomb or a flood of tiny files
//    is refused (ResourceExhausted naming the limit) before it fills the
//    guest, and memory stays bounded (per entry, a few bytes of bookkeeping
//    for opaque directories).
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

// Caps over all the layers of one image (docs/agent.md, "Layer unpacking").
inline constexpr int64_t kDefaultMaxUnpackedBytes = int64_t{16} << 30;
inline constexpr int64_t kDefaultMaxUnpackedEntries = 500000;
inline constexpr int kDefaultMaxPathDepth = 128;
inline constexpr int64_t kDefaultMaxXattrBytes = int64_t{16} << 20;
// Linux's own limit on one file's xattr value.
inline constexpr int64_t kMaxXattrValueBytes = 64 * 1024;

struct UnpackLimits {
  // Uncompressed tar bytes read, and the sum of regular file sizes, each.
  int64_t max_bytes = kDefaultMaxUnpackedBytes;
  int64_t max_entries = kDefaultMaxUnpackedEntries;
  int max_path_depth = kDefaultMaxPathDepth;  // components of an entry's path
  int64_t max_xattr_bytes = kDefaultMaxXattrBytes;
};

// What an image's layers used so far; pass the same budget to every
// ApplyLayer of one image.
struct UnpackBudget {
  UnpackLimits limits;
  int64_t stream_bytes = 0;  // uncompressed tar bytes
  int64_t file_bytes = 0;    // declared sizes of regular files
  int64_t entries = 0;
  int64_t xattr_bytes = 0;
};

struct UnpackStats {
  int64_t entries = 0;
  int64_t files = 0;
  int64_t directories = 0;
  int64_t symlinks = 0;
  int64_t hardlinks = 0;
  int64_t whiteouts = 0;
  int64_t bytes = 0;  // regular file content written
  int64_t devices = 0;          // device nodes created
  int64_t skipped_devices = 0;  // device nodes not created (see above)
};

// Applies the tar (optionally gzip or zstd compressed; detected from the
// content) in `layer_path` on top of `rootfs_dir`, which must exist.
// `layer_name` (normally the digest) names the layer in errors.
// PermissionDenied "layer <name>: entry "<path>": <why>" for a refused entry,
// ResourceExhausted naming the UnpackLimits field for a cap reached,
// DataLoss for a corrupt archive, errno-derived codes for I/O failures.
// `budget` carries the image's caps and totals across its layers; nullptr:
// the default caps for this layer alone.
absl::StatusOr<UnpackStats> ApplyLayer(const std::string& layer_path,
                                       const std::string& rootfs_dir,
                                       absl::string_view layer_name,
                                       UnpackBudget* budget = nullptr);

}  // namespace cloak::agent::image

#endif  // CLOAK_AGENT_IMAGE_UNPACK_H_
