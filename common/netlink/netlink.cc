#include "common/netlink/netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/addr.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/route.h>
#include <netlink/route/tc.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace cloak::netlink {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p != nullptr) Free(p);
  }
};
using Socket = std::unique_ptr<nl_sock, Deleter<nl_sock, nl_socket_free>>;
using Cache = std::unique_ptr<nl_cache, Deleter<nl_cache, nl_cache_free>>;
using LinkPtr = std::unique_ptr<rtnl_link, Deleter<rtnl_link, rtnl_link_put>>;
using AddrPtr = std::unique_ptr<rtnl_addr, Deleter<rtnl_addr, rtnl_addr_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, Deleter<rtnl_route, rtnl_route_put>>;
using NlAddr = std::unique_ptr<nl_addr, Deleter<nl_addr, nl_addr_put>>;
using QdiscPtr = std::unique_ptr<rtnl_qdisc, Deleter<rtnl_qdisc, rtnl_qdisc_put>>;
using ClsPtr = std::unique_ptr<rtnl_cls, Deleter<rtnl_cls, rtnl_cls_put>>;
using ActPtr = std::unique_ptr<rtnl_act, Deleter<rtnl_act, rtnl_act_put>>;

constexpr uint32_t kIngressHandle = TC_HANDLE(0xffffU, 0);

absl::Status NlError(int err, absl::string_view what) {
  const int code = err < 0 ? -err : err;
  absl::StatusCode sc = absl::StatusCode::kInternal;
  if (code == NLE_PERM) sc = absl::StatusCode::kPermissionDenied;
  if (code == NLE_OBJ_NOTFOUND || code == NLE_NODEV) sc = absl::StatusCode::kNotFound;
  if (code == NLE_EXIST) sc = absl::StatusCode::kAlreadyExists;
  if (code == NLE_INVAL || code == NLE_RANGE) sc = absl::StatusCode::kInvalidArgument;
  return absl::Status(sc, absl::StrCat(what, ": ", nl_geterror(code)));
}

absl::StatusOr<Socket> Connect() {
  Socket sk(nl_socket_alloc());
  if (!sk) return absl::ResourceExhaustedError("netlink: cannot allocate a socket");
  if (int err = nl_connect(sk.get(), NETLINK_ROUTE); err < 0) {
    return NlError(err, "netlink: connect to rtnetlink");
  }
  return sk;
}

std::string Ntop(int family, const void* bytes) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(family, bytes, buf, sizeof(buf)) == nullptr) return "";
  return buf;
}

// nl_addr (AF_INET/AF_INET6) → IpPrefix; an empty address (the default
// route's destination) is the zero address.
IpPrefix FromNlAddr(nl_addr* a, int family) {
  IpPrefix p;
  p.family = family;
  unsigned char zero[16] = {};
  const void* bytes = zero;
  if (a != nullptr && nl_addr_get_len(a) == (family == AF_INET ? 4U : 16U)) {
    bytes = nl_addr_get_binary_addr(a);
  }
  p.address = Ntop(family, bytes);
  p.prefix_length = a != nullptr ? nl_addr_get_prefixlen(a) : 0;
  return p;
}

absl::StatusOr<NlAddr> ToNlAddr(const IpPrefix& p) {
  unsigned char bytes[16] = {};
  const std::string text = p.address;
  if (::inet_pton(p.family, text.c_str(), bytes) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("'", p.address, "' is not an address"));
  }
  NlAddr a(nl_addr_build(p.family, bytes, p.family == AF_INET ? 4 : 16));
  if (!a) return absl::ResourceExhaustedError("netlink: cannot allocate an address");
  nl_addr_set_prefixlen(a.get(), static_cast<int>(p.prefix_length));
  return a;
}

std::string MacOf(rtnl_link* link) {
  nl_addr* a = rtnl_link_get_addr(link);
  if (a == nullptr || nl_addr_get_len(a) != 6) return "";
  const auto* b = static_cast<const unsigned char*>(nl_addr_get_binary_addr(a));
  std::string out;
  for (int i = 0; i < 6; ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ":", absl::Hex(b[i], absl::kZeroPad2));
  }
  return out;
}

template <typename T, typename F>
void ForEach(nl_cache* cache, F&& f) {
  for (nl_object* o = nl_cache_get_first(cache); o != nullptr; o = nl_cache_get_next(o)) {
    f(reinterpret_cast<T*>(o));
  }
}

}  // namespace

