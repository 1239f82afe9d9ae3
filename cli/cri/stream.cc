#include "cli/cri/stream.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/cri/websocket.h"
#include "common/fd.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace cloak::cri {
namespace {

// After the status arrives the server closes the stream; wait this long for
// that before leaving on our own.
constexpr absl::Duration kCloseGrace = absl::Seconds(5);

}  // namespace

absl::StatusOr<int> ExitCodeFromStatus(absl::string_view json) {
  const nlohmann::json status =
      nlohmann::json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (status.is_discarded() || !status.is_object()) {
    return absl::DataLossError(absl::StrCat("stream status is not a JSON object: ", json));
  }
  const std::string state = status.value("status", "");
  if (state == "Success") return 0;
  const std::string message = status.value("message", "");
  if (state != "Failure") {
    return absl::DataLossError(absl::StrCat("stream status \"", state, "\" is neither Success nor "
                                            "Failure: ", json));
  }
  if (status.contains("details") && status["details"].is_object() &&
      status["details"].contains("causes") && status["details"]["causes"].is_array()) {
    for (const auto& cause : status["details"]["causes"]) {
      if (!cause.is_object() || cause.value("reason", "") != "ExitCode") continue;
      int code = 0;
      if (absl::SimpleAtoi(cause.value("message", ""), &code)) return code;
    }
  }
  return absl::UnknownError(absl::StrCat("remote command failed: ",
                                         message.empty() ? std::string(json) : message));
}

std::string ResizeMessage(uint16_t cols, uint16_t rows) {
  return absl::StrCat("{\"Width\":", cols, ",\"Height\":", rows, "}");
}

absl::StatusOr<int> RunStream(const std::string& url, const StreamIo& io) {
  ASSIGN_OR_RETURN(WebSocket ws, WebSocket::Connect(url, {kStreamProtocolV4}, io.connect_timeout));
  if (io.cols > 0 && io.rows > 0) {
    RETURN_IF_ERROR(ws.Send(WsOpcode::kBinary, std::string(1, static_cast<char>(kResizeChannel)) +
                                                   ResizeMessage(io.cols, io.rows)));
  }
  bool stdin_open = io.stdin_fd >= 0;
  std::optional<absl::StatusOr<int>> result;
  absl::Time give_up = absl::InfiniteFuture();
  std::string err_message;

  auto handle = [&](const WsEvent& ev) -> absl::Status {
    if (ev.payload.empty()) return absl::OkStatus();
    const auto channel = static_cast<uint8_t>(ev.payload[0]);
    absl::string_view data = absl::string_view(ev.payload).substr(1);
    switch (channel) {
      case kStdoutChannel:
        if (!data.empty()) RETURN_IF_ERROR(WriteAll(io.stdout_fd, data));
        break;
      case kStderrChannel:
        if (!data.empty()) RETURN_IF_ERROR(WriteAll(io.stderr_fd, data));
        break;
      case kErrorChannel:
        // The status may come in pieces; it is parsed once the stream ends.
        err_message.append(data.data(), data.size());
        if (!err_message.empty()) give_up = absl::Now() + kCloseGrace;
        break;
      default:
        break;  // channels we did not open; a newer server may add some
    }
    return absl::OkStatus();
  };

  while (!ws.closed()) {
    pollfd fds[2] = {{.fd = ws.fd(), .events = POLLIN, .revents = 0},
                     {.fd = stdin_open ? io.stdin_fd : -1, .events = POLLIN, .revents = 0}};
    int wait_ms = -1;
    if (give_up != absl::InfiniteFuture()) {
      wait_ms = static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(give_up - absl::Now())));
    }
    const int n = ::poll(fds, 2, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "poll on the stream of ", url);
    if (n == 0) break;  // status received, server slow to close: done
    if (fds[0].revents != 0) {
      ASSIGN_OR_RETURN(std::vector<WsEvent> events, ws.ReadAvailable());
      for (const WsEvent& ev : events) RETURN_IF_ERROR(handle(ev));
    }
    if (stdin_open && fds[1].revents != 0) {
      char buf[8192];
      buf[0] = static_cast<char>(kStdinChannel);
      const ssize_t r = ::read(io.stdin_fd, buf + 1, sizeof(buf) - 1);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        stdin_open = false;
        if (io.close_on_stdin_eof) {
          RETURN_IF_ERROR(ws.Close(1000, "stdin closed"));
          // Let what the server already sent arrive, then leave.
          give_up = absl::Now() + kCloseGrace;
        }
      } else {
        RETURN_IF_ERROR(ws.Send(WsOpcode::kBinary, absl::string_view(buf, static_cast<size_t>(r) + 1)));
      }
    }
  }
  if (err_message.empty()) return 0;
  return ExitCodeFromStatus(err_message);
}

}  // namespace cloak::cri
