// Guest networking: the interfaces and routes CreateSandbox carries are
// validated into a NetworkPlan (pure) and applied over rtnetlink (PID 1
// only; containers share the guest's network namespace, so this is the
// pod's network). IPv4 and IPv6.
#ifndef CLOAK_AGENT_NETWORK_H_
#define CLOAK_AGENT_NETWORK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/netlink/netlink.h"

namespace cloak::agent::v1 {
class CreateSandboxRequest;
}

namespace cloak::agent {

struct PlannedInterface {
  std::string name;  // as the host names it
  std::string mac;   // lower case, or empty: match by name
  std::vector<netlink::IpPrefix> addresses;
  uint32_t mtu = 0;
};

struct PlannedRoute {
  netlink::IpPrefix destination;  // prefix length 0: a default route
  std::string gateway;            // "": on-link
  std::string device;             // a PlannedInterface name, or empty
};

struct NetworkPlan {
  std::vector<PlannedInterface> interfaces;
  std::vector<PlannedRoute> routes;
};

// "52:54:00:12:34:56" → lower case; anything else is InvalidArgument. Pure.
absl::StatusOr<std::string> NormalizeMac(absl::string_view text);

// Checks every field; errors name the interface or route. Routes are
// ordered on-link first, so that a gateway is reachable when its route is
// added. Pure.
absl::StatusOr<NetworkPlan> PlanNetwork(const v1::CreateSandboxRequest& request);

// Finds each planned interface under `sysfs_net` (/sys/class/net) by MAC (or
// name), sets its MTU and addresses, brings it up, then adds the routes.
// Waits up to `wait_for_devices_ms` for a device to appear (virtio_net
// probes asynchronously after modprobe).
absl::Status ApplyNetwork(const NetworkPlan& plan, const std::string& sysfs_net,
                          int wait_for_devices_ms);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_NETWORK_H_