std::string IpPrefix::ToString() const { return absl::StrCat(address, "/", prefix_length); }

absl::StatusOr<IpPrefix> ParseAddress(absl::string_view text) {
  const std::string s(text);
  unsigned char bytes[16];
  IpPrefix p;
  if (::inet_pton(AF_INET, s.c_str(), bytes) == 1) {
    p.family = AF_INET;
    p.prefix_length = 32;
  } else if (::inet_pton(AF_INET6, s.c_str(), bytes) == 1) {
    p.family = AF_INET6;
    p.prefix_length = 128;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not an IPv4 or IPv6 address"));
  }
  p.address = Ntop(p.family, bytes);
  return p;
}

absl::StatusOr<IpPrefix> ParsePrefix(absl::string_view text, int default_family) {
  if (text.empty() || text == "default") {
    if (default_family == AF_INET) return IpPrefix{AF_INET, "0.0.0.0", 0};
    if (default_family == AF_INET6) return IpPrefix{AF_INET6, "::", 0};
    return absl::InvalidArgumentError("an empty prefix needs an address family");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(text, absl::MaxSplits('/', 1));
  ASSIGN_OR_RETURN(IpPrefix p, ParseAddress(parts[0]));
  if (parts.size() == 2) {
    const uint32_t max = p.family == AF_INET ? 32 : 128;
    uint32_t len = 0;
    if (!absl::SimpleAtoi(parts[1], &len) || len > max) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", text, "': the prefix length must be a number from 0 to ", max));
    }
    p.prefix_length = len;
  }
  return p;
}

bool IsNetworkAddress(const IpPrefix& prefix) {
  unsigned char bytes[16] = {};
  if (::inet_pton(prefix.family, prefix.address.c_str(), bytes) != 1) return false;
  const uint32_t bits = prefix.family == AF_INET ? 32 : 128;
  for (uint32_t bit = prefix.prefix_length; bit < bits; ++bit) {
    if (bytes[bit / 8] & (0x80 >> (bit % 8))) return false;
  }
  return true;
}

bool IsIpv6LinkLocal(const IpPrefix& prefix) {
  if (prefix.family != AF_INET6) return false;
  unsigned char bytes[16] = {};
  if (::inet_pton(AF_INET6, prefix.address.c_str(), bytes) != 1) return false;
  return bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80;
}

PodNetwork SelectPodNetwork(const NetworkState& state) {
  PodNetwork out;
  for (const Link& link : state.links) {
    if ((link.flags & IFF_LOOPBACK) != 0 || link.kind == "tun" || link.mac.empty()) continue;
    PodInterface iface{
        .index = link.index, .name = link.name, .mac = link.mac, .mtu = link.mtu, .addresses = {}};
    for (const Address& a : state.addresses) {
      if (a.link_index != link.index || a.scope >= RT_SCOPE_LINK || IsIpv6LinkLocal(a.prefix)) {
        continue;
      }
      iface.addresses.push_back(a.prefix);
    }
    if (!iface.addresses.empty()) out.interfaces.push_back(std::move(iface));
  }
  auto device_of = [&out](int index) -> std::string {
    for (const PodInterface& i : out.interfaces) {
      if (i.index == index) return i.name;
    }
    return "";
  };
  for (const Route& r : state.routes) {
    if (r.table != RT_TABLE_MAIN || r.type != RTN_UNICAST || r.protocol == RTPROT_KERNEL) continue;
    if (IsIpv6LinkLocal(r.destination)) continue;
    const std::string device = device_of(r.link_index);
    if (device.empty()) continue;  // a route over a link the guest does not get
    out.routes.push_back({.destination = r.destination, .gateway = r.gateway, .device = device});
  }
  return out;
}

