#include "common/transport/agent_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/transport/serial_bridge.h"
#include "common/transport/sockets.h"
#include "grpcpp/server.h"
#include "grpcpp/server_posix.h"

namespace cloak::transport {
namespace internal {

// Accepts on a listening socket and hands every connection to gRPC.
class AcceptLoop {
 public:
  static absl::StatusOr<std::unique_ptr<AcceptLoop>> Create(std::string endpoint,
                                                            UniqueFd listen_fd) {
    ASSIGN_OR_RETURN(WakeFd wake, WakeFd::Create());
    return std::unique_ptr<AcceptLoop>(
        new AcceptLoop(std::move(endpoint), std::move(listen_fd), std::move(wake)));
  }
  ~AcceptLoop() { Stop(); }

  absl::Status Start(grpc::Server* server) {
    if (server == nullptr) return absl::InvalidArgumentError("listener: null server");
    absl::MutexLock lock(&mu_);
    if (state_ != State::kIdle) {
      return absl::FailedPreconditionError(
          absl::StrCat("listener on ", endpoint_, " was already started"));
    }
    state_ = State::kRunning;
    thread_ = std::thread([this, server] { Run(server); });
    return absl::OkStatus();
  }

  // Returns true the first time (so the owner can clean up once).
  bool Stop() {
    std::thread thread;
    {
      absl::MutexLock lock(&mu_);
      if (state_ == State::kStopped) return false;
      state_ = State::kStopped;
      thread = std::move(thread_);
    }
    wake_.Signal();
    if (thread.joinable()) thread.join();
    listen_fd_.Reset();
    return true;
  }

  int64_t sessions() const { return sessions_.load(); }

 private:
  AcceptLoop(std::string endpoint, UniqueFd listen_fd, WakeFd wake)
      : endpoint_(std::move(endpoint)), listen_fd_(std::move(listen_fd)), wake_(std::move(wake)) {}

  void Run(grpc::Server* server) {
    auto log = Logger("transport");
    log->info("agent listening on {}", endpoint_);
    while (true) {
      pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_.fd(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        log->error("listener {}: poll: {}", endpoint_, std::strerror(errno));
        return;
      }
      if (fds[1].revents != 0) return;
      while (true) {
        int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
          // gRPC owns the fd from here on.
          // Counted before gRPC owns the fd: a call on it may finish at once.
          const int64_t n = ++sessions_;
          grpc::AddInsecureChannelFromFd(server, fd);
          log->info("agent connection {} accepted on {}", n, endpoint_);
          continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN) break;
        // EMFILE and friends: back off instead of spinning on a readable
        // listening socket.
        log->error("listener {}: accept: {}", endpoint_, std::strerror(errno));
        if (!SleepUnlessWoken(wake_, absl::Milliseconds(100))) return;
        break;
      }
    }
  }

  const std::string endpoint_;
  UniqueFd listen_fd_;
  WakeFd wake_;
  std::atomic<int64_t> sessions_{0};

  enum class State { kIdle, kRunning, kStopped };
  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kIdle;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

}  // namespace internal

namespace {

std::string VsockListenEndpoint(uint32_t cid, uint32_t port) {
  // VMADDR_CID_ANY prints as -1, as kata writes it.
  if (cid == 0xFFFFFFFFu) return absl::StrCat("vsock://-1:", port);
  return absl::StrCat("vsock://", cid, ":", port);
}

}  // namespace

// --- VsockListener ---------------------------------------------------------

absl::StatusOr<std::unique_ptr<VsockListener>> VsockListener::Create(const Config& config) {
  ASSIGN_OR_RETURN(UniqueFd fd, internal::ListenVsock(config.cid, config.port, config.backlog));
  ASSIGN_OR_RETURN(auto loop, internal::AcceptLoop::Create(
                                  VsockListenEndpoint(config.cid, config.port), std::move(fd)));
  return std::unique_ptr<VsockListener>(new VsockListener(config, std::move(loop)));
}

VsockListener::VsockListener(Config config, std::unique_ptr<internal::AcceptLoop> loop)
    : config_(std::move(config)), loop_(std::move(loop)) {}

VsockListener::~VsockListener() { Stop(); }

absl::Status VsockListener::Start(grpc::Server* server) { return loop_->Start(server); }

void VsockListener::Stop() {
  if (loop_) loop_->Stop();
}

std::string VsockListener::Endpoint() const {
  return VsockListenEndpoint(config_.cid, config_.port);
}

int64_t VsockListener::sessions() const { return loop_ ? loop_->sessions() : 0; }

// --- UnixListener ----------------------------------------------------------

absl::StatusOr<std::unique_ptr<UnixListener>> UnixListener::Create(const Config& config) {
  if (config.path.empty() || config.path.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("unix listener path \"", config.path, "\" must be absolute"));
  }
  ASSIGN_OR_RETURN(UniqueFd fd, internal::ListenUnix(config.path, config.backlog));
  ASSIGN_OR_RETURN(
      auto loop, internal::AcceptLoop::Create(absl::StrCat("unix://", config.path), std::move(fd)));
  return std::unique_ptr<UnixListener>(new UnixListener(config, std::move(loop)));
}

UnixListener::UnixListener(Config config, std::unique_ptr<internal::AcceptLoop> loop)
    : config_(std::move(config)), loop_(std::move(loop)) {}

UnixListener::~UnixListener() { Stop(); }

absl::Status UnixListener::Start(grpc::Server* server) { return loop_->Start(server); }

void UnixListener::Stop() {
  if (loop_ && loop_->Stop()) ::unlink(config_.path.c_str());
}

std::string UnixListener::Endpoint() const { return absl::StrCat("unix://", config_.path); }

int64_t UnixListener::sessions() const { return loop_->sessions(); }

// --- SerialPortListener ----------------------------------------------------

absl::StatusOr<std::unique_ptr<SerialPortListener>> SerialPortListener::Create(
    const Config& config) {
  ASSIGN_OR_RETURN(std::string device, FindVirtioPort(config.sysfs_root, config.port_name));
  std::string path = absl::StrCat(config.dev_root, "/", device);
  PortOpener open_port = [path]() -> absl::StatusOr<UniqueFd> {
    // O_NONBLOCK: a detached port blocks writes; the bridge polls instead.
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) return ErrnoError(errno, "open ", path);
    return fd;
  };
  return CreateWithOpener(std::move(open_port), path, config);
}

absl::StatusOr<std::unique_ptr<SerialPortListener>> SerialPortListener::CreateWithOpener(
    PortOpener open_port, std::string endpoint, const Config& config) {
  ASSIGN_OR_RETURN(auto bridge,
                   internal::SerialBridge::Create(
                       std::move(open_port), {.endpoint = endpoint,
                                              .poll_interval = config.poll_interval,
                                              .reopen_after_hangup = config.reopen_after_hangup}));
  return std::unique_ptr<SerialPortListener>(
      new SerialPortListener(std::move(endpoint), std::move(bridge)));
}

SerialPortListener::SerialPortListener(std::string endpoint,
                                       std::unique_ptr<internal::SerialBridge> bridge)
    : endpoint_(std::move(endpoint)), bridge_(std::move(bridge)) {}

SerialPortListener::~SerialPortListener() { Stop(); }

absl::Status SerialPortListener::Start(grpc::Server* server) { return bridge_->Start(server); }

void SerialPortListener::Stop() { bridge_->Stop(); }

std::string SerialPortListener::Endpoint() const { return endpoint_; }

int64_t SerialPortListener::sessions() const { return bridge_->sessions(); }

}  // namespace cloak::transport
