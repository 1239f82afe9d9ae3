// Agent addresses: the textual form the shim's configuration uses to say
// where the guest agent is reached.
//
//   vsock://<cid>:<port>   AF_VSOCK, e.g. vsock://3:1024
//   serial://<path>        QEMU's unix-socket chardev behind the virtio-serial
//                          port `cloak.agent`, e.g. serial:///run/cloak/x/agent.sock
//   unix://<path>          a plain unix socket (tests, local agents)
//
// Parsing is pure: it checks syntax and limits only, never the filesystem.
#ifndef CLOAK_COMMON_TRANSPORT_ADDRESS_H_
#define CLOAK_COMMON_TRANSPORT_ADDRESS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::transport {

// The vsock port the agent listens on (docs/formats.md, "Agent channel").
inline constexpr uint32_t kAgentVsockPort = 1024;
// The virtio-serial port name the agent's channel uses (docs/formats.md, "Agent channel").
inline constexpr absl::string_view kAgentSerialPortName = "cloak.agent";
// Longest path a unix socket address can hold (sun_path minus the NUL).
inline constexpr size_t kMaxUnixPathLength = 107;

struct AgentAddress {
  enum class Kind { kVsock, kSerial, kUnix };

  Kind kind = Kind::kUnix;
  // kVsock only.
  uint32_t cid = 0;
  uint32_t port = 0;
  // kSerial and kUnix: the unix socket path.
  std::string path;

  // The canonical textual form, e.g. "vsock://3:1024"; parses back to *this.
  std::string ToString() const;

  friend bool operator==(const AgentAddress&, const AgentAddress&) = default;
};

// Parses one of the forms above. InvalidArgument, naming the input and what
// is wrong with it, for an unknown scheme, a malformed or out-of-range number,
// a reserved vsock CID or port (VMADDR_CID_ANY, VMADDR_PORT_ANY), or a path
// that is empty, relative, contains a NUL or does not fit a sockaddr_un.
absl::StatusOr<AgentAddress> ParseAgentAddress(absl::string_view text);

}  // namespace cloak::transport

#endif  // CLOAK_COMMON_TRANSPORT_ADDRESS_H_
