#include "common/files.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/status_macros.h"

namespace cloak {
namespace {

thread_local int tls_remove_errno = 0;
thread_local std::string* tls_remove_path = nullptr;

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  if (::remove(path) != 0 && errno != ENOENT && tls_remove_errno == 0) {
    tls_remove_errno = errno;
    *tls_remove_path = path;
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes, Symlinks symlinks) {
  const int nofollow = symlinks == Symlinks::kRefuse ? O_NOFOLLOW : 0;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | nofollow));
  if (!fd) return ErrnoError(errno, "open ", path);
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read ", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path, " is larger than ", max_bytes, " bytes"));
    }
  }
  return out;
}

absl::Status WriteFileAtomic(const std::string& path, absl::string_view data, mode_t mode) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return ErrnoError(errno, "create ", tmp);
  absl::Status written = WriteAll(fd.get(), data);
  if (written.ok() && ::fchmod(fd.get(), mode) != 0) written = ErrnoError(errno, "chmod ", tmp);
  if (written.ok() && ::fsync(fd.get()) != 0) written = ErrnoError(errno, "fsync ", tmp);
  fd.Reset();
  if (written.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    written = ErrnoError(errno, "rename ", tmp, " to ", path);
  }
  if (!written.ok()) ::unlink(tmp.c_str());
  return written;
}

absl::Status WriteFileDurably(const std::string& path, absl::string_view data, mode_t mode) {
  RETURN_IF_ERROR(WriteFileAtomic(path, data, mode));
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) return ErrnoError(errno, "open directory ", dir);
  if (::fsync(dfd.get()) != 0) return ErrnoError(errno, "fsync directory ", dir);
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& path, mode_t mode) {
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) return absl::InvalidArgumentError("mkdir -p: empty path");
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    return S_ISDIR(st.st_mode) ? absl::OkStatus() : ErrnoError(ENOTDIR, "mkdir -p ", dir);
  }
  const size_t slash = dir.rfind('/');
  if (slash != std::string::npos && slash != 0) {
    RETURN_IF_ERROR(MakeDirs(dir.substr(0, slash), mode));
  }
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) return ErrnoError(errno, "mkdir ", dir);
  return absl::OkStatus();
}

absl::Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError(errno, "stat ", path);
  }
  std::string failed;
  tls_remove_errno = 0;
  tls_remove_path = &failed;
  const int rc = ::nftw(path.c_str(), RemoveEntry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  const int walk_errno = errno;
  tls_remove_path = nullptr;
  if (rc != 0) return ErrnoError(walk_errno, "walk ", path);
  if (tls_remove_errno != 0) {
    return ErrnoError(tls_remove_errno, "remove ", failed, " (is something still mounted below ",
                      path, "?)");
  }
  return absl::OkStatus();
}

}  // namespace cloak
