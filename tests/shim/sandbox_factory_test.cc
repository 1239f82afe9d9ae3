// shim/sandbox_factory: the VM configuration of a sandbox from the shim's
// configuration.
#include "shim/sandbox_factory.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/config/config.h"

namespace cloak::shim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(SandboxFactoryTest, PodNetworkKeepsConfiguredInsecureRegistriesAsGiven) {
  EXPECT_THAT(GuestInsecureRegistries({"10.88.77.1:5000", "127.0.0.1:5000"}, "127.0.0.1:6000/x",
                                      /*host_loopback=*/false),
              ElementsAre("10.88.77.1:5000", "127.0.0.1:5000"));
}

TEST(SandboxConfigTest, VmConfigFromConfig) {
  config::Config cfg = config::DefaultConfig();
  cfg.hypervisor.memory_mib = 1024;
  cfg.hypervisor.kernel_params = "foo=1";
  hypervisor::HostCapabilities caps;  // no vhost-vsock: auto resolves to serial
  auto vm = BuildVmConfig(cfg, "sb1", "/run/cloak/sb1", caps, UserModeNetwork());
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_EQ(vm->memory_mib, 1024);
  EXPECT_EQ(vm->qmp_socket_path, "/run/cloak/sb1/qmp.sock");
  EXPECT_EQ(vm->serial_socket_path, "/run/cloak/sb1/agent.sock");
  EXPECT_EQ(vm->console_log_path, "/run/cloak/sb1/console.log");
  EXPECT_THAT(vm->kernel_cmdline, HasSubstr("console=ttyS0"));
  // The channel is resolved before the command line is built.
  EXPECT_EQ(vm->agent_channel, hypervisor::AgentChannel::kSerial);
  EXPECT_THAT(vm->kernel_cmdline, HasSubstr("cloak.channel=serial "));
  caps.vhost_vsock = true;
  auto vsock = BuildVmConfig(cfg, "sb1", "/run/cloak/sb1", caps, UserModeNetwork());
  ASSERT_TRUE(vsock.ok()) << vsock.status();
  EXPECT_EQ(vsock->agent_channel, hypervisor::AgentChannel::kVsock);
  EXPECT_THAT(vsock->kernel_cmdline, HasSubstr("cloak.channel=vsock "));
  EXPECT_THAT(vsock->kernel_cmdline, Not(HasSubstr("insecure")));
  // Class-level constants only (shim/hypervisor/guest_cmdline.h): the
  // per-pod agent settings are in the init-data.
  EXPECT_EQ(vm->kernel_cmdline,
            std::string(kBaseKernelCmdline) +
                " cloak.channel=serial cloak.port=1024 cloak.tee=none foo=1");
  EXPECT_EQ(vm->kernel_cmdline, hypervisor::GuestKernelCmdline(cfg, hypervisor::AgentChannel::kSerial));
  for (const char* per_pod : {"cloak.log", "cloak.max_downloads", "cloak.insecure_registries"}) {
    EXPECT_THAT(vm->kernel_cmdline, Not(HasSubstr(per_pod)));
  }
  // The TEE class is on it, for the agent's plain-http rule.
  cfg.tee.type = config::TeeType::kSnp;
  EXPECT_THAT(hypervisor::GuestKernelCmdline(cfg, hypervisor::AgentChannel::kVsock),
              HasSubstr(" cloak.channel=vsock cloak.port=1024 cloak.tee=snp "));
  cfg.tee.type = config::TeeType::kNone;
  EXPECT_EQ(hypervisor::ClassAgentChannel(config::AgentChannel::kAuto, false),
            config::AgentChannel::kSerial);
  EXPECT_EQ(hypervisor::ClassAgentChannel(config::AgentChannel::kAuto, true),
            config::AgentChannel::kVsock);
  EXPECT_EQ(hypervisor::ClassAgentChannel(config::AgentChannel::kSerial, true),
            config::AgentChannel::kSerial);
  EXPECT_EQ(vm->tee, hypervisor::TeeType::kNone);
  EXPECT_TRUE(vm->user_network);
  // The agent policy is on unless the runtime class turns it off, on the
  // (measured) command line.
  EXPECT_THAT(vm->kernel_cmdline, ::testing::Not(HasSubstr("cloak.policy")));
  cfg.agent.allow_all_policy = true;
  auto open_vm = BuildVmConfig(cfg, "sb1", "/run/cloak/sb1", caps, UserModeNetwork());
  ASSERT_TRUE(open_vm.ok()) << open_vm.status();
  EXPECT_THAT(open_vm->kernel_cmdline, HasSubstr(" cloak.policy=allow-all"));
  cfg.agent.allow_all_policy = false;

  cfg.runtime.state_dir = "/" + std::string(120, 'x');
  EXPECT_FALSE(
      BuildVmConfig(cfg, "sb1", SandboxStateDir(cfg, "sb1"), caps, UserModeNetwork()).ok());
}

TEST(SandboxConfigTest, InsecureRegistries) {
  EXPECT_THAT(GuestInsecureRegistries({"127.0.0.1:5000", "reg.local:80"}, "localhost:5000/x"),
              ElementsAre("10.0.2.2:5000", "reg.local:80"));
  EXPECT_THAT(GuestInsecureRegistries({}, "127.0.0.1:6000/busybox"), ElementsAre("10.0.2.2:6000"));
  EXPECT_TRUE(GuestInsecureRegistries({}, "docker.io/x").empty());
}

}  // namespace
}  // namespace cloak::shim
