// Unit tests of agent/network: validation of the interfaces and routes a
// CreateSandbox carries. Applying them needs a guest (PID 1); the guest
// boot tests cover that by pulling from the host over the configured NIC.
#include <filesystem>
#include <fstream>
#include <functional>

#include "agent/network.h"
#include "cloak/agent/v1/agent.pb.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

using ::testing::HasSubstr;

v1::CreateSandboxRequest UserNetRequest() {
  v1::CreateSandboxRequest req;
  v1::NetworkInterface* eth = req.add_interfaces();
  eth->set_name("eth0");
  eth->set_mac("52:54:00:12:34:56");
  v1::IpAddress* a = eth->add_addresses();
  a->set_address("10.0.2.15");
  a->set_prefix_length(24);
  v1::Route* r = req.add_routes();
  r->set_gateway("10.0.2.2");
  r->set_device("eth0");
  return req;
}

TEST(NetworkTest, NormalizesMacs) {
  EXPECT_EQ(*NormalizeMac("52:54:00:AB:cd:EF"), "52:54:00:ab:cd:ef");
  EXPECT_FALSE(NormalizeMac("52:54:00:ab:cd").ok());
  EXPECT_FALSE(NormalizeMac("52-54-00-ab-cd-ef").ok());
  EXPECT_FALSE(NormalizeMac("52:54:00:ab:cd:eg").ok());
}

TEST(NetworkTest, PlansUserModeNetwork) {
  absl::StatusOr<NetworkPlan> plan = PlanNetwork(UserNetRequest());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->interfaces.size(), 1u);
  EXPECT_EQ(plan->interfaces[0].mac, "52:54:00:12:34:56");
  ASSERT_EQ(plan->interfaces[0].addresses.size(), 1u);
  EXPECT_EQ(plan->interfaces[0].addresses[0].prefix_length, 24u);
  ASSERT_EQ(plan->routes.size(), 1u);
  EXPECT_EQ(plan->routes[0].destination.prefix_length, 0u);
  EXPECT_EQ(plan->routes[0].destination.ToString(), "0.0.0.0/0");
  EXPECT_EQ(plan->routes[0].gateway, "10.0.2.2");
}

// What the shim reads in a CNI pod's namespace: IPv4 and IPv6 addresses,
// an MTU, an on-link route listed after the default route that needs it.
TEST(NetworkTest, PlansDualStackPodNetworkOnLinkRoutesFirst) {
  v1::CreateSandboxRequest req;
  v1::NetworkInterface* eth = req.add_interfaces();
  eth->set_name("eth0");
  eth->set_mac("0A:58:0A:58:4D:05");
  eth->set_mtu(1450);
  v1::IpAddress* a = eth->add_addresses();
  a->set_address("10.88.77.5");
  a->set_prefix_length(24);
  a = eth->add_addresses();
  a->set_address("fd00:77::5");
  a->set_prefix_length(64);
  v1::Route* r = req.add_routes();
  r->set_gateway("10.88.77.1");
  r->set_device("eth0");
  r = req.add_routes();
  r->set_destination("::/0");
  r->set_gateway("fd00:77::1");
  r->set_device("eth0");
  r = req.add_routes();
  r->set_destination("10.99.0.0/16");
  r->set_device("eth0");
  absl::StatusOr<NetworkPlan> plan = PlanNetwork(req);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->interfaces.size(), 1u);
  EXPECT_EQ(plan->interfaces[0].mac, "0a:58:0a:58:4d:05");
  EXPECT_EQ(plan->interfaces[0].mtu, 1450u);
  ASSERT_EQ(plan->interfaces[0].addresses.size(), 2u);
  EXPECT_EQ(plan->interfaces[0].addresses[1].ToString(), "fd00:77::5/64");
  ASSERT_EQ(plan->routes.size(), 3u);
  EXPECT_EQ(plan->routes[0].destination.ToString(), "10.99.0.0/16");
  EXPECT_EQ(plan->routes[1].destination.ToString(), "0.0.0.0/0");
  EXPECT_EQ(plan->routes[2].destination.ToString(), "::/0");
  EXPECT_EQ(plan->routes[2].gateway, "fd00:77::1");
}

TEST(NetworkTest, NoNetworkIsAnEmptyPlan) {
  absl::StatusOr<NetworkPlan> plan = PlanNetwork(v1::CreateSandboxRequest());
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->interfaces.empty());
  EXPECT_TRUE(ApplyNetwork(*plan, "/nonexistent", 0).ok());
}

TEST(NetworkTest, RefusesBadInterfacesNamingThem) {
  struct Case {
    const char* what;
    std::function<void(v1::CreateSandboxRequest&)> mutate;
    const char* error;
  };
  const std::vector<Case> cases = {
      {"name with slash", [](auto& r) { r.mutable_interfaces(0)->set_name("../x"); }, "interfaces[0]"},
      {"loopback", [](auto& r) { r.mutable_interfaces(0)->set_name("lo"); }, "not 'lo'"},
      {"long name", [](auto& r) { r.mutable_interfaces(0)->set_name("abcdefghijklmnopq"); }, "1 to 15"},
      {"bad mac", [](auto& r) { r.mutable_interfaces(0)->set_mac("nope"); }, "not a MAC"},
      {"bad address",
       [](auto& r) { r.mutable_interfaces(0)->mutable_addresses(0)->set_address("10.0.2.999"); },
       "not an IPv4"},
      {"zero prefix",
       [](auto& r) { r.mutable_interfaces(0)->mutable_addresses(0)->set_prefix_length(0); },
       "prefix length 0"},
      {"tiny mtu", [](auto& r) { r.mutable_interfaces(0)->set_mtu(10); }, "MTU 10"},
      {"duplicate", [](auto& r) { *r.add_interfaces() = r.interfaces(0); }, "used twice"},
      {"route to unknown device", [](auto& r) { r.mutable_routes(0)->set_device("eth9"); },
       "eth9 is not one of"},
      {"route host bits", [](auto& r) { r.mutable_routes(0)->set_destination("10.1.2.3/16"); },
       "host bits"},
      {"route without next hop",
       [](auto& r) {
         r.mutable_routes(0)->clear_gateway();
         r.mutable_routes(0)->clear_device();
       },
       "gateway or a device"},
      {"bad gateway", [](auto& r) { r.mutable_routes(0)->set_gateway("x"); }, "routes[0]"},
  };
  for (const Case& c : cases) {
    v1::CreateSandboxRequest req = UserNetRequest();
    c.mutate(req);
    absl::StatusOr<NetworkPlan> plan = PlanNetwork(req);
    ASSERT_FALSE(plan.ok()) << c.what;
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(plan.status().message(), HasSubstr(c.error)) << c.what << ": " << plan.status();
  }
}

TEST(NetworkTest, ApplyReportsAMissingDeviceByMac) {
  TempDir sysfs = *TempDir::Create("cloak-net-test");
  std::filesystem::create_directories(sysfs.Join("eth0"));
  std::ofstream(sysfs.Join("eth0/address")) << "52:54:00:00:00:01\n";
  absl::StatusOr<NetworkPlan> plan = PlanNetwork(UserNetRequest());
  ASSERT_TRUE(plan.ok());
  absl::Status s = ApplyNetwork(*plan, sysfs.path().string(), 50);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("52:54:00:12:34:56"));
}

}  // namespace
}  // namespace cloak::agent
