// SerialBridge (internal to cloak_transport): the pump behind
// SerialPortListener. See agent_listener.h for the behaviour; this header
// exists so the implementation can live in its own file.
//
// One thread does everything with poll(): wait for the port to be opened,
// wait for the host to attach, then copy bytes both ways between the port
// and a socketpair end while gRPC serves the other end. Sessions end on:
//   host hangup    port read() == 0 or EIO, or POLLHUP with nothing left;
//   server closed  gRPC closed its end (shutdown, protocol error);
//   port error     anything else the port reports (then it is reopened);
//   stop           Stop() was called.
#ifndef CLOAK_COMMON_TRANSPORT_SERIAL_BRIDGE_H_
#define CLOAK_COMMON_TRANSPORT_SERIAL_BRIDGE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/fd.h"
#include "common/transport/sockets.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace cloak::transport::internal {

class SerialBridge {
 public:
  using PortOpener = std::function<absl::StatusOr<UniqueFd>()>;
  struct Options {
    std::string endpoint;
    absl::Duration poll_interval = absl::Milliseconds(100);
    bool reopen_after_hangup = false;
  };

  static absl::StatusOr<std::unique_ptr<SerialBridge>> Create(PortOpener open_port,
                                                              Options options);
  ~SerialBridge();
  SerialBridge(const SerialBridge&) = delete;
  SerialBridge& operator=(const SerialBridge&) = delete;

  absl::Status Start(grpc::Server* server);
  void Stop();
  int64_t sessions() const { return sessions_.load(); }

 private:
  enum class HostState { kAttached, kDetached, kQuiet, kPortError, kStopped };
  enum class SessionEnd { kHostHangup, kServerClosed, kPortError, kStopped };
  static const char* Describe(SessionEnd end);

  SerialBridge(PortOpener open_port, Options options, WakeFd wake);
  void Run(grpc::Server* server);
  HostState WaitForHost(int port);
  SessionEnd RunSession(grpc::Server* server, int port);

  const PortOpener open_port_;
  const Options options_;
  WakeFd wake_;
  std::atomic<int64_t> sessions_{0};

  enum class State { kIdle, kRunning, kStopped };
  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kIdle;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cloak::transport::internal

#endif  // CLOAK_COMMON_TRANSPORT_SERIAL_BRIDGE_H_
