// AgentListener: the guest side of the agent transport. It feeds each host
// connection into an already started grpc::Server with
// grpc::AddInsecureChannelFromFd (gRPC 1.51 cannot listen on vsock itself).
//
//   grpc::ServerBuilder builder;                  // no listening ports
//   builder.RegisterService(&service);
//   std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
//   ASSIGN_OR_RETURN(auto listener, SerialPortListener::Create({}));
//   RETURN_IF_ERROR(listener->Start(server.get()));
//   ...
//   listener->Stop();                             // before the server goes
//   server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
//
// Order of teardown: Stop() the listener, then shut the server down. Stop()
// joins the listener's threads and closes every fd the listener still owns;
// connections already handed to gRPC end when the server shuts down (for the
// serial port, Stop() also ends the current session).
#ifndef CLOAK_COMMON_TRANSPORT_AGENT_LISTENER_H_
#define CLOAK_COMMON_TRANSPORT_AGENT_LISTENER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/fd.h"
#include "common/transport/address.h"
#include "common/transport/virtio_port.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace cloak::transport {

namespace internal {
class AcceptLoop;
class SerialBridge;
}  // namespace internal

class AgentListener {
 public:
  virtual ~AgentListener() = default;

  // Starts handing connections to `server`, which must be started and must
  // outlive Stop(). FailedPrecondition if already started or stopped.
  virtual absl::Status Start(grpc::Server* server) = 0;

  // Stops accepting and joins the listener's threads. Idempotent; also
  // called by the destructor.
  virtual void Stop() = 0;

  // What the listener serves on, e.g. "vsock://-1:1024", "/dev/vport1p1".
  virtual std::string Endpoint() const = 0;

  // Connections (or, for the serial port, host sessions) handed to the
  // server so far.
  virtual int64_t sessions() const = 0;
};

// AF_VSOCK: binds (cid, port), by default VMADDR_CID_ANY:1024, and accepts.
class VsockListener final : public AgentListener {
 public:
  struct Config {
    uint32_t cid = 0xFFFFFFFFu;  // VMADDR_CID_ANY
    uint32_t port = kAgentVsockPort;
    int backlog = 16;
  };
  // Binds and listens now, so a bind failure is reported here.
  static absl::StatusOr<std::unique_ptr<VsockListener>> Create(const Config& config);
  ~VsockListener() override;

  absl::Status Start(grpc::Server* server) override;
  void Stop() override;
  std::string Endpoint() const override;
  int64_t sessions() const override;

 private:
  VsockListener(Config config, std::unique_ptr<internal::AcceptLoop> loop);
  const Config config_;
  std::unique_ptr<internal::AcceptLoop> loop_;
};

// A unix socket (tests, or an agent reached through a bind mount).
class UnixListener final : public AgentListener {
 public:
  struct Config {
    std::string path;
    int backlog = 16;
  };
  // Binds and listens now (replacing a stale socket file at `path`). The
  // socket file is removed by Stop().
  static absl::StatusOr<std::unique_ptr<UnixListener>> Create(const Config& config);
  ~UnixListener() override;

  absl::Status Start(grpc::Server* server) override;
  void Stop() override;
  std::string Endpoint() const override;
  int64_t sessions() const override;

 private:
  UnixListener(Config config, std::unique_ptr<internal::AcceptLoop> loop);
  const Config config_;
  std::unique_ptr<internal::AcceptLoop> loop_;
};

// The guest end of the virtio-serial port. A port is a character device, not
// a socket, so it cannot go to gRPC directly: a pump thread copies bytes
// between the port and one end of a socketpair whose other end is given to
// gRPC. A port has no connections, only "host attached or not": when the
// host's chardev client goes away the port reports POLLHUP and read()
// returns 0 (EOF; a pty gives EIO). The bridge then closes its socketpair
// end (gRPC sees EOF and drops the stale HTTP/2 session), waits until the
// host is attached again (POLLHUP clears), and offers a fresh socketpair.
// Bytes a detached port still holds came from a host that is gone and are
// discarded. If gRPC drops a session while the host stays attached (e.g. a
// protocol error) a fresh session is offered after poll_interval.
//
// Known limit: a host that hangs up and reattaches faster than the pump
// thread is scheduled (both control messages handled in one go) is never
// seen to hang up; its new HTTP/2 preface then lands in the stale session,
// which fails, and the host's new channel fails with it. The host recovers
// by connecting once more; leaving poll_interval between dropping a channel
// and reconnecting avoids the case.
class SerialPortListener final : public AgentListener {
 public:
  // Opens the port device; called at start and whenever the bridge needs
  // the port again. A failure is logged (once per distinct message) and
  // retried every poll_interval until Stop().
  using PortOpener = std::function<absl::StatusOr<UniqueFd>()>;

  struct Config {
    std::string port_name = std::string(kAgentSerialPortName);
    std::string sysfs_root = std::string(kVirtioPortsSysfsRoot);
    std::string dev_root = "/dev";
    // How often to look again while the host is not attached (a detached
    // virtio port reports POLLHUP continuously, so poll cannot wait for it).
    absl::Duration poll_interval = absl::Milliseconds(100);
    // Close and reopen the port after each host hangup. A real virtio port
    // stays open across host sessions (closing it discards buffered input
    // and tells QEMU the guest went away); fake ports made of socketpairs
    // or ptys cannot un-hang-up and need this.
    bool reopen_after_hangup = false;
  };

  // Finds the port named config.port_name under config.sysfs_root and
  // serves on <dev_root>/<device>. NotFound if there is no such port yet
  // (the caller may retry while the guest boots).
  static absl::StatusOr<std::unique_ptr<SerialPortListener>> Create(const Config& config);

  // Serves on whatever `open_port` returns (a device path known in advance,
  // or a fake port in tests). config.port_name/sysfs_root/dev_root are
  // unused; `endpoint` names the port in logs.
  static absl::StatusOr<std::unique_ptr<SerialPortListener>> CreateWithOpener(PortOpener open_port,
                                                                              std::string endpoint,
                                                                              const Config& config);

  ~SerialPortListener() override;

  absl::Status Start(grpc::Server* server) override;
  void Stop() override;
  std::string Endpoint() const override;
  int64_t sessions() const override;

 private:
  SerialPortListener(std::string endpoint, std::unique_ptr<internal::SerialBridge> bridge);
  const std::string endpoint_;
  std::unique_ptr<internal::SerialBridge> bridge_;
};

}  // namespace cloak::transport

#endif  // CLOAK_COMMON_TRANSPORT_AGENT_LISTENER_H_