absl::StatusOr<NetworkState> ReadNetworkState() {
  ASSIGN_OR_RETURN(Socket sk, Connect());
  NetworkState state;
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sk.get(), AF_UNSPEC, &raw); err < 0) {
    return NlError(err, "netlink: list links");
  }
  Cache links(raw);
  ForEach<rtnl_link>(links.get(), [&](rtnl_link* l) {
    const char* kind = rtnl_link_get_type(l);
    state.links.push_back({.index = rtnl_link_get_ifindex(l),
                           .name = rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "",
                           .mac = MacOf(l),
                           .mtu = rtnl_link_get_mtu(l),
                           .flags = rtnl_link_get_flags(l),
                           .kind = kind != nullptr ? kind : ""});
  });
  raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(sk.get(), &raw); err < 0) {
    return NlError(err, "netlink: list addresses");
  }
  Cache addrs(raw);
  ForEach<rtnl_addr>(addrs.get(), [&](rtnl_addr* a) {
    const int family = rtnl_addr_get_family(a);
    if (family != AF_INET && family != AF_INET6) return;
    IpPrefix p = FromNlAddr(rtnl_addr_get_local(a), family);
    p.prefix_length = static_cast<uint32_t>(rtnl_addr_get_prefixlen(a));
    state.addresses.push_back(
        {.link_index = rtnl_addr_get_ifindex(a), .prefix = p, .scope = rtnl_addr_get_scope(a)});
  });
  raw = nullptr;
  if (int err = rtnl_route_alloc_cache(sk.get(), AF_UNSPEC, 0, &raw); err < 0) {
    return NlError(err, "netlink: list routes");
  }
  Cache routes(raw);
  ForEach<rtnl_route>(routes.get(), [&](rtnl_route* r) {
    const int family = rtnl_route_get_family(r);
    if (family != AF_INET && family != AF_INET6) return;
    Route out;
    out.family = family;
    out.destination = FromNlAddr(rtnl_route_get_dst(r), family);
    out.table = rtnl_route_get_table(r);
    out.type = rtnl_route_get_type(r);
    out.protocol = rtnl_route_get_protocol(r);
    out.scope = rtnl_route_get_scope(r);
    if (rtnl_route_get_nnexthops(r) > 0) {
      rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
      out.link_index = rtnl_route_nh_get_ifindex(nh);
      if (nl_addr* gw = rtnl_route_nh_get_gateway(nh); gw != nullptr) {
        out.gateway = FromNlAddr(gw, family).address;
      }
    }
    state.routes.push_back(std::move(out));
  });
  return state;
}

absl::Status RunInNetns(const std::string& netns_path, const std::function<absl::Status()>& fn) {
  UniqueFd ns(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return ErrnoError(errno, "open network namespace ", netns_path);
  absl::Status result;
  std::thread worker([&] {
    // setns affects only this thread; it ends with the function.
    if (::setns(ns.get(), CLONE_NEWNET) != 0) {
      result = ErrnoError(errno, "join network namespace ", netns_path);
      return;
    }
    result = fn();
  });
  worker.join();
  return result;
}

absl::StatusOr<UniqueFd> CreateTap(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(absl::StrCat("tap name '", name, "' must be 1 to ",
                                                   IFNAMSIZ - 1, " characters"));
  }
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) return ErrnoError(errno, "open /dev/net/tun (is the tun module loaded?)");
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) return ErrnoError(errno, "create tap ", name);
  return fd;
}

absl::Status CreatePersistentTap(const std::string& name) {
  ASSIGN_OR_RETURN(UniqueFd fd, CreateTap(name));
  if (::ioctl(fd.get(), TUNSETPERSIST, 1) != 0) {
    return ErrnoError(errno, "make tap ", name, " persistent");
  }
  return absl::OkStatus();
}

absl::Status MoveLinkToNetns(int link_index, const std::string& netns_path) {
  UniqueFd ns(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return ErrnoError(errno, "open network namespace ", netns_path);
  ASSIGN_OR_RETURN(Socket sk, Connect());
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sk.get(), link_index, nullptr, &raw); err < 0) {
    return NlError(err, absl::StrCat("netlink: find link ", link_index));
  }
  LinkPtr orig(raw);
  LinkPtr change(rtnl_link_alloc());
  if (!change) return absl::ResourceExhaustedError("netlink: cannot allocate a link");
  rtnl_link_set_ns_fd(change.get(), ns.get());
  if (int err = rtnl_link_change(sk.get(), orig.get(), change.get(), 0); err < 0) {
    return NlError(err, absl::StrCat("netlink: move ", rtnl_link_get_name(orig.get()),
                                     " into the network namespace ", netns_path));
  }
  return absl::OkStatus();
}

absl::Status DeleteLink(const std::string& name) {
  ASSIGN_OR_RETURN(Socket sk, Connect());
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sk.get(), 0, name.c_str(), &raw); err < 0) {
    return NlError(err, absl::StrCat("netlink: find link ", name));
  }
  LinkPtr link(raw);
  if (int err = rtnl_link_delete(sk.get(), link.get()); err < 0) {
    return NlError(err, absl::StrCat("netlink: delete link ", name));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> LinkIndex(const std::string& name) {
  ASSIGN_OR_RETURN(Socket sk, Connect());
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sk.get(), 0, name.c_str(), &raw); err < 0) {
    return NlError(err, absl::StrCat("netlink: find link ", name));
  }
  LinkPtr link(raw);
  return rtnl_link_get_ifindex(link.get());
}

