#include "common/transport/serial_bridge.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "grpcpp/server.h"
#include "grpcpp/server_posix.h"

namespace cloak::transport::internal {
namespace {

// Bytes in flight per direction. HTTP/2 frames are at most 16 KiB by default.
constexpr size_t kPumpBufferSize = 64 * 1024;
// Stale bytes a detached port may still hold are discarded, up to this much
// per look (a detached virtio port returns EOF once empty).
constexpr size_t kMaxDrainPerLook = 1 << 20;

struct PumpBuffer {
  std::unique_ptr<char[]> data = std::make_unique<char[]>(kPumpBufferSize);
  size_t len = 0;
  bool full() const { return len == kPumpBufferSize; }
  bool empty() const { return len == 0; }
  void Consume(size_t n) {
    std::memmove(data.get(), data.get() + n, len - n);
    len -= n;
  }
};

enum class Io { kOk, kAgain, kEof, kError };

Io ReadInto(int fd, PumpBuffer& buf, int* err) {
  while (true) {
    ssize_t n = ::read(fd, buf.data.get() + buf.len, kPumpBufferSize - buf.len);
    if (n > 0) {
      buf.len += static_cast<size_t>(n);
      return Io::kOk;
    }
    if (n == 0) return Io::kEof;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return Io::kAgain;
    *err = errno;
    return Io::kError;
  }
}

// send(MSG_NOSIGNAL) on sockets so a vanished peer is EPIPE, not SIGPIPE.
Io WriteFrom(int fd, bool is_socket, PumpBuffer& buf, int* err) {
  while (true) {
    ssize_t n = is_socket ? ::send(fd, buf.data.get(), buf.len, MSG_NOSIGNAL)
                          : ::write(fd, buf.data.get(), buf.len);
    if (n >= 0) {
      buf.Consume(static_cast<size_t>(n));
      return Io::kOk;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return Io::kAgain;
    *err = errno;
    return Io::kError;
  }
}

bool IsSocket(int fd) {
  struct stat st;
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

int ToPollMs(absl::Duration d) {
  return static_cast<int>(absl::ToInt64Milliseconds(d + absl::Microseconds(999)));
}

}  // namespace

const char* SerialBridge::Describe(SessionEnd end) {
  switch (end) {
    case SessionEnd::kHostHangup:
      return "host hung up";
    case SessionEnd::kServerClosed:
      return "gRPC closed the session";
    case SessionEnd::kPortError:
      return "port error";
    case SessionEnd::kStopped:
      return "listener stopped";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<SerialBridge>> SerialBridge::Create(PortOpener open_port,
                                                                   Options options) {
  if (!open_port) return absl::InvalidArgumentError("serial bridge needs a port opener");
  if (options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("serial bridge poll interval must be positive");
  }
  ASSIGN_OR_RETURN(WakeFd wake, WakeFd::Create());
  return std::unique_ptr<SerialBridge>(
      new SerialBridge(std::move(open_port), std::move(options), std::move(wake)));
}

SerialBridge::SerialBridge(PortOpener open_port, Options options, WakeFd wake)
    : open_port_(std::move(open_port)), options_(std::move(options)), wake_(std::move(wake)) {}

SerialBridge::~SerialBridge() { Stop(); }

absl::Status SerialBridge::Start(grpc::Server* server) {
  if (server == nullptr) return absl::InvalidArgumentError("serial bridge: null server");
  absl::MutexLock lock(&mu_);
  if (state_ != State::kIdle) {
    return absl::FailedPreconditionError(
        absl::StrCat("serial listener on ", options_.endpoint, " was already started"));
  }
  state_ = State::kRunning;
  thread_ = std::thread([this, server] { Run(server); });
  return absl::OkStatus();
}

void SerialBridge::Stop() {
  std::thread thread;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kStopped) return;
    state_ = State::kStopped;
    thread = std::move(thread_);
  }
  wake_.Signal();
  if (thread.joinable()) thread.join();
}

void SerialBridge::Run(grpc::Server* server) {
  auto log = Logger("transport");
  const std::string& ep = options_.endpoint;
  UniqueFd port;
  std::string last_open_error;
  bool said_waiting = false;
  while (true) {
    if (!port) {
      auto opened = open_port_();
      if (!opened.ok()) {
        std::string msg(opened.status().message());
        if (msg != last_open_error) {
          log->info("waiting for agent port {}: {}", ep, msg);
          last_open_error = std::move(msg);
        }
        if (!SleepUnlessWoken(wake_, options_.poll_interval)) return;
        continue;
      }
      last_open_error.clear();
      port = *std::move(opened);
      if (absl::Status s = SetNonBlocking(port.get(), true); !s.ok()) {
        log->warn("agent port {}: {}", ep, s.ToString());
      }
      log->debug("opened agent port {} (fd {})", ep, port.get());
    }

    switch (WaitForHost(port.get())) {
      case HostState::kStopped:
        return;
      case HostState::kPortError:
        log->warn("agent port {} reported an error; reopening it", ep);
        port.Reset();
        if (!SleepUnlessWoken(wake_, options_.poll_interval)) return;
        continue;
      case HostState::kDetached:
        if (!said_waiting) {
          log->info("agent port {}: waiting for the host to attach", ep);
          said_waiting = true;
        }
        if (options_.reopen_after_hangup) port.Reset();
        if (!SleepUnlessWoken(wake_, options_.poll_interval)) return;
        continue;
      case HostState::kQuiet:
        continue;
      case HostState::kAttached:
        said_waiting = false;
        break;
    }

    const absl::Time start = absl::Now();
    const SessionEnd end = RunSession(server, port.get());
    log->info("agent session {} on {} ended after {}: {}", sessions_.load(), ep,
              absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))),
              Describe(end));
    switch (end) {
      case SessionEnd::kStopped:
        return;
      case SessionEnd::kHostHangup:
        if (options_.reopen_after_hangup) port.Reset();
        break;
      case SessionEnd::kPortError:
        port.Reset();
        if (!SleepUnlessWoken(wake_, options_.poll_interval)) return;
        break;
      case SessionEnd::kServerClosed:
        // The host may still be attached with a broken HTTP/2 stream; offer
        // a fresh session (its next preface will find it), but not in a
        // tight loop if the server keeps refusing.
        if (!SleepUnlessWoken(wake_, options_.poll_interval)) return;
        break;
    }
  }
}

