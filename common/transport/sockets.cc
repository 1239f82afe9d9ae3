#include "common/transport/sockets.h"

#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cloak::transport::internal {
namespace {

int PollTimeoutMs(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return -1;
  if (d <= absl::ZeroDuration()) return 0;
  // Round up so a sub-millisecond remainder does not become a busy loop.
  int64_t ms = absl::ToInt64Milliseconds(d + absl::Microseconds(999));
  return ms > 1000 * 1000 ? 1000 * 1000 : static_cast<int>(ms);
}

absl::StatusOr<UniqueFd> ConnectAddr(int domain, const sockaddr* addr, socklen_t len,
                                     absl::string_view what, absl::Duration timeout, int* err) {
  *err = 0;
  UniqueFd fd(::socket(domain, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    *err = errno;
    return ErrnoError(*err, "socket for ", what);
  }
  if (::connect(fd.get(), addr, len) == 0) return fd;
  if (errno != EINPROGRESS && errno != EINTR) {
    *err = errno;
    return ErrnoError(*err, "connect to ", what);
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    pollfd p{fd.get(), POLLOUT, 0};
    int r = ::poll(&p, 1, PollTimeoutMs(deadline - absl::Now()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      *err = errno;
      return ErrnoError(*err, "poll connect to ", what);
    }
    if (r == 0) {
      *err = ETIMEDOUT;
      return absl::DeadlineExceededError(absl::StrCat(
          "connect to ", what, " did not complete within ", absl::FormatDuration(timeout)));
    }
    break;
  }
  int so_error = 0;
  socklen_t so_len = sizeof(so_error);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &so_len) < 0) {
    *err = errno;
    return ErrnoError(*err, "getsockopt(SO_ERROR) for ", what);
  }
  if (so_error != 0) {
    *err = so_error;
    return ErrnoError(so_error, "connect to ", what);
  }
  return fd;
}

absl::StatusOr<sockaddr_un> UnixAddr(absl::string_view path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path \"", path,
                                                   "\" is empty or longer than ",
                                                   sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

sockaddr_vm VsockAddr(uint32_t cid, uint32_t port) {
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = cid;
  addr.svm_port = port;
  return addr;
}

}  // namespace

absl::StatusOr<UniqueFd> ConnectUnix(absl::string_view path, absl::Duration timeout, int* err) {
  *err = 0;
  ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddr(path));
  return ConnectAddr(AF_UNIX, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr),
                     absl::StrCat("unix socket ", path), timeout, err);
}

absl::StatusOr<UniqueFd> ConnectVsock(uint32_t cid, uint32_t port, absl::Duration timeout,
                                      int* err) {
  sockaddr_vm addr = VsockAddr(cid, port);
  return ConnectAddr(AF_VSOCK, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr),
                     absl::StrCat("vsock ", cid, ":", port), timeout, err);
}

bool IsRetryableConnectErrno(int err) {
  switch (err) {
    case ENOENT:        // the socket file is not there yet
    case ECONNREFUSED:  // nobody listens yet
    case ECONNRESET:    // vsock: the guest kernel is up, the agent is not
    case ETIMEDOUT:
    case EAGAIN:  // listen backlog full
    case EINTR:
    case ENODEV:  // vsock: no such CID (yet)
    case EHOSTUNREACH:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<UniqueFd> ListenUnix(absl::string_view path, int backlog) {
  ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddr(path));
  std::string p(path);
  struct stat st;
  if (::lstat(p.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::AlreadyExistsError(
          absl::StrCat("cannot listen on ", p, ": it exists and is not a socket"));
    }
    if (::unlink(p.c_str()) < 0) return ErrnoError(errno, "remove stale socket ", p);
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoError(errno, "socket(AF_UNIX)");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) < 0) {
    return ErrnoError(errno, "bind unix socket ", p);
  }
  if (::listen(fd.get(), backlog) < 0) return ErrnoError(errno, "listen on ", p);
  return fd;
}

absl::StatusOr<UniqueFd> ListenVsock(uint32_t cid, uint32_t port, int backlog) {
  UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoError(errno, "socket(AF_VSOCK)");
  sockaddr_vm addr = VsockAddr(cid, port);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) < 0) {
    return ErrnoError(errno, "bind vsock ", static_cast<int64_t>(static_cast<int32_t>(cid)), ":",
                      port);
  }
  if (::listen(fd.get(), backlog) < 0) return ErrnoError(errno, "listen on vsock port ", port);
  return fd;
}

absl::Status VsockAvailable() {
  UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(errno, "socket(AF_VSOCK)");
  return absl::OkStatus();
}

absl::StatusOr<WakeFd> WakeFd::Create() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return ErrnoError(errno, "eventfd");
  return WakeFd(std::move(fd));
}

void WakeFd::Signal() {
  uint64_t one = 1;
  // An eventfd write of 1 only fails on counter overflow, i.e. never here.
  while (::write(fd_.get(), &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

bool SleepUnlessWoken(const WakeFd& wake, absl::Duration d) {
  const absl::Time deadline = absl::Now() + d;
  while (true) {
    pollfd p{wake.fd(), POLLIN, 0};
    int r = ::poll(&p, 1, PollTimeoutMs(deadline - absl::Now()));
    if (r > 0) return false;
    if (r == 0) return true;
    if (errno != EINTR) return true;
  }
}

}  // namespace cloak::transport::internal
