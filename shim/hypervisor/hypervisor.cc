#include "shim/hypervisor/hypervisor.h"

namespace cloak::shim::hypervisor {

absl::string_view VmStateName(VmState state) {
  switch (state) {
    case VmState::kCreated:
      return "created";
    case VmState::kRunning:
      return "running";
    case VmState::kPaused:
      return "paused";
    case VmState::kExited:
      return "exited";
  }
  return "?";
}

transport::AgentAddress AgentAddressFor(const VmConfig& config, AgentChannel resolved) {
  transport::AgentAddress address;
  if (resolved == AgentChannel::kVsock) {
    address.kind = transport::AgentAddress::Kind::kVsock;
    address.cid = config.vsock_guest_cid;
    address.port = config.vsock_port;
  } else {
    address.kind = transport::AgentAddress::Kind::kSerial;
    address.path = config.serial_socket_path;
  }
  return address;
}

}  // namespace cloak::shim::hypervisor