SerialBridge::HostState SerialBridge::WaitForHost(int port) {
  pollfd fds[2] = {{port, POLLIN | POLLOUT, 0}, {wake_.fd(), POLLIN, 0}};
  int r = ::poll(fds, 2, ToPollMs(options_.poll_interval));
  if (r < 0) return errno == EINTR ? HostState::kQuiet : HostState::kPortError;
  if (fds[1].revents != 0) return HostState::kStopped;
  if (r == 0) return HostState::kQuiet;
  const short ev = fds[0].revents;
  if (ev & (POLLNVAL | POLLERR)) return HostState::kPortError;
  if (ev & POLLHUP) {
    // Detached. Whatever the port still holds was sent by a host that is
    // gone: discard it so it cannot reach the next session.
    PumpBuffer scratch;
    size_t drained = 0;
    int err = 0;
    while (drained < kMaxDrainPerLook && ReadInto(port, scratch, &err) == Io::kOk) {
      drained += scratch.len;
      scratch.len = 0;
    }
    if (drained > 0) {
      Logger("transport")
          ->debug("agent port {}: discarded {} stale bytes", options_.endpoint, drained);
    }
    return HostState::kDetached;
  }
  return HostState::kAttached;
}

SerialBridge::SessionEnd SerialBridge::RunSession(grpc::Server* server, int port) {
  auto log = Logger("transport");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
    log->error("agent port {}: socketpair: {}", options_.endpoint, std::strerror(errno));
    return SessionEnd::kPortError;
  }
  UniqueFd mine(sv[0]);
  // gRPC owns sv[1] from here on and closes it when the session ends.
  grpc::AddInsecureChannelFromFd(server, sv[1]);
  const int64_t n = ++sessions_;
  log->info("host attached to agent port {}: serving session {}", options_.endpoint, n);

  const bool port_is_socket = IsSocket(port);
  PumpBuffer to_grpc;  // port -> gRPC
  PumpBuffer to_port;  // gRPC -> port
  while (true) {
    short port_events =
        static_cast<short>((to_grpc.full() ? 0 : POLLIN) | (to_port.empty() ? 0 : POLLOUT));
    short sock_events =
        static_cast<short>((to_port.full() ? 0 : POLLIN) | (to_grpc.empty() ? 0 : POLLOUT));
    // An fd with nothing to wait for is left out entirely: POLLHUP cannot be
    // masked and would otherwise spin while the other side catches up.
    pollfd fds[3] = {{port_events ? port : -1, port_events, 0},
                     {sock_events ? mine.get() : -1, sock_events, 0},
                     {wake_.fd(), POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      log->error("agent port {}: poll: {}", options_.endpoint, std::strerror(errno));
      return SessionEnd::kPortError;
    }
    if (fds[2].revents != 0) return SessionEnd::kStopped;

    int err = 0;
    const short pev = fds[0].revents;
    if (pev & POLLNVAL) return SessionEnd::kPortError;
    if ((pev & (POLLIN | POLLHUP | POLLERR)) && !to_grpc.full()) {
      switch (ReadInto(port, to_grpc, &err)) {
        case Io::kOk:
          break;
        case Io::kEof:
          return SessionEnd::kHostHangup;
        case Io::kAgain:
          if (pev & POLLHUP) return SessionEnd::kHostHangup;
          break;
        case Io::kError:
          // A pty whose other side closed says EIO; so may a port whose
          // host went away.
          if (err == EIO || err == ECONNRESET) return SessionEnd::kHostHangup;
          log->warn("agent port {}: read: {}", options_.endpoint, std::strerror(err));
          return SessionEnd::kPortError;
      }
    }
    if ((pev & POLLOUT) && !to_port.empty()) {
      if (WriteFrom(port, port_is_socket, to_port, &err) == Io::kError) {
        if (err == EIO || err == EPIPE || err == ECONNRESET) return SessionEnd::kHostHangup;
        log->warn("agent port {}: write: {}", options_.endpoint, std::strerror(err));
        return SessionEnd::kPortError;
      }
    }

    const short sev = fds[1].revents;
    if ((sev & (POLLIN | POLLHUP | POLLERR)) && !to_port.full()) {
      Io r = ReadInto(mine.get(), to_port, &err);
      if (r == Io::kEof || r == Io::kError || (r == Io::kAgain && (sev & POLLHUP))) {
        return SessionEnd::kServerClosed;
      }
    }
    if ((sev & POLLOUT) && !to_grpc.empty()) {
      if (WriteFrom(mine.get(), true, to_grpc, &err) == Io::kError) {
        return SessionEnd::kServerClosed;
      }
    }
  }
}

}  // namespace cloak::transport::internal
