// The client end of a Kubernetes remotecommand stream (what CRI Exec and
// Attach URLs serve) over WebSocket with subprotocol v4.channel.k8s.io:
// every binary message starts with a channel byte — 0 stdin (to the server),
// 1 stdout, 2 stderr, 3 error/status (one JSON metav1.Status when the command
// ends), 4 resize (to the server, JSON {"Width":W,"Height":H}).
//
// v4 has no way to close stdin alone: the remote command sees stdin end only
// when the whole stream closes. RunStream therefore keeps the stream open
// after local stdin ends (an exec waits for the command's status) unless
// StreamIo::close_on_stdin_eof asks to close it (attach).
#ifndef CLOAK_CLI_CRI_STREAM_H_
#define CLOAK_CLI_CRI_STREAM_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cloak::cri {

inline constexpr char kStreamProtocolV4[] = "v4.channel.k8s.io";

enum StreamChannel : uint8_t {
  kStdinChannel = 0,
  kStdoutChannel = 1,
  kStderrChannel = 2,
  kErrorChannel = 3,
  kResizeChannel = 4,
};

// The exit code in a v4 status message: "Success" → 0; "Failure" with a
// details.causes entry {reason: "ExitCode", message: "N"} → N. Any other
// failure (the command could not start, the container is gone) is an error
// carrying the server's message.
absl::StatusOr<int> ExitCodeFromStatus(absl::string_view json);

// The resize message for a terminal of `cols` x `rows`.
std::string ResizeMessage(uint16_t cols, uint16_t rows);

struct StreamIo {
  int stdin_fd = -1;  // -1: nothing to send
  int stdout_fd = 1;
  int stderr_fd = 2;
  // When the local stdin ends: close the stream (attach) rather than keep
  // waiting for the remote side to end it (exec).
  bool close_on_stdin_eof = false;
  // With a TTY: the terminal size to announce first (0 = none).
  uint16_t cols = 0, rows = 0;
  absl::Duration connect_timeout = absl::Seconds(30);
};

// Streams until the server ends the stream (or close_on_stdin_eof applies)
// and returns the remote exit code from the status channel; 0 when the
// stream ended without a status (an attach the client left).
absl::StatusOr<int> RunStream(const std::string& url, const StreamIo& io);

}  // namespace cloak::cri

#endif  // CLOAK_CLI_CRI_STREAM_H_
