// CriEnv itself: with CNI on, a pod gets its address from the bridge network
// of e2e/local/cni (10.88.77.0/24) and teardown leaves no lease, bridge or
// netns mount behind. Root only; skips, saying why, when a prerequisite is
// missing.
#include <net/if.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/cri/cri_env.h"
#include "tests/util/host.h"

namespace cloak::cri {
namespace {

TEST(CriEnvTest, CniPodGetsAnAddressOfTheBridgeNetworkAndTeardownReleasesIt) {
  const CriEnvOptions options{
      .build_dir = CLOAK_BUILD_DIR, .source_dir = CLOAK_SOURCE_DIR, .cni = true};
  if (std::string missing = CriEnv::MissingPrerequisite(options); !missing.empty()) {
    GTEST_SKIP() << missing;
  }
  const bool bridge_before = ::if_nametoindex(kCniBridge) != 0;
  std::string dir;
  {
    auto env = CriEnv::Start(options);
    ASSERT_TRUE(env.ok()) << env.status();
    dir = (*env)->dir();
    auto pod = (*env)->RunPod((*env)->PodConfig("cni"));
    ASSERT_TRUE(pod.ok()) << pod.status() << "\n" << (*env)->ContainerdLogTail();
    auto status = (*env)->client().PodSandboxStatus(*pod);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_TRUE(absl::StartsWith(status->network().ip(), "10.88.77."))
        << "pod IP \"" << status->network().ip() << "\"";
    EXPECT_NE(::if_nametoindex(kCniBridge), 0u) << "the bridge plugin made " << kCniBridge;
    EXPECT_TRUE(std::filesystem::exists(dir + "/cni/ipam/cloak-bridge"))
        << "host-local keeps its leases under the run's dir";
  }
  // Teardown: the run's dir is gone with its leases; the bridge too unless
  // it was there before.
  EXPECT_FALSE(std::filesystem::exists(dir));
  if (!bridge_before) {
    EXPECT_EQ(::if_nametoindex(kCniBridge), 0u);
  }
  EXPECT_FALSE(absl::StrContains(testutil::Slurp("/proc/self/mounts"), dir));
}

}  // namespace
}  // namespace cloak::cri
