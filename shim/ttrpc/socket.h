// Unix stream sockets as ttrpc uses them: containerd addresses are either
// plain paths or "unix:///path"; a leading '@' names an abstract socket.
#ifndef CLOAK_SHIM_TTRPC_SOCKET_H_
#define CLOAK_SHIM_TTRPC_SOCKET_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/fd.h"

namespace cloak::ttrpc {

// "unix:///run/x.sock" or "/run/x.sock" -> "/run/x.sock". InvalidArgument
// for another scheme, an empty path or one longer than sun_path allows.
absl::StatusOr<std::string> SocketPathFromAddress(absl::string_view address);

// Binds and listens on `path` (an address as above). A stale socket file at
// the path is removed first; any other existing file is an error
// (AlreadyExists). The fd is close-on-exec and blocking.
absl::StatusOr<UniqueFd> ListenUnix(absl::string_view address, int backlog = 128);

// Connects to `address` (as above). Close-on-exec, blocking.
absl::StatusOr<UniqueFd> ConnectUnix(absl::string_view address);

// Sends all of `data` on a connected socket without raising SIGPIPE.
absl::Status SendAll(int fd, absl::string_view data);

}  // namespace cloak::ttrpc

#endif  // CLOAK_SHIM_TTRPC_SOCKET_H_
