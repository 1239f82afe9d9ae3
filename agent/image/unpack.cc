#include "agent/image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <set>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/fd.h"
#include "common/status_macros.h"

namespace cloak::agent::image {
namespace {

constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kOpaqueWhiteout[] = ".wh..wh..opq";
constexpr size_t kMaxPathLength = 4096;

// The character devices every runtime puts in a container's /dev
// (docs/agent.md, "Layer unpacking"): created as containerd creates them.
bool IsStandardCharDevice(unsigned major_num, unsigned minor_num) {
  switch (major_num) {
    case 1:  // null, zero, full, random, urandom
      return minor_num == 3 || minor_num == 5 || minor_num == 7 || minor_num == 8 ||
             minor_num == 9;
    case 5:  // tty, console, ptmx
      return minor_num <= 2;
    default:
      return false;
  }
}

int Openat2(int dirfd, const std::string& path, uint64_t flags, uint64_t resolve) {
  struct open_how how = {};
  how.flags = flags | O_CLOEXEC;
  how.resolve = resolve;
  int fd;
  do {
    fd = static_cast<int>(
        syscall(SYS_openat2, dirfd, path.empty() ? "." : path.c_str(), &how, sizeof(how)));
  } while (fd < 0 && errno == EAGAIN);
  return fd;
}

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

absl::Status ListDir(int dirfd, std::vector<std::string>* names) {
  int dup_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return ErrnoError(errno, "dup directory fd");
  DIR* dir = fdopendir(dup_fd);
  if (dir == nullptr) {
    int e = errno;
    close(dup_fd);
    return ErrnoError(e, "fdopendir");
  }
  rewinddir(dir);
  while (true) {
    errno = 0;
    struct dirent* de = readdir(dir);
    if (de == nullptr) break;
    absl::string_view n = de->d_name;
    if (n == "." || n == "..") continue;
    names->emplace_back(n);
  }
  int e = errno;
  closedir(dir);
  if (e != 0) return ErrnoError(e, "readdir");
  return absl::OkStatus();
}

// Removes `name` in `dirfd` (recursively for directories) without ever
// following a symlink. OK if it does not exist.
absl::Status RemoveTree(int dirfd, const std::string& name) {
  struct stat st;
  if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError(errno, "stat ", name);
  }
  if (S_ISDIR(st.st_mode)) {
    UniqueFd child(openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!child) return ErrnoError(errno, "open directory ", name);
    std::vector<std::string> names;
    RETURN_IF_ERROR(ListDir(child.get(), &names));
    for (const std::string& n : names) RETURN_IF_ERROR(RemoveTree(child.get(), n));
    if (unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) {
      return ErrnoError(errno, "remove directory ", name);
    }
    return absl::OkStatus();
  }
  if (unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "remove ", name);
  }
  return absl::OkStatus();
}

class LayerApplier {
 public:
  LayerApplier(int root, absl::string_view layer, UnpackBudget& budget)
      : root_(root), layer_(layer), budget_(budget), stream_base_(budget.stream_bytes) {
    chown_ = geteuid() == 0;
  }

