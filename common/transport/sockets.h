// Socket plumbing shared by the transports and listeners (internal to
// cloak_transport): unix and AF_VSOCK stream sockets, connect with a
// deadline, and a wake-up fd for stopping poll loops.
#ifndef CLOAK_COMMON_TRANSPORT_SOCKETS_H_
#define CLOAK_COMMON_TRANSPORT_SOCKETS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/fd.h"

namespace cloak::transport::internal {

// One connect attempt. On failure `*err` holds the errno (0 for a failure
// that is not a socket error) so the caller can decide to retry.
absl::StatusOr<UniqueFd> ConnectUnix(absl::string_view path, absl::Duration timeout, int* err);
absl::StatusOr<UniqueFd> ConnectVsock(uint32_t cid, uint32_t port, absl::Duration timeout,
                                      int* err);

// Whether a connect failure with this errno may go away by itself while a
// VM boots or an agent starts (no socket file yet, refused, reset, ...).
bool IsRetryableConnectErrno(int err);

// A listening stream socket, close-on-exec and non-blocking. ListenUnix
// removes a stale socket file at `path` first (never any other file type).
absl::StatusOr<UniqueFd> ListenUnix(absl::string_view path, int backlog);
absl::StatusOr<UniqueFd> ListenVsock(uint32_t cid, uint32_t port, int backlog);

// Whether AF_VSOCK sockets can be created here at all.
absl::Status VsockAvailable();

// An eventfd that poll loops watch to learn they must stop. Signal() is
// sticky: once signalled it stays readable.
class WakeFd {
 public:
  static absl::StatusOr<WakeFd> Create();
  void Signal();
  int fd() const { return fd_.get(); }

 private:
  explicit WakeFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// Sleeps for `d` unless `wake` becomes readable first. Returns false if woken.
bool SleepUnlessWoken(const WakeFd& wake, absl::Duration d);

}  // namespace cloak::transport::internal

#endif  // CLOAK_COMMON_TRANSPORT_SOCKETS_H_
