#include "agent/network.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cloak/agent/v1/agent.pb.h"
#include "common/fd.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace cloak::agent {
namespace {

constexpr int kMaxInterfaces = 16;
constexpr int kMaxRoutes = 256;
constexpr int kMaxAddresses = 16;

auto Log() { return Logger("network"); }

std::string ReadTrimmed(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

// Device name for `iface`, or NotFound.
absl::StatusOr<std::string> FindDevice(const PlannedInterface& iface, const std::string& sysfs_net) {
  std::error_code ec;
  if (iface.mac.empty()) {
    if (std::filesystem::exists(std::filesystem::path(sysfs_net) / iface.name, ec)) return iface.name;
    return absl::NotFoundError(absl::StrCat("no network device named ", iface.name));
  }
  for (const auto& entry : std::filesystem::directory_iterator(sysfs_net, ec)) {
    if (absl::AsciiStrToLower(ReadTrimmed(entry.path() / "address")) == iface.mac) {
      return entry.path().filename().string();
    }
  }
  return absl::NotFoundError(absl::StrCat("no network device with MAC ", iface.mac, " (for ",
                                          iface.name, ")"));
}

}  // namespace

absl::StatusOr<std::string> NormalizeMac(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  bool ok = parts.size() == 6;
  for (absl::string_view p : parts) {
    ok = ok && p.size() == 2 && absl::ascii_isxdigit(p[0]) && absl::ascii_isxdigit(p[1]);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a MAC address (want six hex pairs, aa:bb:cc:dd:ee:ff)"));
  }
  return absl::AsciiStrToLower(text);
}

absl::StatusOr<NetworkPlan> PlanNetwork(const v1::CreateSandboxRequest& request) {
  if (request.interfaces_size() > kMaxInterfaces) {
    return absl::InvalidArgumentError(absl::StrCat("more than ", kMaxInterfaces, " interfaces"));
  }
  if (request.routes_size() > kMaxRoutes) {
    return absl::InvalidArgumentError(absl::StrCat("more than ", kMaxRoutes, " routes"));
  }
  NetworkPlan plan;
  for (int i = 0; i < request.interfaces_size(); ++i) {
    const v1::NetworkInterface& in = request.interfaces(i);
    const std::string where = absl::StrCat("interfaces[", i, "] (", in.name(), ")");
    PlannedInterface out;
    out.name = in.name();
    if (out.name.empty() || out.name.size() >= IFNAMSIZ ||
        out.name.find_first_of("/: \t\n") != std::string::npos || out.name == "lo") {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": the name must be 1 to ", IFNAMSIZ - 1,
          " characters without '/', ':' or spaces, and not 'lo'"));
    }
    for (const PlannedInterface& prev : plan.interfaces) {
      if (prev.name == out.name) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": the name is used twice"));
      }
    }
    if (!in.mac().empty()) {
      absl::StatusOr<std::string> mac = NormalizeMac(in.mac());
      if (!mac.ok()) return Annotate(mac.status(), where);
      out.mac = *mac;
    }
    if (in.addresses_size() > kMaxAddresses) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": more than ", kMaxAddresses,
                                                     " addresses"));
    }
    for (const v1::IpAddress& a : in.addresses()) {
      absl::StatusOr<netlink::IpPrefix> addr = netlink::ParseAddress(a.address());
      if (!addr.ok()) return Annotate(addr.status(), where);
      const uint32_t max = addr->family == AF_INET ? 32 : 128;
      if (a.prefix_length() == 0 || a.prefix_length() > max) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": address ", a.address(),
                                                       " has prefix length ", a.prefix_length(),
                                                       "; want 1 to ", max));
      }
      addr->prefix_length = a.prefix_length();
      out.addresses.push_back(*addr);
    }
    if (in.mtu() != 0 && (in.mtu() < 68 || in.mtu() > 65535)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": MTU ", in.mtu(), " is outside 68..65535"));
    }
    out.mtu = in.mtu();
    plan.interfaces.push_back(std::move(out));
  }
  for (int i = 0; i < request.routes_size(); ++i) {
    const v1::Route& in = request.routes(i);
    const std::string where = absl::StrCat("routes[", i, "] (", in.destination(), ")");
    PlannedRoute out;
    int family = AF_INET;
    if (!in.gateway().empty()) {
      absl::StatusOr<netlink::IpPrefix> gw = netlink::ParseAddress(in.gateway());
      if (!gw.ok()) return Annotate(gw.status(), where);
      family = gw->family;
      out.gateway = gw->address;
    }
    absl::StatusOr<netlink::IpPrefix> dst = netlink::ParsePrefix(in.destination(), family);
    if (!dst.ok()) return Annotate(dst.status(), where);
    if (!out.gateway.empty() && dst->family != family) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the gateway ", out.gateway, " is of another address family"));
    }
    if (!netlink::IsNetworkAddress(*dst)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": host bits are set; give the network address"));
    }
    out.destination = *dst;
    out.device = in.device();
    if (!out.device.empty()) {
      bool known = false;
      for (const PlannedInterface& iface : plan.interfaces) known = known || iface.name == out.device;
      if (!known) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": device ", out.device, " is not one of the interfaces"));
      }
    }
    if (out.gateway.empty() && out.device.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": give a gateway or a device"));
    }
    plan.routes.push_back(std::move(out));
  }
  // On-link routes first: a gateway must be reachable when its route is added.
  std::stable_partition(plan.routes.begin(), plan.routes.end(),
                        [](const PlannedRoute& r) { return r.gateway.empty(); });
  return plan;
}

absl::Status ApplyNetwork(const NetworkPlan& plan, const std::string& sysfs_net,
                          int wait_for_devices_ms) {
  if (plan.interfaces.empty() && plan.routes.empty()) return absl::OkStatus();
  std::map<std::string, int> devices;  // planned name → guest link index
  std::map<std::string, std::string> names;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(wait_for_devices_ms);
  for (const PlannedInterface& iface : plan.interfaces) {
    absl::StatusOr<std::string> device = FindDevice(iface, sysfs_net);
    while (!device.ok() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      device = FindDevice(iface, sysfs_net);
    }
    if (!device.ok()) return device.status();
    ASSIGN_OR_RETURN(int index, netlink::LinkIndex(*device));
    std::string addrs;
    for (const netlink::IpPrefix& a : iface.addresses) {
      RETURN_IF_ERROR(netlink::AddAddress(index, a));
      absl::StrAppend(&addrs, addrs.empty() ? "" : ",", a.ToString());
    }
    RETURN_IF_ERROR(netlink::SetLinkUp(index, iface.mtu));
    Log()->info("interface {} ({}) up{} with {}", iface.name, *device,
                iface.mtu != 0 ? absl::StrCat(", mtu ", iface.mtu) : "",
                addrs.empty() ? "no address" : addrs);
    devices[iface.name] = index;
    names[iface.name] = *device;
  }
  for (const PlannedRoute& r : plan.routes) {
    const int index = r.device.empty() ? 0 : devices[r.device];
    RETURN_IF_ERROR(netlink::AddRoute(r.destination, r.gateway, index));
    Log()->info("route {}{}{}", r.destination.prefix_length == 0 ? "default" : r.destination.ToString(),
                r.gateway.empty() ? "" : " via " + r.gateway,
                r.device.empty() ? "" : " dev " + names[r.device]);
  }
  return absl::OkStatus();
}

}  // namespace cloak::agent
