// PodNetworkAttachment against a real network namespace made here the way
// the CNI bridge plugin leaves one (a veth "eth0" with IPv4 + IPv6 and a
// default route; the other end in the host namespace with the gateway
// address): the tap and both tc redirect filters appear, a frame sent from
// the host to the pod's IP comes out of the tap, and Detach leaves the
// namespace as CNI left it. Root only; everything it makes is removed even
// when a check fails.
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/pod_network.h"
#include "tests/util/host.h"
#include "tests/util/skip.h"

namespace cloak::shim {
namespace {

using ::cloak::testutil::Shell;
using ::cloak::testutil::Which;
using ::testing::HasSubstr;
using ::testing::Not;

class PodNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) CLOAK_SKIP() << "needs root (network namespaces, veth, tc)";
    if (Which("ip").empty() || Which("tc").empty()) CLOAK_SKIP() << "iproute2 is not installed";
    const int id = ::getpid() % 100000;
    ns_ = absl::StrCat("ckpn", id);
    host_veth_ = absl::StrCat("ckpnh", id);
    std::string out;
    ASSERT_EQ(Shell(absl::StrCat("ip netns add ", ns_), &out), 0) << out;
    made_ = true;
    ASSERT_EQ(Shell(absl::StrCat(
                        "ip link add ", host_veth_, " type veth peer name eth0 netns ", ns_,
                        " && ip addr add 10.231.77.1/24 dev ", host_veth_, " && ip link set ",
                        host_veth_, " up && ip -n ", ns_, " link set lo up && ip -n ", ns_,
                        " link set eth0 mtu 1400 up && ip -n ", ns_,
                        " addr add 10.231.77.5/24 dev eth0 && ip -n ", ns_,
                        " addr add fd00:231:77::5/64 dev eth0 nodad && ip -n ", ns_,
                        " route add default via 10.231.77.1 dev eth0"),
                    &out),
              0)
        << out;
  }
  void TearDown() override {
    if (!made_) return;
    Shell(absl::StrCat("ip link del ", host_veth_));
    Shell(absl::StrCat("ip netns del ", ns_));
  }
  std::string NsPath() const { return "/var/run/netns/" + ns_; }
  std::string InNs(const std::string& cmd) const {
    std::string out;
    Shell(absl::StrCat("ip netns exec ", ns_, " ", cmd), &out);
    return out;
  }

  std::string ns_;
  std::string host_veth_;
  bool made_ = false;
};