absl::StatusOr<Link> FindLinkByMac(const std::string& mac) {
  ASSIGN_OR_RETURN(NetworkState state, ReadNetworkState());
  const std::string want = absl::AsciiStrToLower(mac);
  for (const Link& l : state.links) {
    if (l.mac == want) return l;
  }
  return absl::NotFoundError(absl::StrCat("no network device with MAC ", mac));
}

absl::Status SetLinkUp(int link_index, uint32_t mtu) {
  ASSIGN_OR_RETURN(Socket sk, Connect());
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sk.get(), link_index, nullptr, &raw); err < 0) {
    return NlError(err, absl::StrCat("netlink: find link ", link_index));
  }
  LinkPtr orig(raw);
  LinkPtr change(rtnl_link_alloc());
  if (!change) return absl::ResourceExhaustedError("netlink: cannot allocate a link");
  if (mtu != 0) rtnl_link_set_mtu(change.get(), mtu);
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int err = rtnl_link_change(sk.get(), orig.get(), change.get(), 0); err < 0) {
    return NlError(err, absl::StrCat("netlink: bring up ", rtnl_link_get_name(orig.get()),
                                     mtu != 0 ? absl::StrCat(" with MTU ", mtu) : ""));
  }
  return absl::OkStatus();
}

absl::Status AddAddress(int link_index, const IpPrefix& prefix) {
  ASSIGN_OR_RETURN(Socket sk, Connect());
  ASSIGN_OR_RETURN(NlAddr local, ToNlAddr(prefix));
  AddrPtr addr(rtnl_addr_alloc());
  if (!addr) return absl::ResourceExhaustedError("netlink: cannot allocate an address");
  rtnl_addr_set_ifindex(addr.get(), link_index);
  rtnl_addr_set_family(addr.get(), prefix.family);
  if (int err = rtnl_addr_set_local(addr.get(), local.get()); err < 0) {
    return NlError(err, absl::StrCat("netlink: address ", prefix.ToString()));
  }
  rtnl_addr_set_prefixlen(addr.get(), static_cast<int>(prefix.prefix_length));
  if (prefix.family == AF_INET6) rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);
  int err = rtnl_addr_add(sk.get(), addr.get(), 0);
  if (err < 0 && err != -NLE_EXIST) {
    return NlError(err, absl::StrCat("netlink: add address ", prefix.ToString(), " to link ",
                                     link_index));
  }
  return absl::OkStatus();
}

absl::Status AddRoute(const IpPrefix& destination, const std::string& gateway, int link_index) {
  ASSIGN_OR_RETURN(Socket sk, Connect());
  ASSIGN_OR_RETURN(NlAddr dst, ToNlAddr(destination));
  RoutePtr route(rtnl_route_alloc());
  if (!route) return absl::ResourceExhaustedError("netlink: cannot allocate a route");
  rtnl_route_set_family(route.get(), static_cast<uint8_t>(destination.family));
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(route.get(), RTPROT_BOOT);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  rtnl_route_set_scope(route.get(), gateway.empty() ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE);
  if (int err = rtnl_route_set_dst(route.get(), dst.get()); err < 0) {
    return NlError(err, absl::StrCat("netlink: route to ", destination.ToString()));
  }
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  if (nh == nullptr) return absl::ResourceExhaustedError("netlink: cannot allocate a next hop");
  if (link_index > 0) rtnl_route_nh_set_ifindex(nh, link_index);
  std::string what = destination.ToString();
  if (!gateway.empty()) {
    absl::StatusOr<IpPrefix> gw = ParseAddress(gateway);
    if (!gw.ok() || gw->family != destination.family) {
      rtnl_route_nh_free(nh);
      return absl::InvalidArgumentError(absl::StrCat("route to ", what, ": gateway '", gateway,
                                                     "' is not an address of the same family"));
    }
    absl::StatusOr<NlAddr> gwa = ToNlAddr(*gw);
    if (!gwa.ok()) {
      rtnl_route_nh_free(nh);
      return gwa.status();
    }
    rtnl_route_nh_set_gateway(nh, gwa->get());
    absl::StrAppend(&what, " via ", gateway);
  }
  rtnl_route_add_nexthop(route.get(), nh);  // the route owns it now
  int err = rtnl_route_add(sk.get(), route.get(), 0);
  if (err < 0 && err != -NLE_EXIST) return NlError(err, absl::StrCat("netlink: add route ", what));
  return absl::OkStatus();
}

