// Network configuration over rtnetlink (libnl-route-3), shared by the shim
// (reads a pod's network namespace, wires a tap device to it with tc
// redirect filters) and the agent (configures the guest's interfaces).
//
// Everything acts on the network namespace of the calling thread;
// RunInNetns runs a function on a thread inside another namespace.
// The selection of what a pod's namespace holds (SelectPodNetwork) and the
// address parsing are pure and unit-tested.
#ifndef CLOAK_COMMON_NETLINK_NETLINK_H_
#define CLOAK_COMMON_NETLINK_NETLINK_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/fd.h"

namespace cloak::netlink {

// An IPv4 or IPv6 prefix: "10.88.77.5/24", "fd00::5/64".
struct IpPrefix {
  int family = 0;           // AF_INET or AF_INET6
  std::string address;      // textual, as inet_ntop writes it
  uint32_t prefix_length = 0;

  std::string ToString() const;
  bool operator==(const IpPrefix&) const = default;
};

// "10.1.0.0/16", "fd00::/8", "10.0.0.1" (/32), "::1" (/128). An empty text
// or "default" is 0.0.0.0/0 for `default_family` AF_INET (::/0 for
// AF_INET6). InvalidArgument for anything else. Pure.
absl::StatusOr<IpPrefix> ParsePrefix(absl::string_view text, int default_family = 0);
// An address without a prefix. Pure.
absl::StatusOr<IpPrefix> ParseAddress(absl::string_view text);
// True when the host bits (beyond prefix_length) are zero. Pure.
bool IsNetworkAddress(const IpPrefix& prefix);
// fe80::/10. Pure.
bool IsIpv6LinkLocal(const IpPrefix& prefix);

struct Link {
  int index = 0;
  std::string name;
  std::string mac;  // lower case, "" for links without one
  uint32_t mtu = 0;
  uint32_t flags = 0;  // IFF_*
  std::string kind;    // "veth", "tun", "" ...
};

struct Address {
  int link_index = 0;
  IpPrefix prefix;  // the local address with its prefix length
  int scope = 0;    // RT_SCOPE_*
};

struct Route {
  int family = 0;
  IpPrefix destination;  // prefix_length 0: default
  std::string gateway;   // "" for on-link
  int link_index = 0;
  uint32_t table = 0;
  int type = 0;      // RTN_*
  int protocol = 0;  // RTPROT_*
  int scope = 0;
};

struct NetworkState {
  std::vector<Link> links;
  std::vector<Address> addresses;
  std::vector<Route> routes;
};

// What the guest takes over from a pod's namespace: for each interface that
// carries an address (not loopback, not a tap of ours), its MAC, MTU and
// global addresses; the main table's unicast routes that the kernel does
// not add by itself (proto kernel, IPv6 link-local and multicast are left
// out). Routes name interfaces by their pod-side name.
struct PodInterface {
  int index = 0;
  std::string name;
  std::string mac;
  uint32_t mtu = 0;
  std::vector<IpPrefix> addresses;
};
struct PodRoute {
  IpPrefix destination;
  std::string gateway;
  std::string device;  // a PodInterface name
};
struct PodNetwork {
  std::vector<PodInterface> interfaces;
  std::vector<PodRoute> routes;
};
// Pure.
PodNetwork SelectPodNetwork(const NetworkState& state);

// Reads links, addresses and routes (all families) of the current namespace.
absl::StatusOr<NetworkState> ReadNetworkState();

// Runs `fn` on a new thread that has joined the network namespace at
// `netns_path` (e.g. /var/run/netns/cni-…), and waits for it. Sockets and
// tap devices made there stay in that namespace.
absl::Status RunInNetns(const std::string& netns_path, const std::function<absl::Status()>& fn);

// Creates a tap device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) named `name`
// in the current namespace; it lives as long as an fd to it is open.
absl::StatusOr<UniqueFd> CreateTap(const std::string& name);

// Creates a persistent tap device (same flags) named `name` in the current
// namespace: it outlives the fds to it until DeleteLink. For a VMM that
// opens the tap by name itself (libvirt's <interface type='ethernet'>).
absl::Status CreatePersistentTap(const std::string& name);
// Moves a link of the current namespace into the namespace at
// `netns_path`. A tap keeps its open queues (a VMM's fd keeps working).
absl::Status MoveLinkToNetns(int link_index, const std::string& netns_path);
// Deletes a link of the current namespace; NotFound if there is none.
absl::Status DeleteLink(const std::string& name);

// Sets the MTU (0: unchanged) and brings the link up.
absl::Status SetLinkUp(int link_index, uint32_t mtu);
// Link index of `name` / of the link with `mac`; NotFound otherwise.
absl::StatusOr<int> LinkIndex(const std::string& name);
absl::StatusOr<Link> FindLinkByMac(const std::string& mac);

// Adds an address (IPv6 without duplicate address detection: the address
// was already checked on the pod's network).
absl::Status AddAddress(int link_index, const IpPrefix& prefix);
// Adds a route to the main table; an existing identical route is fine.
absl::Status AddRoute(const IpPrefix& destination, const std::string& gateway, int link_index);

// tc: an ingress qdisc on `from` and a u32 match-all filter whose mirred
// action redirects every frame to the egress of `to` (Kata's "tcfilter").
absl::Status AddIngressRedirect(int from_index, int to_index);
// Removes the ingress qdisc (and with it its filters) from a link. A link
// without one is fine.
absl::Status RemoveIngress(int link_index);
// Number of tc filters on the ingress of a link (for checks and tests).
absl::StatusOr<int> CountIngressFilters(int link_index);

}  // namespace cloak::netlink

#endif  // CLOAK_COMMON_NETLINK_NETLINK_H_