TEST_F(PodNetworkTest, WiresATapWithTcRedirectAndUndoesIt) {
  absl::StatusOr<std::unique_ptr<PodNetworkAttachment>> att =
      PodNetworkAttachment::Attach(NsPath(), "sb-test");
  ASSERT_TRUE(att.ok()) << att.status();

  // What the guest will be given.
  std::vector<GuestInterface> ifaces = (*att)->GuestInterfaces();
  ASSERT_EQ(ifaces.size(), 1u);
  EXPECT_EQ(ifaces[0].name, "eth0");
  EXPECT_EQ(ifaces[0].mtu, 1400u);
  EXPECT_EQ(InNs("cat /sys/class/net/eth0/address"), ifaces[0].mac + "\n");
  ASSERT_EQ(ifaces[0].addresses.size(), 2u);
  EXPECT_EQ(ifaces[0].addresses[0].address, "10.231.77.5");
  EXPECT_EQ(ifaces[0].addresses[0].prefix_length, 24u);
  EXPECT_EQ(ifaces[0].addresses[1].address, "fd00:231:77::5");
  std::vector<GuestRoute> routes = (*att)->GuestRoutes();
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0].destination, "0.0.0.0/0");
  EXPECT_EQ(routes[0].gateway, "10.231.77.1");
  EXPECT_EQ(routes[0].device, "eth0");
  ASSERT_EQ((*att)->Taps().size(), 1u);
  EXPECT_EQ((*att)->Taps()[0].mac, ifaces[0].mac);

  // The tap exists in the pod's namespace (not the host's), up, same MTU,
  // with a redirect filter each way.
  EXPECT_THAT(InNs("ip link show tap0_cloak"), HasSubstr("mtu 1400"));
  std::string host_links;
  Shell("ip link show", &host_links);
  EXPECT_THAT(host_links, Not(HasSubstr("tap0_cloak")));
  EXPECT_THAT(InNs("tc filter show dev eth0 ingress"),
              HasSubstr("mirred (Egress Redirect to device tap0_cloak)"));
  EXPECT_THAT(InNs("tc filter show dev tap0_cloak ingress"),
              HasSubstr("mirred (Egress Redirect to device eth0)"));

  // A datagram from the host to the pod IP: the host's ARP request enters
  // eth0 and must come out of the tap (after the 10-byte virtio-net header).
  {
    UniqueFd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    to.sin_addr.s_addr = htonl(0x0ae74d05);  // 10.231.77.5
    ASSERT_GE(::sendto(udp.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
    bool saw_arp = false;
    unsigned char frame[2048];
    for (int i = 0; i < 20 && !saw_arp; ++i) {
      pollfd p{.fd = (*att)->Taps()[0].fd, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 250) <= 0) continue;
      ssize_t n = ::read(p.fd, frame, sizeof(frame));
      if (n >= 10 + 14 && frame[10 + 12] == (ETH_P_ARP >> 8) && frame[10 + 13] == (ETH_P_ARP & 0xff)) {
        saw_arp = true;
      }
    }
    EXPECT_TRUE(saw_arp) << "no ARP frame from the host came out of the tap";
  }

  (*att)->Detach();
  EXPECT_THAT(InNs("tc qdisc show dev eth0"), Not(HasSubstr("ingress")));
  EXPECT_THAT(InNs("ip link show"), Not(HasSubstr("tap0_cloak")));
  // The pod's own configuration is untouched.
  EXPECT_THAT(InNs("ip addr show dev eth0"), HasSubstr("10.231.77.5/24"));
  EXPECT_THAT(InNs("ip route show"), HasSubstr("default via 10.231.77.1"));
}