  absl::Status Apply(struct archive* a) {
    while (true) {
      struct archive_entry* entry = nullptr;
      int r = archive_read_next_header(a, &entry);
      budget_.stream_bytes = stream_base_ + archive_filter_bytes(a, 0);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
        return absl::DataLossError(absl::StrCat("layer ", layer_, ": reading tar entry ",
                                                stats_.entries + 1, ": ", ErrorString(a),
                                                " (corrupt or unsupported archive)"));
      }
      ++stats_.entries;
      const char* raw = archive_entry_pathname(entry);
      absl::string_view shown = raw != nullptr ? raw : "?";
      if (++budget_.entries > budget_.limits.max_entries) {
        return Limit(shown, "max_entries",
                     absl::StrCat("the image has more than ", budget_.limits.max_entries,
                                  " entries"));
      }
      RETURN_IF_ERROR(CheckStreamBytes(shown));
      RETURN_IF_ERROR(ApplyEntry(a, entry));
    }
    return absl::OkStatus();
  }

  const UnpackStats& stats() const { return stats_; }

 private:
  static std::string ErrorString(struct archive* a) {
    const char* s = archive_error_string(a);
    return s != nullptr ? s : "unknown libarchive error";
  }

  absl::Status Refuse(absl::string_view name, absl::string_view why) const {
    return absl::PermissionDeniedError(absl::StrCat("layer ", layer_, ": entry \"", name,
                                                    "\": ", why, "; the layer is refused"));
  }
  // A cap of UnpackLimits reached: names the limit.
  absl::Status Limit(absl::string_view name, absl::string_view limit, absl::string_view what) const {
    return absl::ResourceExhaustedError(
        absl::StrCat("layer ", layer_, ": entry \"", name, "\": ", what, " (unpack limit ", limit,
                     "; a decompression bomb or an image too large for the guest); the layer "
                     "is refused"));
  }
  absl::Status CheckStreamBytes(absl::string_view name) const {
    if (budget_.stream_bytes > budget_.limits.max_bytes) {
      return Limit(name, "max_bytes",
                   absl::StrCat("the image's layers uncompress to more than ",
                                budget_.limits.max_bytes, " bytes"));
    }
    return absl::OkStatus();
  }
  absl::Status Errno(absl::string_view name, int e, absl::string_view what) const {
    return ErrnoError(e, "layer ", layer_, ": entry \"", name, "\": ", what);
  }

  // Splits a tar name into components, refusing "..".
  absl::Status Clean(absl::string_view name, absl::string_view raw,
                     std::vector<std::string>* out) const {
    if (raw.size() > kMaxPathLength) return Refuse(name, "the path is too long");
    for (absl::string_view c : absl::StrSplit(raw, '/')) {
      if (c.empty() || c == ".") continue;
      if (c == "..") {
        return Refuse(name, absl::StrCat("path \"", raw,
                                         "\" contains \"..\" (path traversal out of the rootfs)"));
      }
      out->emplace_back(c);
    }
    if (out->size() > static_cast<size_t>(budget_.limits.max_path_depth)) {
      return Limit(name, "max_path_depth",
                   absl::StrCat("path \"", raw.substr(0, 200), "\" is ", out->size(),
                                " components deep, more than ", budget_.limits.max_path_depth));
    }
    return absl::OkStatus();
  }

  // Opens (O_PATH) the directory made of `comps`, beneath the rootfs,
  // creating missing directories if `create`. NotFound if missing and !create.
  // With `create`, every directory on the way counts as written by this
  // layer (an opaque whiteout above keeps it and hides only lower content).
  absl::StatusOr<UniqueFd> OpenDir(absl::string_view name, const std::vector<std::string>& comps,
                                   bool create) {
    UniqueFd cur(Openat2(root_, ".", O_PATH | O_DIRECTORY, kResolve));
    if (!cur) return Errno(name, errno, "open rootfs");
    std::string prefix;
    for (const std::string& c : comps) {
      prefix = prefix.empty() ? c : absl::StrCat(prefix, "/", c);
      for (int attempt = 0;; ++attempt) {
        int fd = Openat2(root_, prefix, O_PATH | O_DIRECTORY, kResolve);
        if (fd >= 0) {
          cur.Reset(fd);
          struct stat st;
          if (create && fstat(fd, &st) == 0) written_inodes_.insert(st.st_ino);
          break;
        }
        int e = errno;
        if (e == EXDEV || e == ELOOP) {
          return Refuse(name, absl::StrCat("path component \"", prefix,
                                           "\" is a symlink that resolves outside the rootfs"));
        }
        if (e == ENOTDIR) {
          return Refuse(name, absl::StrCat("path component \"", prefix, "\" is not a directory"));
        }
        if (e == ENOENT && create && attempt == 0) {
          if (mkdirat(cur.get(), c.c_str(), 0755) != 0 && errno != EEXIST) {
            return Errno(name, errno, absl::StrCat("create directory ", prefix));
          }
          continue;
        }
        if (e == ENOENT) {
          if (!create) return absl::NotFoundError(prefix);
          return Refuse(name, absl::StrCat("path component \"", prefix,
                                           "\" is a dangling symlink"));
        }
        return Errno(name, e, absl::StrCat("open ", prefix));
      }
    }
    return cur;
  }

  static std::string Join(const std::vector<std::string>& comps) {
    return absl::StrJoin(comps, "/");
  }

  // Removes, below directory `dirfd` (path `prefix`), everything not written
  // by this layer: an entry this layer wrote is known by its inode (or, for
  // a hardlink to lower content, by its path).
  absl::Status ClearLower(int dirfd, const std::string& prefix) {
    std::vector<std::string> names;
    RETURN_IF_ERROR(ListDir(dirfd, &names));
    for (const std::string& n : names) {
      std::string child = prefix.empty() ? n : absl::StrCat(prefix, "/", n);
      struct stat st;
      if (fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        return ErrnoError(errno, "stat ", child);
      }
      if (!written_inodes_.contains(st.st_ino) && !written_links_.contains(child)) {
        RETURN_IF_ERROR(RemoveTree(dirfd, n));
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        UniqueFd sub(openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) return ErrnoError(errno, "open directory ", child);
        RETURN_IF_ERROR(ClearLower(sub.get(), child));
      }
    }
    return absl::OkStatus();
  }

  // Records that this layer wrote `base` in `parent`.
  void MarkWritten(int parent, const std::string& base) {
    struct stat st;
    if (fstatat(parent, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      written_inodes_.insert(st.st_ino);
    }
  }

  absl::Status ApplyWhiteout(absl::string_view name, const std::vector<std::string>& parent,
                             const std::string& base) {
    ++stats_.whiteouts;
    if (base == kOpaqueWhiteout) {
      RETURN_IF_ERROR(OpenDir(name, parent, /*create=*/true).status());
      std::string path = Join(parent);
      UniqueFd dir(Openat2(root_, path, O_RDONLY | O_DIRECTORY, kResolve));
      if (!dir) return Errno(name, errno, "open opaque directory");
      RETURN_IF_ERROR(Annotate(ClearLower(dir.get(), path),
                               absl::StrCat("layer ", layer_, ": opaque whiteout \"", name, "\"")));
      struct stat st;
      if (fstat(dir.get(), &st) == 0) written_inodes_.insert(st.st_ino);
      return absl::OkStatus();
    }
    if (absl::StartsWith(base, ".wh..wh.")) return absl::OkStatus();  // aufs metadata
    std::string target = base.substr(strlen(kWhiteoutPrefix));
    if (target.empty() || target == "." || target == "..") {
      return Refuse(name, "malformed whiteout name");
    }
    auto dir = OpenDir(name, parent, /*create=*/false);
    if (absl::IsNotFound(dir.status())) return absl::OkStatus();
    if (!dir.ok()) return dir.status();
    // A whiteout hides lower layers only: what this layer already wrote
    // there stays (its entries may come in any order).
    struct stat st;
    if (fstatat(dir->get(), target.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        written_inodes_.contains(st.st_ino)) {
      if (!S_ISDIR(st.st_mode)) return absl::OkStatus();
      std::string path = parent.empty() ? target : absl::StrCat(Join(parent), "/", target);
      UniqueFd sub(openat(dir->get(), target.c_str(),
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) return Errno(name, errno, "open whited-out directory");
      return Annotate(ClearLower(sub.get(), path),
                      absl::StrCat("layer ", layer_, ": whiteout \"", name, "\""));
    }
    return Annotate(RemoveTree(dir->get(), target),
                    absl::StrCat("layer ", layer_, ": whiteout \"", name, "\""));
  }

  absl::Status SetOwnerAndTimes(absl::string_view name, int parent, const std::string& base,
                                struct archive_entry* entry) const {
    if (chown_ && fchownat(parent, base.c_str(), static_cast<uid_t>(archive_entry_uid(entry)),
                           static_cast<gid_t>(archive_entry_gid(entry)),
                           AT_SYMLINK_NOFOLLOW) != 0) {
      return Errno(name, errno, "chown");
    }
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = archive_entry_mtime(entry);
    times[0].tv_nsec = times[1].tv_nsec = archive_entry_mtime_nsec(entry);
    utimensat(parent, base.c_str(), times, AT_SYMLINK_NOFOLLOW);  // best effort
    return absl::OkStatus();
  }

  absl::Status WriteFile(struct archive* a, absl::string_view name, int parent,
                         const std::string& base, struct archive_entry* entry) {
    mode_t mode = archive_entry_perm(entry) & 07777;
    UniqueFd fd(openat(parent, base.c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return Errno(name, errno, "create file");
    const void* buf;
    size_t size;
    la_int64_t offset;
    while (true) {
      int r = archive_read_data_block(a, &buf, &size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
        return absl::DataLossError(absl::StrCat("layer ", layer_, ": entry \"", name,
                                                "\": reading data: ", ErrorString(a)));
      }
      budget_.stream_bytes = stream_base_ + archive_filter_bytes(a, 0);
      RETURN_IF_ERROR(CheckStreamBytes(name));
      const char* p = static_cast<const char*>(buf);
      while (size > 0) {
        ssize_t n = pwrite(fd.get(), p, size, offset);
        if (n < 0) {
          if (errno == EINTR) continue;
          return Errno(name, errno, "write");
        }
        p += n;
        size -= static_cast<size_t>(n);
        offset += n;
        stats_.bytes += n;
      }
    }
    if (ftruncate(fd.get(), archive_entry_size(entry)) != 0) return Errno(name, errno, "truncate");
    // xattrs (e.g. security.capability): best effort.
    if (archive_entry_xattr_reset(entry) > 0) {
      const char* xname;
      const void* value;
      size_t len;
      while (archive_entry_xattr_next(entry, &xname, &value, &len) == ARCHIVE_OK) {
        fsetxattr(fd.get(), xname, value, len, 0);
      }
    }
    if (chown_ && fchown(fd.get(), static_cast<uid_t>(archive_entry_uid(entry)),
                         static_cast<gid_t>(archive_entry_gid(entry))) != 0) {
      return Errno(name, errno, "chown");
    }
    // After chown, which clears setuid/setgid.
    if (fchmod(fd.get(), mode) != 0) return Errno(name, errno, "chmod");
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = archive_entry_mtime(entry);
    times[0].tv_nsec = times[1].tv_nsec = archive_entry_mtime_nsec(entry);
    futimens(fd.get(), times);
    ++stats_.files;
    return absl::OkStatus();
  }

  absl::Status ApplyEntry(struct archive* a, struct archive_entry* entry) {
    const char* raw_name = archive_entry_pathname(entry);
    if (raw_name == nullptr) {
      return absl::DataLossError(absl::StrCat("layer ", layer_, ": tar entry ", stats_.entries,
                                              " has no readable name"));
    }
    std::string name = raw_name;
    std::vector<std::string> comps;
    RETURN_IF_ERROR(Clean(name, name, &comps));
    if (comps.empty()) return absl::OkStatus();  // the root itself
    std::string base = comps.back();
    comps.pop_back();
    const std::vector<std::string>& parent_comps = comps;

    if (absl::StartsWith(base, kWhiteoutPrefix)) return ApplyWhiteout(name, parent_comps, base);

    const char* hardlink = archive_entry_hardlink(entry);
    mode_t type = archive_entry_filetype(entry);
    RETURN_IF_ERROR(CheckXattrs(name, entry));
    if (hardlink == nullptr) {
      switch (type) {
        case AE_IFREG: {
          budget_.file_bytes += archive_entry_size(entry);
          if (budget_.file_bytes > budget_.limits.max_bytes) {
            return Limit(name, "max_bytes",
                         absl::StrCat("the image's files add up to more than ",
                                      budget_.limits.max_bytes, " bytes (this one declares ",
                                      archive_entry_size(entry), ")"));
          }
          break;
        }
        case AE_IFDIR:
        case AE_IFLNK:
        case AE_IFIFO:
          break;
        case AE_IFCHR:
        case AE_IFBLK:
          if (type == AE_IFBLK || !IsStandardCharDevice(archive_entry_rdevmajor(entry),
                                                         archive_entry_rdevminor(entry))) {
            ++stats_.skipped_devices;  // not created: see unpack.h
            return absl::OkStatus();
          }
          break;
        case AE_IFSOCK:
          return Refuse(name, "sockets are not allowed in images");
        default:
          return Refuse(name, absl::StrCat("unknown file type 0", type));
      }
    }

    // Validate a hardlink target before touching anything.
    std::vector<std::string> link_comps;
    if (hardlink != nullptr) {
      RETURN_IF_ERROR(Clean(name, hardlink, &link_comps));
      if (link_comps.empty()) return Refuse(name, "hardlink to the rootfs itself");
    }

    ASSIGN_OR_RETURN(UniqueFd parent, OpenDir(name, parent_comps, /*create=*/true));
    std::string path = parent_comps.empty() ? base : absl::StrCat(Join(parent_comps), "/", base);

    // Replace whatever is there, except a directory by a directory.
    struct stat st;
    bool exists = fstatat(parent.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    bool keep_dir = exists && S_ISDIR(st.st_mode) && hardlink == nullptr && type == AE_IFDIR;
    if (exists && !keep_dir) {
      RETURN_IF_ERROR(Annotate(RemoveTree(parent.get(), base),
                               absl::StrCat("layer ", layer_, ": entry \"", name, "\"")));
    }

    if (hardlink != nullptr) {
      std::string link_base = link_comps.back();
      link_comps.pop_back();
      auto src = OpenDir(name, link_comps, /*create=*/false);
      if (absl::IsNotFound(src.status())) {
        return Refuse(name, absl::StrCat("hardlink target \"", hardlink, "\" does not exist"));
      }
      if (!src.ok()) {
        // OpenDir's refusal already names the layer and the entry.
        if (absl::IsPermissionDenied(src.status())) return src.status();
        return Refuse(name, absl::StrCat("hardlink target \"", hardlink,
                                         "\" is not inside the rootfs: ", src.status().message()));
      }
      if (linkat(src->get(), link_base.c_str(), parent.get(), base.c_str(), 0) != 0) {
        int e = errno;
        if (e == ENOENT) {
          return Refuse(name, absl::StrCat("hardlink target \"", hardlink, "\" does not exist"));
        }
        return Errno(name, e, absl::StrCat("hardlink to ", hardlink));
      }
      ++stats_.hardlinks;
      written_links_.insert(path);
      return absl::OkStatus();
    } else if (type == AE_IFDIR) {
      if (!keep_dir && mkdirat(parent.get(), base.c_str(), 0700) != 0) {
        return Errno(name, errno, "mkdir");
      }
      RETURN_IF_ERROR(SetOwnerAndTimes(name, parent.get(), base, entry));
      if (fchmodat(parent.get(), base.c_str(), archive_entry_perm(entry) & 07777, 0) != 0) {
        return Errno(name, errno, "chmod");
      }
      ++stats_.directories;
    } else if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(entry);
      if (target == nullptr || *target == '\0') return Refuse(name, "symlink with an empty target");
      if (symlinkat(target, parent.get(), base.c_str()) != 0) {
        return Errno(name, errno, "symlink");
      }
      RETURN_IF_ERROR(SetOwnerAndTimes(name, parent.get(), base, entry));
      ++stats_.symlinks;
    } else if (type == AE_IFCHR) {
      dev_t dev = makedev(archive_entry_rdevmajor(entry), archive_entry_rdevminor(entry));
      if (mknodat(parent.get(), base.c_str(), S_IFCHR | 0600, dev) != 0) {
        if (errno == EPERM) {  // no CAP_MKNOD (a user namespace): skipped, as containerd does
          ++stats_.skipped_devices;
          return absl::OkStatus();
        }
        return Errno(name, errno, "mknod");
      }
      RETURN_IF_ERROR(SetOwnerAndTimes(name, parent.get(), base, entry));
      if (fchmodat(parent.get(), base.c_str(), archive_entry_perm(entry) & 07777, 0) != 0) {
        return Errno(name, errno, "chmod");
      }
      ++stats_.devices;
    } else if (type == AE_IFIFO) {
      if (mknodat(parent.get(), base.c_str(), S_IFIFO | 0600, 0) != 0) {
        return Errno(name, errno, "mkfifo");
      }
      RETURN_IF_ERROR(SetOwnerAndTimes(name, parent.get(), base, entry));
      if (fchmodat(parent.get(), base.c_str(), archive_entry_perm(entry) & 07777, 0) != 0) {
        return Errno(name, errno, "chmod");
      }
    } else {
      RETURN_IF_ERROR(WriteFile(a, name, parent.get(), base, entry));
    }
    MarkWritten(parent.get(), base);
    return absl::OkStatus();
  }

  absl::Status CheckXattrs(absl::string_view name, struct archive_entry* entry) {
    if (archive_entry_xattr_reset(entry) <= 0) return absl::OkStatus();
    const char* xname;
    const void* value;
    size_t len;
    // A pax header may carry the same xattr twice (LIBARCHIVE. and SCHILY.).
    std::vector<std::string> seen;
    while (archive_entry_xattr_next(entry, &xname, &value, &len) == ARCHIVE_OK) {
      if (std::find(seen.begin(), seen.end(), xname) != seen.end()) continue;
      seen.emplace_back(xname);
      if (static_cast<int64_t>(len) > kMaxXattrValueBytes) {
        return Refuse(name, absl::StrCat("xattr ", xname, " is ", len,
                                         " bytes, more than Linux allows (",
                                         kMaxXattrValueBytes, ")"));
      }
      budget_.xattr_bytes += static_cast<int64_t>(len) + static_cast<int64_t>(strlen(xname));
      if (budget_.xattr_bytes > budget_.limits.max_xattr_bytes) {
        return Limit(name, "max_xattr_bytes",
                     absl::StrCat("the image's xattrs add up to more than ",
                                  budget_.limits.max_xattr_bytes, " bytes"));
      }
    }
    return absl::OkStatus();
  }

  int root_;
  std::string layer_;
  UnpackBudget& budget_;
  const int64_t stream_base_;
  bool chown_;
  // What this layer wrote, for its opaque whiteouts: inodes (8 bytes an
  // entry), and the paths of hardlinks (which share a lower inode).
  absl::flat_hash_set<ino_t> written_inodes_;
  absl::flat_hash_set<std::string> written_links_;
  UnpackStats stats_;
};

}  // namespace

absl::StatusOr<UnpackStats> ApplyLayer(const std::string& layer_path,
                                       const std::string& rootfs_dir,
                                       absl::string_view layer_name, UnpackBudget* budget) {
  UnpackBudget own;
  if (budget == nullptr) budget = &own;
  UniqueFd root(open(rootfs_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoError(errno, "open rootfs directory ", rootfs_dir);
  std::unique_ptr<struct archive, ArchiveDeleter> a(archive_read_new());
  if (!a) return absl::ResourceExhaustedError("libarchive: out of memory");
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), layer_path.c_str(), 1 << 16) != ARCHIVE_OK) {
    const char* e = archive_error_string(a.get());
    return absl::DataLossError(absl::StrCat("layer ", layer_name, ": cannot open as a tar: ",
                                            e != nullptr ? e : "unknown error"));
  }
  LayerApplier applier(root.get(), layer_name, *budget);
  RETURN_IF_ERROR(applier.Apply(a.get()));
  return applier.stats();
}

}  // namespace cloak::agent::image
