#include "agent/rootfs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace cloak::agent {

namespace {

constexpr const char* kApplets[] = {"sh",    "cat",  "echo", "sleep", "ls",    "ps",
                                    "id",    "tty",  "stty", "true",  "false", "env",
                                    "kill",  "head", "tail", "wc",    "grep",  "hostname",
                                    "mkdir", "rm",   "test", "yes",   "dd",    "pwd"};

absl::Status WriteFile(const std::string& path, absl::string_view content, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return ErrnoError(errno, "create ", path);
  return WriteAll(fd.get(), content);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BusyboxRootfsProvider>> BusyboxRootfsProvider::Create(
    const std::string& busybox) {
  if (::access(busybox.c_str(), X_OK) != 0) return ErrnoError(errno, "busybox ", busybox);
  return std::unique_ptr<BusyboxRootfsProvider>(new BusyboxRootfsProvider(busybox));
}

absl::StatusOr<PreparedRootfs> BusyboxRootfsProvider::Prepare(absl::string_view /*container_id*/,
                                                              absl::string_view /*image_ref*/,
                                                              const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string root = absl::StrCat(dir, "/rootfs");
  for (const char* sub : {"", "/bin", "/etc", "/proc", "/sys", "/dev", "/tmp", "/root"}) {
    fs::create_directories(root + sub, ec);
    if (ec) return absl::InternalError(absl::StrCat("mkdir ", root, sub, ": ", ec.message()));
  }
  ::chmod((root + "/tmp").c_str(), 01777);
  fs::copy_file(busybox_, root + "/bin/busybox", fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat("copy ", busybox_, ": ", ec.message()));
  ::chmod((root + "/bin/busybox").c_str(), 0755);
  for (const char* applet : kApplets) {
    std::string link = absl::StrCat(root, "/bin/", applet);
    if (::symlink("busybox", link.c_str()) != 0 && errno != EEXIST) {
      return ErrnoError(errno, "symlink ", link);
    }
  }
  RETURN_IF_ERROR(WriteFile(root + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0644));
  RETURN_IF_ERROR(WriteFile(root + "/etc/group", "root:x:0:\n", 0644));
  PreparedRootfs prepared;
  prepared.rootfs_dir = root;
  return prepared;
}

absl::Status UnmountAndRemoveTree(const std::string& dir) {
  namespace fs = std::filesystem;
  struct stat top;
  if (::lstat(dir.c_str(), &top) != 0) {
    return errno == ENOENT ? absl::OkStatus() : ErrnoError(errno, "stat ", dir);
  }
  absl::Status first = absl::OkStatus();
  // Detach mounts below `dir` (deepest first) before deleting anything, so
  // nothing outside the tree is ever removed.
  std::error_code ec;
  std::vector<std::string> mounts;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::none, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    if (it->is_directory(ec) && !it->is_symlink(ec) &&
        ::lstat(it->path().c_str(), &st) == 0 && st.st_dev != top.st_dev) {
      mounts.push_back(it->path().string());
      it.disable_recursion_pending();
    }
  }
  for (auto m = mounts.rbegin(); m != mounts.rend(); ++m) {
    if (::umount2(m->c_str(), MNT_DETACH) != 0 && first.ok()) {
      first = ErrnoError(errno, "umount ", *m);
    }
  }
  if (!first.ok()) return first;
  // A rootfs the provider mounted on `dir/rootfs` itself.
  std::string rootfs = dir + "/rootfs";
  struct stat st;
  if (::lstat(rootfs.c_str(), &st) == 0 && st.st_dev != top.st_dev) {
    ::umount2(rootfs.c_str(), MNT_DETACH);
  }
  return cloak::RemoveTree(dir);
}

}  // namespace cloak::agent
