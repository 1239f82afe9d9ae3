// agent/crun: the crun command lines.
#include "agent/crun.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

TEST(CrunArgsTest, Builders) {
  CrunOptions options;
  options.binary = "/usr/bin/crun";
  options.state_root = "/run/cloak/crun";
  options.no_pivot = true;
  Crun crun(options, nullptr);
  EXPECT_EQ(crun.CreateArgs("c1", "/b", "/b/init.pid", "/b/log", ""),
            (std::vector<std::string>{"/usr/bin/crun", "--root", "/run/cloak/crun",
                                      "--log=file:/b/log", "--log-format=text", "create",
                                      "--bundle", "/b", "--pid-file", "/b/init.pid",
                                      "--no-pivot", "c1"}));
  EXPECT_EQ(crun.ExecArgs("c1", "/b/p.json", "/b/p.pid", "", "/s/1.sock"),
            (std::vector<std::string>{"/usr/bin/crun", "--root", "/run/cloak/crun", "exec",
                                      "--detach", "--pid-file", "/b/p.pid", "--process",
                                      "/b/p.json", "--console-socket", "/s/1.sock", "c1"}));
  EXPECT_EQ(crun.KillArgs("c1", 9, true),
            (std::vector<std::string>{"/usr/bin/crun", "--root", "/run/cloak/crun", "kill",
                                      "--all", "c1", "9"}));
}

}  // namespace
}  // namespace cloak::agent
