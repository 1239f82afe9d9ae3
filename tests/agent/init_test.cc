// agent/init: the agent's settings from the kernel command line.
#include "agent/init.h"

#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

TEST(KernelCmdlineTest, Parses) {
  absl::StatusOr<KernelCmdline> c = ParseKernelCmdline(
      "console=ttyS0 quiet cloak.channel=serial cloak.port=2048 cloak.log=debug "
      "cloak.modules=vsock,overlay cloak.insecure_registries=10.0.2.2:5000\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->channel, "serial");
  EXPECT_EQ(c->port, 2048u);
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->modules, (std::vector<std::string>{"vsock", "overlay"}));
  EXPECT_EQ(c->insecure_registries, (std::vector<std::string>{"10.0.2.2:5000"}));
  EXPECT_FALSE(ParseKernelCmdline("cloak.insecure_registries=a/b").ok());
  absl::StatusOr<KernelCmdline> d = ParseKernelCmdline("root=/dev/vda");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->channel, "auto");
  EXPECT_EQ(d->port, 1024u);
  EXPECT_EQ(d->modules, DefaultModules());
  EXPECT_TRUE(ParseKernelCmdline("cloak.modules=")->modules.empty());
  EXPECT_FALSE(ParseKernelCmdline("cloak.channel=tcp").ok());
  EXPECT_FALSE(ParseKernelCmdline("cloak.port=x").ok());
  EXPECT_FALSE(ParseKernelCmdline("cloak.modules=../x").ok());
  EXPECT_EQ(d->policy, "enforce");
  EXPECT_EQ(ParseKernelCmdline("cloak.policy=allow-all")->policy, "allow-all");
  EXPECT_FALSE(ParseKernelCmdline("cloak.policy=off").ok());
  // The runtime class's TEE (docs/attestation.md): absent is not dev.
  EXPECT_EQ(d->tee, "");
  EXPECT_EQ(ParseKernelCmdline("cloak.tee=none")->tee, "none");
  EXPECT_EQ(ParseKernelCmdline("cloak.tee=snp")->tee, "snp");
  EXPECT_EQ(ParseKernelCmdline("cloak.tee=tdx")->tee, "tdx");
  EXPECT_FALSE(ParseKernelCmdline("cloak.tee=dev").ok());
  EXPECT_TRUE(IsOptionalModule("sev-guest"));
  EXPECT_FALSE(IsOptionalModule("vsock"));
}

}  // namespace
}  // namespace cloak::agent
