// AgentTransport: how the host-side shim reaches the guest agent's gRPC
// server. gRPC 1.51 has no vsock: target, so every transport opens a stream
// socket itself and hands it to grpc::CreateInsecureChannelFromFd.
//
//   ASSIGN_OR_RETURN(auto transport, CreateTransport("serial:///run/x/agent.sock"));
//   ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
//                    transport->Connect(kDefaultConnectTimeout));
//   auto stub = cloak::agent::v1::AgentService::NewStub(channel);
//
// A channel made from an fd is a "direct" channel: it never reconnects. Once
// its connection fails (agent gone, guest hung up, protocol error) every call
// on it fails with UNAVAILABLE; the caller drops it and calls Connect again.
// Its GetState() reports SHUTDOWN (and gRPC logs an error), so
// WaitForConnected() cannot be used either:
// probe readiness with an RPC (AgentService.Health) under a deadline.
//
// Serial caveat: connecting to QEMU's chardev socket succeeds as soon as QEMU
// runs, before the guest agent has opened its end; bytes wait in the socket
// until it does. So Connect succeeding proves nothing about the agent: the
// first RPC's deadline is what bounds boot. QEMU serves one chardev client at
// a time: drop the old channel before connecting a new one.
#ifndef CLOAK_COMMON_TRANSPORT_AGENT_TRANSPORT_H_
#define CLOAK_COMMON_TRANSPORT_AGENT_TRANSPORT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/transport/address.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace cloak::transport {

// Default for Connect while a VM boots (kata dials for 30 s too).
inline constexpr absl::Duration kDefaultConnectTimeout = absl::Seconds(30);

// Options shared by every host-side transport.
struct ConnectOptions {
  // HTTP/2 :authority of every call. gRPC's fd channels otherwise send
  // "test.authority".
  std::string authority = "cloak-agent";
  // Backoff between connect attempts: doubles from initial to max.
  absl::Duration initial_backoff = absl::Milliseconds(20);
  absl::Duration max_backoff = absl::Milliseconds(500);
  // Per-attempt bound on a connect that is in progress (vsock).
  absl::Duration attempt_timeout = absl::Seconds(2);
};

class AgentTransport {
 public:
  virtual ~AgentTransport() = default;

  // Opens a connection to the agent and wraps it in a gRPC channel, retrying
  // connection failures that go away while a VM boots (no socket file yet,
  // refused, reset) until `timeout` has passed. Errors:
  //   DeadlineExceeded  still not connected after `timeout`; the message
  //                     names Endpoint() and the last error;
  //   other codes       a failure retrying cannot fix (EACCES, no AF_VSOCK).
  // Thread-safe; each call makes a new, independent connection.
  virtual absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(absl::Duration timeout) = 0;

  // Where this transport connects, as an address string ("vsock://3:1024").
  virtual std::string Endpoint() const = 0;
};

// AF_VSOCK to (cid, port). Needs /dev/vhost-vsock on the host for a guest CID.
class VsockTransport final : public AgentTransport {
 public:
  struct Config {
    uint32_t cid = 0;
    uint32_t port = kAgentVsockPort;
    ConnectOptions options;
  };
  // InvalidArgument for VMADDR_CID_ANY or VMADDR_PORT_ANY. Does not connect.
  static absl::StatusOr<std::unique_ptr<VsockTransport>> Create(const Config& config);

  absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(absl::Duration timeout) override;
  std::string Endpoint() const override;

 private:
  explicit VsockTransport(Config config) : config_(std::move(config)) {}
  const Config config_;
};

// QEMU's unix-socket chardev (`-chardev socket,server=on,wait=off,path=P`)
// wired to `-device virtserialport,name=cloak.agent`.
class SerialTransport final : public AgentTransport {
 public:
  struct Config {
    std::string socket_path;
    ConnectOptions options;
  };
  // InvalidArgument for a path that is not absolute or too long. Does not
  // connect.
  static absl::StatusOr<std::unique_ptr<SerialTransport>> Create(const Config& config);

  absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(absl::Duration timeout) override;
  std::string Endpoint() const override;

 private:
  explicit SerialTransport(Config config) : config_(std::move(config)) {}
  const Config config_;
};

// A plain unix socket where an agent (or a test) listens.
class UnixTransport final : public AgentTransport {
 public:
  struct Config {
    std::string path;
    ConnectOptions options;
  };
  static absl::StatusOr<std::unique_ptr<UnixTransport>> Create(const Config& config);

  absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(absl::Duration timeout) override;
  std::string Endpoint() const override;

 private:
  explicit UnixTransport(Config config) : config_(std::move(config)) {}
  const Config config_;
};

// The transport an address names (see address.h).
absl::StatusOr<std::unique_ptr<AgentTransport>> CreateTransport(const AgentAddress& address,
                                                                const ConnectOptions& options = {});
absl::StatusOr<std::unique_ptr<AgentTransport>> CreateTransport(absl::string_view address,
                                                                const ConnectOptions& options = {});

}  // namespace cloak::transport

#endif  // CLOAK_COMMON_TRANSPORT_AGENT_TRANSPORT_H_
