// The harness boots what the shim boots: its VmConfig and CreateSandbox
// request against the shim's own pure builders (shim/sandbox_factory.cc
// BuildVmConfig / BuildSandboxOptions), so the copy cannot drift silently.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "shim/config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/bundle.h"
#include "shim/sandbox_factory.h"
#include "shim/task_translate.h"
#include "tests/guest/guest_harness.h"

namespace cloak::guest_test {
namespace {

namespace hv = ::cloak::shim::hypervisor;

constexpr char kStateDir[] = "/run/cloak/guest-test";

GuestOptions Options() {
  GuestOptions o;
  o.kernel = "/k/vmlinuz";
  o.initrd = "/k/initrd.img";
  o.sandbox_id = "pod-1";
  o.hostname = "pod-host";
  o.insecure_registries = {"10.0.2.2:5000"};
  o.agent_log_level = "debug";
  return o;
}

// The shim's configuration that corresponds to Options().
config::Config ShimConfig() {
  config::Config c;
  c.hypervisor.qemu_path = "qemu-system-x86_64";
  c.hypervisor.kernel = "/k/vmlinuz";
  c.hypervisor.initrd = "/k/initrd.img";
  c.hypervisor.accel = config::Accel::kTcg;
  c.hypervisor.memory_mib = 512;
  c.agent.channel = config::AgentChannel::kSerial;
  c.agent.log_level = "debug";
  c.agent.boot_timeout = kDefaultGuestBootTimeout;
  return c;
}

TEST(GuestHarnessConfig, VmConfigMatchesTheShims) {
  // The harness's agent settings are class-level kernel parameters.
  config::Config c = ShimConfig();
  c.hypervisor.kernel_params = GuestKernelParams(Options());
  absl::StatusOr<hv::VmConfig> shim =
      shim::BuildVmConfig(c, "pod-1", kStateDir, hv::HostCapabilities{}, shim::UserModeNetwork());
  ASSERT_TRUE(shim.ok()) << shim.status();
  const hv::VmConfig ours = BuildGuestVmConfig(Options(), kStateDir);
  EXPECT_EQ(ours.kernel_cmdline, shim->kernel_cmdline);
  EXPECT_EQ(ours.name, shim->name);
  EXPECT_EQ(ours.machine, shim->machine);
  EXPECT_EQ(ours.accel, shim->accel);
  EXPECT_EQ(ours.cpu, shim->cpu);
  EXPECT_EQ(ours.memory_mib, shim->memory_mib);
  EXPECT_EQ(ours.vcpus, shim->vcpus);
  EXPECT_EQ(ours.kernel, shim->kernel);
  EXPECT_EQ(ours.initrd, shim->initrd);
  EXPECT_EQ(ours.firmware, shim->firmware);
  EXPECT_EQ(ours.tee, shim->tee);
  EXPECT_EQ(ours.agent_channel, shim->agent_channel);
  EXPECT_EQ(ours.serial_port_name, shim->serial_port_name);
  EXPECT_EQ(ours.serial_socket_path, shim->serial_socket_path);
  EXPECT_EQ(ours.qmp_socket_path, shim->qmp_socket_path);
  EXPECT_EQ(ours.console_log_path, shim->console_log_path);
  EXPECT_EQ(ours.vmm_log_path, shim->vmm_log_path);
  EXPECT_EQ(ours.user_network, shim->user_network);
  EXPECT_EQ(ours.extra_args, shim->extra_args);
  EXPECT_EQ(ours.boot_timeout, shim->boot_timeout);
}

TEST(GuestHarnessConfig, CreateSandboxMatchesTheShims) {
  shim::SandboxRequest request;
  request.sandbox_id = "pod-1";
  // The shim rewrites a loopback image registry to the guest's name for it.
  request.pod.image = "127.0.0.1:5000/busybox:t";
  request.pod.annotations[std::string(shim::kCriSandboxName)] = "pod-host";
  const shim::SandboxOptions shim =
      shim::BuildSandboxOptions(ShimConfig(), request, kStateDir, shim::UserModeNetwork());
  const agent::v1::CreateSandboxRequest ours = BuildCreateSandboxRequest(Options());

  EXPECT_EQ(ours.sandbox_id(), shim.id);
  EXPECT_EQ(ours.hostname(), shim.hostname);
  std::map<std::string, std::string> annotations(ours.annotations().begin(),
                                                 ours.annotations().end());
  EXPECT_EQ(annotations, shim.annotations);
  EXPECT_EQ(std::vector<std::string>(ours.dns().begin(), ours.dns().end()), shim.dns);
  ASSERT_EQ(ours.interfaces_size(), static_cast<int>(shim.interfaces.size()));
  for (int i = 0; i < ours.interfaces_size(); ++i) {
    const auto& got = ours.interfaces(i);
    const shim::GuestInterface& want = shim.interfaces[i];
    EXPECT_EQ(got.name(), want.name);
    EXPECT_EQ(got.mac(), want.mac);
    ASSERT_EQ(got.addresses_size(), static_cast<int>(want.addresses.size()));
    for (int a = 0; a < got.addresses_size(); ++a) {
      EXPECT_EQ(got.addresses(a).address(), want.addresses[a].address);
      EXPECT_EQ(got.addresses(a).prefix_length(), want.addresses[a].prefix_length);
    }
    EXPECT_EQ(got.mtu(), want.mtu);
  }
  ASSERT_EQ(ours.routes_size(), static_cast<int>(shim.routes.size()));
  for (int i = 0; i < ours.routes_size(); ++i) {
    EXPECT_EQ(ours.routes(i).destination(), shim.routes[i].destination);
    EXPECT_EQ(ours.routes(i).gateway(), shim.routes[i].gateway);
    EXPECT_EQ(ours.routes(i).device(), shim.routes[i].device);
  }
}

TEST(GuestHarnessConfig, ConstantsMatchTheShims) {
  EXPECT_EQ(kBaseKernelCmdline, shim::kBaseKernelCmdline);
  EXPECT_EQ(kHostLoopbackFromGuest, shim::kHostLoopbackFromGuest);
  EXPECT_EQ(kQemuUserNetMac, shim::kQemuUserNetMac);
}

TEST(GuestHarnessConfig, NoInsecureRegistryNoParameter) {
  GuestOptions o = Options();
  o.insecure_registries.clear();
  EXPECT_THAT(BuildGuestVmConfig(o, kStateDir).kernel_cmdline,
              ::testing::Not(::testing::HasSubstr("cloak.insecure_registries")));
  EXPECT_TRUE(BuildCreateSandboxRequest(o).annotations().empty());
}

}  // namespace
}  // namespace cloak::guest_test
