#include "agent/network.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

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

uint32_t Mask(uint32_t prefix_length) {
  return prefix_length == 0 ? 0 : ~uint32_t{0} << (32 - prefix_length);
}

sockaddr_in SockaddrOf(uint32_t address) {
  sockaddr_in sin;
  std::memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(address);
  return sin;
}

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

absl::Status Ioctl(int fd, unsigned long request, void* arg, absl::string_view what,
                   absl::string_view device) {
  if (::ioctl(fd, request, arg) != 0) {
    return ErrnoError(errno, absl::StrCat(what, " on ", device));
  }
  return absl::OkStatus();
}

absl::Status ConfigureDevice(int fd, const std::string& device, const PlannedInterface& iface) {
  struct ifreq ifr;
  auto reset = [&] {
    std::memset(&ifr, 0, sizeof(ifr));
    std::strncpy(ifr.ifr_name, device.c_str(), IFNAMSIZ - 1);
  };
  if (iface.mtu != 0) {
    reset();
    ifr.ifr_mtu = static_cast<int>(iface.mtu);
    RETURN_IF_ERROR(Ioctl(fd, SIOCSIFMTU, &ifr, "set MTU", device));
  }
  // SIOCSIFADDR sets the primary address; further addresses become aliases
  // (device:N), as ifconfig does.
  int n = 0;
  for (const Ipv4Prefix& a : iface.addresses) {
    const std::string name = n == 0 ? device : absl::StrCat(device, ":", n);
    ++n;
    reset();
    std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
    sockaddr_in sin = SockaddrOf(a.address);
    std::memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
    RETURN_IF_ERROR(Ioctl(fd, SIOCSIFADDR, &ifr, "set address", name));
    sin = SockaddrOf(Mask(a.prefix_length));
    std::memcpy(&ifr.ifr_netmask, &sin, sizeof(sin));
    RETURN_IF_ERROR(Ioctl(fd, SIOCSIFNETMASK, &ifr, "set netmask", name));
  }
  reset();
  RETURN_IF_ERROR(Ioctl(fd, SIOCGIFFLAGS, &ifr, "read flags", device));
  ifr.ifr_flags |= IFF_UP;
  RETURN_IF_ERROR(Ioctl(fd, SIOCSIFFLAGS, &ifr, "bring up", device));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uint32_t> ParseIpv4(absl::string_view text) {
  in_addr addr;
  const std::string s(text);
  if (::inet_pton(AF_INET, s.c_str(), &addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not an IPv4 address"));
  }
  return ntohl(addr.s_addr);
}

absl::StatusOr<Ipv4Prefix> ParseIpv4Prefix(absl::string_view text) {
  if (text.empty()) return Ipv4Prefix{};
  std::vector<absl::string_view> parts = absl::StrSplit(text, absl::MaxSplits('/', 1));
  Ipv4Prefix p;
  ASSIGN_OR_RETURN(p.address, ParseIpv4(parts[0]));
  p.prefix_length = 32;
  if (parts.size() == 2 && (!absl::SimpleAtoi(parts[1], &p.prefix_length) || p.prefix_length > 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': the prefix length must be a number from 0 to 32"));
  }
  return p;
}

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

std::string FormatIpv4(uint32_t address) {
  return absl::StrCat(address >> 24, ".", (address >> 16) & 0xff, ".", (address >> 8) & 0xff,
                      ".", address & 0xff);
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
      absl::StatusOr<uint32_t> addr = ParseIpv4(a.address());
      if (!addr.ok()) return Annotate(addr.status(), where);
      if (a.prefix_length() == 0 || a.prefix_length() > 32) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": address ", a.address(),
                                                       " has prefix length ", a.prefix_length(),
                                                       "; want 1 to 32"));
      }
      out.addresses.push_back({*addr, a.prefix_length()});
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
    absl::StatusOr<Ipv4Prefix> dst = ParseIpv4Prefix(in.destination());
    if (!dst.ok()) return Annotate(dst.status(), where);
    out.destination = *dst;
    if ((out.destination.address & ~Mask(out.destination.prefix_length)) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": host bits are set; give the network address"));
    }
    if (!in.gateway().empty()) {
      absl::StatusOr<uint32_t> gw = ParseIpv4(in.gateway());
      if (!gw.ok()) return Annotate(gw.status(), where);
      out.gateway = *gw;
    }
    out.device = in.device();
    if (!out.device.empty()) {
      bool known = false;
      for (const PlannedInterface& iface : plan.interfaces) known = known || iface.name == out.device;
      if (!known) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": device ", out.device, " is not one of the interfaces"));
      }
    }
    if (out.gateway == 0 && out.device.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": give a gateway or a device"));
    }
    plan.routes.push_back(std::move(out));
  }
  return plan;
}

absl::Status ApplyNetwork(const NetworkPlan& plan, const std::string& sysfs_net,
                          int wait_for_devices_ms) {
  if (plan.interfaces.empty() && plan.routes.empty()) return absl::OkStatus();
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(errno, "socket(AF_INET) for interface configuration");
  std::map<std::string, std::string> devices;  // planned name → guest device
  const absl::Time deadline = absl::Now() + absl::Milliseconds(wait_for_devices_ms);
  for (const PlannedInterface& iface : plan.interfaces) {
    absl::StatusOr<std::string> device = FindDevice(iface, sysfs_net);
    while (!device.ok() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      device = FindDevice(iface, sysfs_net);
    }
    if (!device.ok()) return device.status();
    RETURN_IF_ERROR(ConfigureDevice(fd.get(), *device, iface));
    std::string addrs;
    for (const Ipv4Prefix& a : iface.addresses) {
      absl::StrAppend(&addrs, addrs.empty() ? "" : ",", FormatIpv4(a.address), "/", a.prefix_length);
    }
    Log()->info("interface {} ({}) up with {}", iface.name, *device, addrs.empty() ? "no address" : addrs);
    devices[iface.name] = *device;
  }
  for (const PlannedRoute& r : plan.routes) {
    struct rtentry rt;
    std::memset(&rt, 0, sizeof(rt));
    sockaddr_in dst = SockaddrOf(r.destination.address);
    sockaddr_in mask = SockaddrOf(Mask(r.destination.prefix_length));
    sockaddr_in gw = SockaddrOf(r.gateway);
    std::memcpy(&rt.rt_dst, &dst, sizeof(dst));
    std::memcpy(&rt.rt_genmask, &mask, sizeof(mask));
    std::memcpy(&rt.rt_gateway, &gw, sizeof(gw));
    rt.rt_flags = RTF_UP;
    if (r.gateway != 0) rt.rt_flags |= RTF_GATEWAY;
    if (r.destination.prefix_length == 32) rt.rt_flags |= RTF_HOST;
    std::string dev;
    if (!r.device.empty()) {
      dev = devices[r.device];
      rt.rt_dev = dev.data();
    }
    const std::string what = absl::StrCat(FormatIpv4(r.destination.address), "/",
                                          r.destination.prefix_length,
                                          r.gateway != 0 ? " via " + FormatIpv4(r.gateway) : "");
    if (::ioctl(fd.get(), SIOCADDRT, &rt) != 0 && errno != EEXIST) {
      return ErrnoError(errno, absl::StrCat("add route ", what));
    }
    Log()->info("route {}{}", what, dev.empty() ? "" : " dev " + dev);
  }
  return absl::OkStatus();
}

}  // namespace cloak::agent
