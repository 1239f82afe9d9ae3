#include "agent/volume_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/fd.h"
#include "common/status_macros.h"

namespace cloak::agent {
namespace {

using nlohmann::json;

absl::Status Errno(int err, absl::string_view what) {
  return absl::ErrnoToStatus(err, what);
}

// Opens directory `name` in `dir` without following a symlink, making it
// when it does not exist.
absl::StatusOr<UniqueFd> OpenOrMakeDir(int dir, const std::string& name, const std::string& shown) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) return UniqueFd(fd);
    if (errno == ELOOP || errno == ENOTDIR) {
      return absl::FailedPreconditionError(absl::StrCat(
          "copy: ", shown, " is a symlink or not a directory; volume paths never go through one"));
    }
    if (errno != ENOENT) return Errno(errno, absl::StrCat("copy: open ", shown));
    if (::mkdirat(dir, name.c_str(), 0755) != 0 && errno != EEXIST) {
      return Errno(errno, absl::StrCat("copy: mkdir ", shown));
    }
  }
  return absl::InternalError(absl::StrCat("copy: ", shown, " vanished while being made"));
}

// Removes `name` from `dir`, a directory with everything under it, never
// following a symlink.
absl::Status RemoveAt(int dir, const std::string& name, int depth = 0) {
  if (depth > 64) return absl::FailedPreconditionError("copy: remove: tree deeper than 64");
  struct stat st;
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return Errno(errno, absl::StrCat("copy: stat ", name));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT) {
      return Errno(errno, absl::StrCat("copy: unlink ", name));
    }
    return absl::OkStatus();
  }
  int fd = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Errno(errno, absl::StrCat("copy: open ", name));
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    int err = errno;
    ::close(fd);
    return Errno(err, absl::StrCat("copy: opendir ", name));
  }
  std::vector<std::string> children;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") children.push_back(std::move(n));
  }
  absl::Status status;
  for (const std::string& c : children) {
    status.Update(RemoveAt(::dirfd(d), c, depth + 1));
  }
  ::closedir(d);
  RETURN_IF_ERROR(status);
  if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return Errno(errno, absl::StrCat("copy: rmdir ", name));
  }
  return absl::OkStatus();
}

// `name` must not be a directory where a file or symlink goes.
absl::Status ClearDirectoryAt(int dir, const std::string& name) {
  struct stat st;
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
    return RemoveAt(dir, name);
  }
  return absl::OkStatus();
}

