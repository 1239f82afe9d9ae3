#include "shim/ttrpc/socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cloak::ttrpc {
namespace {

// Fills `addr` for `path`; returns the address length to pass to bind/connect.
absl::StatusOr<socklen_t> MakeAddress(const std::string& path, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr->sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path too long (", path.size(),
                                                   " bytes, limit ", sizeof(addr->sun_path) - 1,
                                                   "): ", path));
  }
  std::memcpy(addr->sun_path, path.data(), path.size());
  if (path[0] == '@') {
    addr->sun_path[0] = '\0';  // abstract namespace, no trailing NUL counted
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  }
  return static_cast<socklen_t>(sizeof(*addr));
}

}  // namespace

absl::StatusOr<std::string> SocketPathFromAddress(absl::string_view address) {
  absl::string_view path = address;
  if (absl::ConsumePrefix(&path, "unix://")) {
    // "unix:///run/x" -> "/run/x"
  } else if (absl::StrContains(path, "://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported ttrpc address \"", address, "\": only unix sockets"));
  }
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("empty socket path in \"", address, "\""));
  }
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path too long (", path.size(),
                                                   " bytes, limit ",
                                                   sizeof(sockaddr_un{}.sun_path) - 1, "): ",
                                                   path));
  }
  return std::string(path);
}

absl::StatusOr<UniqueFd> ListenUnix(absl::string_view address, int backlog) {
  ASSIGN_OR_RETURN(std::string path, SocketPathFromAddress(address));
  sockaddr_un addr;
  ASSIGN_OR_RETURN(socklen_t len, MakeAddress(path, &addr));
  if (path[0] != '@') {
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return absl::AlreadyExistsError(absl::StrCat("listen ", path, ": exists and is not a socket"));
      }
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return ErrnoError(errno, "remove stale socket ", path);
      }
    }
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(errno, "socket for ", path);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    return ErrnoError(errno, "bind ", path);
  }
  if (::listen(fd.get(), backlog) != 0) return ErrnoError(errno, "listen ", path);
  return fd;
}

absl::StatusOr<UniqueFd> ConnectUnix(absl::string_view address) {
  ASSIGN_OR_RETURN(std::string path, SocketPathFromAddress(address));
  sockaddr_un addr;
  ASSIGN_OR_RETURN(socklen_t len, MakeAddress(path, &addr));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(errno, "socket for ", path);
  while (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    if (errno == EINTR) continue;
    return ErrnoError(errno, "connect ", path);
  }
  return fd;
}

absl::Status SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "send on fd ", fd);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace cloak::ttrpc
