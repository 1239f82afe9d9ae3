// UniqueFd: sole owner of a file descriptor, closed on destruction.
#ifndef CLOAK_COMMON_FD_H_
#define CLOAK_COMMON_FD_H_

#include "absl/strings/string_view.h"
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cloak {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  // Gives up ownership without closing.
  int Release() { return std::exchange(fd_, -1); }
  // Closes the current fd (if any) and takes `fd`.
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Writes all of `data`, retrying on EINTR and short writes.
absl::Status WriteAll(int fd, absl::string_view data);
// Reads exactly `len` bytes into `buf`. Returns OutOfRange on EOF before
// any byte, DataLoss on EOF in the middle.
absl::Status ReadExact(int fd, char* buf, size_t len);
// Waits until `fd` is readable (or hung up). DeadlineExceeded on timeout.
absl::Status WaitReadable(int fd, absl::Duration timeout);
// Sets or clears O_NONBLOCK / FD_CLOEXEC.
absl::Status SetNonBlocking(int fd, bool on);
absl::Status SetCloexec(int fd, bool on);

}  // namespace cloak

#endif  // CLOAK_COMMON_FD_H_