absl::Status AddIngressRedirect(int from_index, int to_index) {
  ASSIGN_OR_RETURN(Socket sk, Connect());
  QdiscPtr q(rtnl_qdisc_alloc());
  if (!q) return absl::ResourceExhaustedError("netlink: cannot allocate a qdisc");
  rtnl_tc_set_ifindex(TC_CAST(q.get()), from_index);
  rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_INGRESS);
  rtnl_tc_set_handle(TC_CAST(q.get()), kIngressHandle);
  if (int err = rtnl_tc_set_kind(TC_CAST(q.get()), "ingress"); err < 0) {
    return NlError(err, "netlink: qdisc kind ingress");
  }
  int err = rtnl_qdisc_add(sk.get(), q.get(), NLM_F_CREATE);
  if (err < 0 && err != -NLE_EXIST) {
    return NlError(err, absl::StrCat("tc: add ingress qdisc to link ", from_index));
  }
  ClsPtr cls(rtnl_cls_alloc());
  ActPtr act(rtnl_act_alloc());
  if (!cls || !act) return absl::ResourceExhaustedError("netlink: cannot allocate a tc filter");
  rtnl_tc_set_ifindex(TC_CAST(cls.get()), from_index);
  rtnl_tc_set_parent(TC_CAST(cls.get()), kIngressHandle);
  if (int e = rtnl_tc_set_kind(TC_CAST(cls.get()), "u32"); e < 0) {
    return NlError(e, "netlink: filter kind u32");
  }
  rtnl_cls_set_prio(cls.get(), 1);
  rtnl_cls_set_protocol(cls.get(), ETH_P_ALL);
  rtnl_u32_set_cls_terminal(cls.get());
  // "match u32 0 0 at 0": every frame.
  if (int e = rtnl_u32_add_key_uint32(cls.get(), 0, 0, 0, 0); e < 0) {
    return NlError(e, "tc: u32 match-all key");
  }
  if (int e = rtnl_tc_set_kind(TC_CAST(act.get()), "mirred"); e < 0) {
    return NlError(e, "netlink: action kind mirred");
  }
  rtnl_mirred_set_action(act.get(), TCA_EGRESS_REDIR);
  rtnl_mirred_set_policy(act.get(), TC_ACT_STOLEN);
  rtnl_mirred_set_ifindex(act.get(), static_cast<uint32_t>(to_index));
  if (int e = rtnl_u32_add_action(cls.get(), act.get()); e < 0) {
    return NlError(e, "tc: attach the mirred action");
  }
  if (int e = rtnl_cls_add(sk.get(), cls.get(), NLM_F_CREATE); e < 0) {
    return NlError(e, absl::StrCat("tc: add redirect filter from link ", from_index, " to link ",
                                   to_index));
  }
  return absl::OkStatus();
}

absl::Status RemoveIngress(int link_index) {
  ASSIGN_OR_RETURN(Socket sk, Connect());
  QdiscPtr q(rtnl_qdisc_alloc());
  if (!q) return absl::ResourceExhaustedError("netlink: cannot allocate a qdisc");
  rtnl_tc_set_ifindex(TC_CAST(q.get()), link_index);
  rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_INGRESS);
  rtnl_tc_set_handle(TC_CAST(q.get()), kIngressHandle);
  int err = rtnl_qdisc_delete(sk.get(), q.get());
  // No such qdisc (or link) is what we want.
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_INVAL && err != -NLE_NODEV) {
    return NlError(err, absl::StrCat("tc: remove the ingress qdisc of link ", link_index));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> CountIngressFilters(int link_index) {
  ASSIGN_OR_RETURN(Socket sk, Connect());
  nl_cache* raw = nullptr;
  if (int err = rtnl_cls_alloc_cache(sk.get(), link_index, kIngressHandle, &raw); err < 0) {
    return NlError(err, absl::StrCat("tc: list ingress filters of link ", link_index));
  }
  Cache cache(raw);
  return nl_cache_nitems(cache.get());
}

}  // namespace cloak::netlink
