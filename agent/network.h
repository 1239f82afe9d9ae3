// Guest networking: the interfaces and routes CreateSandbox carries are
// validated into a NetworkPlan (pure) and applied with ioctls (PID 1 only;
// containers share the guest's network namespace, so this is the pod's
// network). IPv4 only for now.
#ifndef CLOAK_AGENT_NETWORK_H_
#define CLOAK_AGENT_NETWORK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::agent::v1 {
class CreateSandboxRequest;
}

namespace cloak::agent {

struct Ipv4Prefix {
  uint32_t address = 0;  // host byte order
  uint32_t prefix_length = 0;
};

struct PlannedInterface {
  std::string name;  // as the host names it
  std::string mac;   // lower case, or empty: match by name
  std::vector<Ipv4Prefix> addresses;
  uint32_t mtu = 0;
};

struct PlannedRoute {
  Ipv4Prefix destination;  // 0.0.0.0/0 for the default route
  uint32_t gateway = 0;    // 0: on-link
  std::string device;      // a PlannedInterface name, or empty
};

struct NetworkPlan {
  std::vector<PlannedInterface> interfaces;
  std::vector<PlannedRoute> routes;
};

// "10.0.2.15" → host-order address. Pure.
absl::StatusOr<uint32_t> ParseIpv4(absl::string_view text);
// "10.1.0.0/16" (or an empty string: 0.0.0.0/0). Pure.
absl::StatusOr<Ipv4Prefix> ParseIpv4Prefix(absl::string_view text);
// "52:54:00:12:34:56" → lower case; anything else is InvalidArgument. Pure.
absl::StatusOr<std::string> NormalizeMac(absl::string_view text);
std::string FormatIpv4(uint32_t address);

// Checks every field; errors name the interface or route. Pure.
absl::StatusOr<NetworkPlan> PlanNetwork(const v1::CreateSandboxRequest& request);

// Finds each planned interface under `sysfs_net` (/sys/class/net) by MAC (or
// name), sets MTU and addresses, brings it up, then adds the routes. Waits
// up to `wait_for_devices` for a device to appear (virtio_net probes
// asynchronously after modprobe).
absl::Status ApplyNetwork(const NetworkPlan& plan, const std::string& sysfs_net,
                          int wait_for_devices_ms);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_NETWORK_H_
