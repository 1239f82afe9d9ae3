// CriEnv itself: with CNI on, a pod gets its address from the run's own
// bridge network (e2e/local/cni's conflist with the run's bridge and /24)
// and teardown leaves no lease, bridge or netns mount behind. Root only; skips, saying why, when a prerequisite is
// missing.
#include "tests/cli/cri/cri_env.h"

#include <net/if.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/util/host.h"
#include "tests/util/skip.h"

namespace cloak::cri {
namespace {

TEST(CriEnvTest, CniPodGetsAnAddressOfTheBridgeNetworkAndTeardownReleasesIt) {
  const CriEnvOptions options = CriEnvOptions::ForThisBuild(/*cni=*/true);
  if (std::string missing = CriEnv::MissingPrerequisite(options); !missing.empty()) {
    CLOAK_SKIP() << missing;
  }
  std::string dir, bridge;
  {
    auto env = CriEnv::Start(options);
    ASSERT_TRUE(env.ok()) << env.status();
    dir = (*env)->dir();
    bridge = (*env)->cni_bridge();
    auto pod = (*env)->RunPod((*env)->PodConfig("cni"));
    ASSERT_TRUE(pod.ok()) << pod.status() << "\n" << (*env)->ContainerdLogTail();
    auto status = (*env)->client().PodSandboxStatus(*pod);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_TRUE(absl::StartsWith(status->network().ip(), (*env)->cni_prefix()))
        << "pod IP \"" << status->network().ip() << "\"";
    EXPECT_NE(::if_nametoindex(bridge.c_str()), 0u) << bridge;
    EXPECT_TRUE(std::filesystem::exists(dir + "/cni/ipam/cloak-bridge"))
        << "host-local keeps its leases under the run's dir";
  }
  // Teardown: the run's dir is gone with its leases, and its bridge.
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_EQ(::if_nametoindex(bridge.c_str()), 0u) << bridge << " left";
  EXPECT_FALSE(absl::StrContains(testutil::Slurp("/proc/self/mounts"), dir));
}

}  // namespace
}  // namespace cloak::cri
