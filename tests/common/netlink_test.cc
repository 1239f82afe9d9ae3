// Pure parts of common/netlink: prefixes, and what a pod's namespace hands
// to the guest (SelectPodNetwork) — from a state like the one the CNI
// bridge plugin leaves (veth eth0 with IPv4 + IPv6, kernel and static
// routes, link-local and multicast entries that must stay behind).
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include "common/netlink/netlink.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::netlink {
namespace {

using ::testing::HasSubstr;

TEST(NetlinkTest, ParsesPrefixesOfBothFamilies) {
  EXPECT_EQ(ParsePrefix("10.1.0.0/16")->ToString(), "10.1.0.0/16");
  EXPECT_EQ(ParsePrefix("10.0.0.1")->prefix_length, 32u);
  EXPECT_EQ(ParsePrefix("fd00:0:0::1/64")->ToString(), "fd00::1/64");
  EXPECT_EQ(ParsePrefix("::1")->prefix_length, 128u);
  EXPECT_EQ(ParsePrefix("", AF_INET)->ToString(), "0.0.0.0/0");
  EXPECT_EQ(ParsePrefix("default", AF_INET6)->ToString(), "::/0");
  EXPECT_FALSE(ParsePrefix("").ok());
  EXPECT_THAT(ParsePrefix("10.0.0.0/33").status().message(), HasSubstr("0 to 32"));
  EXPECT_THAT(ParsePrefix("fd00::/129").status().message(), HasSubstr("0 to 128"));
  EXPECT_FALSE(ParsePrefix("10.0.2").ok());
  EXPECT_FALSE(ParseAddress("10.0.0.0/8").ok());
}

TEST(NetlinkTest, TellsNetworkAddressesAndLinkLocal) {
  EXPECT_TRUE(IsNetworkAddress(*ParsePrefix("10.1.0.0/16")));
  EXPECT_FALSE(IsNetworkAddress(*ParsePrefix("10.1.0.1/16")));
  EXPECT_TRUE(IsNetworkAddress(*ParsePrefix("0.0.0.0/0")));
  EXPECT_TRUE(IsNetworkAddress(*ParsePrefix("fd00:77::/64")));
  EXPECT_FALSE(IsNetworkAddress(*ParsePrefix("fd00:77::1/64")));
  EXPECT_TRUE(IsIpv6LinkLocal(*ParsePrefix("fe80::1/64")));
  EXPECT_FALSE(IsIpv6LinkLocal(*ParsePrefix("fd00::1/64")));
  EXPECT_FALSE(IsIpv6LinkLocal(*ParsePrefix("10.0.0.1")));
}

NetworkState CniBridgeNamespace() {
  NetworkState s;
  s.links = {
      {.index = 1, .name = "lo", .mac = "00:00:00:00:00:00", .mtu = 65536,
       .flags = IFF_LOOPBACK | IFF_UP, .kind = ""},
      {.index = 3, .name = "eth0", .mac = "0a:58:0a:58:4d:05", .mtu = 1500, .flags = IFF_UP,
       .kind = "veth"},
      {.index = 4, .name = "tap0_cloak", .mac = "de:ad:be:ef:00:01", .mtu = 1500,
       .flags = IFF_UP, .kind = "tun"},
      {.index = 5, .name = "eth1", .mac = "0a:58:00:00:00:09", .mtu = 1500, .flags = 0,
       .kind = "veth"},  // no address: not handed over
  };
  s.addresses = {
      {.link_index = 1, .prefix = *ParsePrefix("127.0.0.1/8"), .scope = RT_SCOPE_HOST},
      {.link_index = 3, .prefix = *ParsePrefix("10.88.77.5/24"), .scope = RT_SCOPE_UNIVERSE},
      {.link_index = 3, .prefix = *ParsePrefix("fd00:77::5/64"), .scope = RT_SCOPE_UNIVERSE},
      {.link_index = 3, .prefix = *ParsePrefix("fe80::858:aff:fe58:4d05/64"),
       .scope = RT_SCOPE_LINK},
  };
  auto route = [](const char* dst, const char* gw, int link, int proto, int type = RTN_UNICAST,
                  uint32_t table = RT_TABLE_MAIN) {
    IpPrefix d = *ParsePrefix(dst);
    return Route{.family = d.family, .destination = d, .gateway = gw, .link_index = link,
                 .table = table, .type = type, .protocol = proto, .scope = 0};
  };
  s.routes = {
      route("0.0.0.0/0", "10.88.77.1", 3, RTPROT_BOOT),
      route("10.88.77.0/24", "", 3, RTPROT_KERNEL),
      route("10.99.0.0/16", "", 3, RTPROT_STATIC),
      route("fd00:77::/64", "", 3, RTPROT_KERNEL),
      route("fe80::/64", "", 3, RTPROT_BOOT),
      route("::/0", "fd00:77::1", 3, RTPROT_BOOT),
      route("10.88.77.5/32", "", 3, RTPROT_KERNEL, RTN_LOCAL, RT_TABLE_LOCAL),
      route("ff00::/8", "", 3, RTPROT_BOOT, RTN_MULTICAST),
      route("192.168.0.0/16", "", 4, RTPROT_BOOT),  // over our own tap
  };
  return s;
}

TEST(NetlinkTest, SelectsThePodInterfaceAndTheRoutesTheKernelDoesNotAdd) {
  PodNetwork pod = SelectPodNetwork(CniBridgeNamespace());
  ASSERT_EQ(pod.interfaces.size(), 1u);
  const PodInterface& eth = pod.interfaces[0];
  EXPECT_EQ(eth.name, "eth0");
  EXPECT_EQ(eth.index, 3);
  EXPECT_EQ(eth.mac, "0a:58:0a:58:4d:05");
  EXPECT_EQ(eth.mtu, 1500u);
  ASSERT_EQ(eth.addresses.size(), 2u);
  EXPECT_EQ(eth.addresses[0].ToString(), "10.88.77.5/24");
  EXPECT_EQ(eth.addresses[1].ToString(), "fd00:77::5/64");
  std::vector<std::string> routes;
  for (const PodRoute& r : pod.routes) {
    routes.push_back(r.destination.ToString() + (r.gateway.empty() ? "" : " via " + r.gateway) +
                     " dev " + r.device);
  }
  EXPECT_THAT(routes, ::testing::ElementsAre("0.0.0.0/0 via 10.88.77.1 dev eth0",
                                             "10.99.0.0/16 dev eth0",
                                             "::/0 via fd00:77::1 dev eth0"));
}

TEST(NetlinkTest, AnEmptyNamespaceHandsOverNothing) {
  NetworkState s;
  s.links = {{.index = 1, .name = "lo", .mac = "00:00:00:00:00:00", .mtu = 65536,
              .flags = IFF_LOOPBACK, .kind = ""}};
  PodNetwork pod = SelectPodNetwork(s);
  EXPECT_TRUE(pod.interfaces.empty());
  EXPECT_TRUE(pod.routes.empty());
}

}  // namespace
}  // namespace cloak::netlink