// The libvirt driver's way: a persistent tap made in the host's namespace,
// opened by name there (as libvirtd does for QEMU), then moved into the
// pod's namespace and wired, its open queue still delivering frames.
TEST_F(PodNetworkTest, ByNameTapIsOpenedInTheHostThenMovedIntoThePod) {
  const std::string tap = HostTapName("sb-byname", 0);
  ASSERT_LE(tap.size(), 15u);
  absl::StatusOr<std::unique_ptr<PodNetworkAttachment>> att = PodNetworkAttachment::Attach(
      NsPath(), "sb-byname", PodNetworkAttachment::TapMode::kByName);
  ASSERT_TRUE(att.ok()) << att.status();
  ASSERT_EQ((*att)->Taps().size(), 1u);
  EXPECT_EQ((*att)->Taps()[0].name, tap);
  EXPECT_EQ((*att)->Taps()[0].fd, -1);
  std::string host_links;
  Shell("ip link show", &host_links);
  EXPECT_THAT(host_links, HasSubstr(tap));
  EXPECT_THAT(InNs("ip link show"), Not(HasSubstr(tap)));

  absl::StatusOr<UniqueFd> queue = netlink::CreateTap(tap);  // attaches to the existing tap
  ASSERT_TRUE(queue.ok()) << queue.status();
  ASSERT_TRUE((*att)->MoveTapsIntoPod().ok());
  ASSERT_TRUE((*att)->MoveTapsIntoPod().ok());  // idempotent
  Shell("ip link show", &host_links);
  EXPECT_THAT(host_links, Not(HasSubstr(tap)));
  EXPECT_THAT(InNs("ip link show " + tap), HasSubstr("mtu 1400"));
  EXPECT_THAT(InNs("tc filter show dev eth0 ingress"),
              HasSubstr("mirred (Egress Redirect to device " + tap + ")"));
  EXPECT_THAT(InNs("tc filter show dev " + tap + " ingress"),
              HasSubstr("mirred (Egress Redirect to device eth0)"));
  {
    UniqueFd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    to.sin_addr.s_addr = htonl(0x0ae74d05);  // 10.231.77.5
    ASSERT_GE(::sendto(udp.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
    bool saw_arp = false;
    unsigned char frame[2048];
    for (int i = 0; i < 20 && !saw_arp; ++i) {
      pollfd p{.fd = queue->get(), .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 250) <= 0) continue;
      ssize_t n = ::read(p.fd, frame, sizeof(frame));
      if (n >= 10 + 14 && frame[10 + 12] == (ETH_P_ARP >> 8) && frame[10 + 13] == (ETH_P_ARP & 0xff)) {
        saw_arp = true;
      }
    }
    EXPECT_TRUE(saw_arp) << "no ARP frame came out of the moved tap's queue";
  }
  (*att)->Detach();
  EXPECT_THAT(InNs("ip link show"), Not(HasSubstr(tap)));
  EXPECT_THAT(InNs("tc qdisc show dev eth0"), Not(HasSubstr("ingress")));
}

TEST_F(PodNetworkTest, ByNameTapsLeftInTheHostAreRemoved) {
  absl::StatusOr<std::unique_ptr<PodNetworkAttachment>> att = PodNetworkAttachment::Attach(
      NsPath(), "sb-left", PodNetworkAttachment::TapMode::kByName);
  ASSERT_TRUE(att.ok()) << att.status();
  const std::string tap = HostTapName("sb-left", 0);
  std::string host_links;
  Shell("ip link show", &host_links);
  ASSERT_THAT(host_links, HasSubstr(tap));
  // What `delete` does after a shim died before the VM launched.
  RemoveHostTaps("sb-left");
  Shell("ip link show", &host_links);
  EXPECT_THAT(host_links, Not(HasSubstr(tap)));
  (*att)->Detach();  // nothing left to undo, and no error
}

TEST_F(PodNetworkTest, ANamespaceWithoutAddressesIsRefusedAndLeftAlone) {
  std::string out;
  ASSERT_EQ(Shell(absl::StrCat("ip -n ", ns_, " addr flush dev eth0"), &out), 0) << out;
  absl::StatusOr<std::unique_ptr<PodNetworkAttachment>> att =
      PodNetworkAttachment::Attach(NsPath(), "sb-test");
  ASSERT_FALSE(att.ok());
  EXPECT_EQ(att.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(att.status().message(), HasSubstr("CNI"));
  EXPECT_THAT(InNs("ip link show"), Not(HasSubstr("tap0_cloak")));
  EXPECT_THAT(InNs("tc qdisc show dev eth0"), Not(HasSubstr("ingress")));
}

TEST_F(PodNetworkTest, AMissingNamespaceIsAClearError) {
  absl::StatusOr<std::unique_ptr<PodNetworkAttachment>> att =
      PodNetworkAttachment::Attach("/var/run/netns/does-not-exist-ck", "sb-test");
  ASSERT_FALSE(att.ok());
  EXPECT_THAT(att.status().message(), HasSubstr("/var/run/netns/does-not-exist-ck"));
}

TEST(ResolvConfTest, KeepsOnlyResolverLines) {
  EXPECT_THAT(ResolvConfLines("# generated\nsearch default.svc.cluster.local svc.cluster.local\n"
                              "nameserver 10.96.0.10\n  options ndots:5  \nnameserverx 1.2.3.4\n"
                              "bogus line\n"),
              ::testing::ElementsAre("search default.svc.cluster.local svc.cluster.local",
                                     "nameserver 10.96.0.10", "options ndots:5"));
  EXPECT_TRUE(ResolvConfLines("").empty());
}

}  // namespace
}  // namespace cloak::shim