// The agent runs as root in the guest; an agent run by a user (tests)
// keeps its own ownership.
absl::Status Chown(int fd, const v1::CopyFileRequest& r, const std::string& path) {
  if (::geteuid() != 0) return absl::OkStatus();
  if (::fchown(fd, r.uid(), r.gid()) != 0) return Errno(errno, "copy: chown " + path);
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, const std::string& data, const std::string& shown) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(errno, absl::StrCat("copy: write ", shown));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyCopyFile(const std::string& volume_root_dir, const v1::CopyFileRequest& request) {
  const std::string& path = request.path();
  const std::string root = absl::StrCat(kGuestVolumeRoot, "/");
  if (path.size() > kMaxGuestPathBytes || !IsCleanAbsolutePath(path) ||
      !absl::StartsWith(path, root)) {
    return absl::InvalidArgumentError(absl::StrCat("copy: path \"", path,
                                                   "\" is not a clean absolute path under ",
                                                   kGuestVolumeRoot));
  }
  if (request.data().size() > kMaxCopyFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("copy: ", request.data().size(), " bytes for \"",
                                                   path, "\" exceed the agent's limit of ",
                                                   kMaxCopyFileBytes));
  }
  std::vector<std::string> parts = absl::StrSplit(path.substr(root.size()), '/');
  const mode_t perm = request.file_mode() & 07777;
  const uint32_t type = request.file_mode() & S_IFMT;
  if (!request.remove() && type != S_IFREG && type != S_IFDIR && type != S_IFLNK) {
    return absl::InvalidArgumentError(
        absl::StrCat("copy: \"", path, "\" is not a regular file, directory or symlink"));
  }

  int root_fd = ::open(volume_root_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root_fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "copy: the sandbox volume directory ", volume_root_dir, " is missing: create the sandbox first"));
  }
  UniqueFd dir(root_fd);
  std::string shown = kGuestVolumeRoot;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    absl::StrAppend(&shown, "/", parts[i]);
    ASSIGN_OR_RETURN(UniqueFd next, OpenOrMakeDir(dir.get(), parts[i], shown));
    dir = std::move(next);
  }
  const std::string& name = parts.back();
  if (request.remove()) return RemoveAt(dir.get(), name);

  const std::string tmp = absl::StrCat(".", name, ".cloak-tmp");
  if (type == S_IFDIR) {
    struct stat st;
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(RemoveAt(dir.get(), name));
    }
    ASSIGN_OR_RETURN(UniqueFd d, OpenOrMakeDir(dir.get(), name, path));
    RETURN_IF_ERROR(Chown(d.get(), request, path));
    if (::fchmod(d.get(), perm) != 0) return Errno(errno, "copy: chmod " + path);
    return absl::OkStatus();
  }
  (void)::unlinkat(dir.get(), tmp.c_str(), 0);
  if (type == S_IFLNK) {
    if (request.data().empty() || request.data().find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("copy: symlink \"", path, "\" has a bad target"));
    }
    if (::symlinkat(request.data().c_str(), dir.get(), tmp.c_str()) != 0) {
      return Errno(errno, "copy: symlink " + path);
    }
    if (::geteuid() == 0 &&
        ::fchownat(dir.get(), tmp.c_str(), request.uid(), request.gid(), AT_SYMLINK_NOFOLLOW) != 0) {
      return Errno(errno, "copy: chown " + path);
    }
  } else {
    int fd = ::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      0600);
    if (fd < 0) return Errno(errno, "copy: create " + path);
    UniqueFd file(fd);
    RETURN_IF_ERROR(WriteAll(file.get(), request.data(), path));
    RETURN_IF_ERROR(Chown(file.get(), request, path));
    if (::fchmod(file.get(), perm) != 0) return Errno(errno, "copy: chmod " + path);
  }
  RETURN_IF_ERROR(ClearDirectoryAt(dir.get(), name));
  if (::renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0) {
    int err = errno;
    (void)::unlinkat(dir.get(), tmp.c_str(), 0);
    return Errno(err, "copy: rename into " + path);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<VolumeMount>> VolumeMountsOfSpec(const json& host_spec) {
  std::vector<VolumeMount> out;
  if (!host_spec.is_object()) return out;
  auto it = host_spec.find("mounts");
  if (it == host_spec.end() || it->is_null()) return out;
  if (!it->is_array()) return absl::InvalidArgumentError("mounts: must be an array");
  if (it->size() > 256) return absl::InvalidArgumentError("mounts: more than 256 entries");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    if (!m.is_object()) return absl::InvalidArgumentError(absl::StrCat("mounts[", i, "]: not an object"));
    auto str = [&m](const char* k) {
      auto f = m.find(k);
      return f != m.end() && f->is_string() ? f->get<std::string>() : std::string();
    };
    std::vector<std::string> options;
    if (auto o = m.find("options"); o != m.end() && o->is_array()) {
      for (const json& e : *o) {
        if (e.is_string()) options.push_back(e.get<std::string>());
      }
    }
    const std::string destination = str("destination");
    absl::StatusOr<std::optional<GuestVolume>> v =
        GuestVolumeForMount(destination, str("type"), str("source"), options);
    if (!v.ok()) return absl::InvalidArgumentError(absl::StrCat("mounts[", i, "]: ", v.status().message()));
    if (!v->has_value()) continue;
    if (!IsCleanAbsolutePath(destination) || destination == "/" || destination == "/proc" ||
        destination == "/sys" || absl::StartsWith(destination, "/proc/") ||
        absl::StartsWith(destination, "/sys/")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mounts[", i, "]: volume destination \"", destination,
          "\" must be a clean absolute path, not \"/\" and not under /proc or /sys"));
    }
    out.push_back(VolumeMount{std::move(**v), destination});
  }
  return out;
}

json VolumeBindMount(const VolumeMount& m, const std::string& volume_root_dir) {
  json options = json::array({"rbind", "rprivate", "nosuid", "nodev"});
  if (m.volume.readonly) options.push_back("ro");
  const std::string source =
      absl::StrCat(volume_root_dir, m.volume.guest_path.substr(std::string(kGuestVolumeRoot).size()));
  return json{{"destination", m.destination}, {"type", "bind"}, {"source", source},
              {"options", options}};
}

}  // namespace cloak::agent
