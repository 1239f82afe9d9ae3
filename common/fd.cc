#include "common/fd.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cloak {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

absl::Status WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      return ErrnoError(errno, "write to fd ", fd);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status ReadExact(int fd, char* buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::read(fd, buf + got, len - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read from fd ", fd);
    }
    if (n == 0) {
      if (got == 0) return absl::OutOfRangeError("end of stream");
      return absl::DataLossError(
          absl::StrCat("end of stream after ", got, " of ", len, " bytes"));
    }
    got += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status WaitReadable(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::Duration left = deadline - absl::Now();
    if (left < absl::ZeroDuration()) left = absl::ZeroDuration();
    pollfd p{fd, POLLIN, 0};
    int ms = timeout == absl::InfiniteDuration()
                 ? -1
                 : static_cast<int>(absl::ToInt64Milliseconds(left));
    int r = ::poll(&p, 1, ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "poll fd ", fd);
    }
    if (r == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("fd ", fd, " not readable within ", absl::FormatDuration(timeout)));
    }
    return absl::OkStatus();
  }
}

absl::Status SetNonBlocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return ErrnoError(errno, "fcntl(F_GETFL) fd ", fd);
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) < 0) return ErrnoError(errno, "fcntl(F_SETFL) fd ", fd);
  return absl::OkStatus();
}

absl::Status SetCloexec(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) return ErrnoError(errno, "fcntl(F_GETFD) fd ", fd);
  flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (::fcntl(fd, F_SETFD, flags) < 0) return ErrnoError(errno, "fcntl(F_SETFD) fd ", fd);
  return absl::OkStatus();
}

}  // namespace cloak
