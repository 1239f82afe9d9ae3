// A pod on the CNI bridge network through containerd's CRI plugin and the
// cloak-dev handler (CriEnv with cni on): two containers in one VM, one of
// them serving HTTP inside the guest, answered on the pod IP from the
// host's namespace; the guest has the pod's address, route and DNS, pulls
// over the pod network from the registry on the bridge's gateway, and
// reaches that gateway; after StopPodSandbox + RemovePodSandbox nothing is
// left: no QEMU, shim, tap, tc filter, netns, veth, mount or socket. Root
// only; skips, saying why, when a prerequisite is missing.
#include <net/if.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cli/cri/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/bundle.h"
#include "tests/cli/cri/cri_env.h"
#include "tests/cli/cri/cri_fixture.h"
#include "shim/pod_network.h"
#include "tests/util/host.h"
#include "tests/util/libvirt.h"
#include "tests/util/skip.h"

namespace cloak::cri {
namespace {

namespace v1 = ::runtime::v1;
using ::cloak::testutil::PssKib;
using ::cloak::testutil::Shell;
using ::cloak::testutil::Slurp;
using ::testing::HasSubstr;
using ::testing::Not;

class CriNetworkE2eTest : public CriEnvFixture {
 protected:
  CriEnvOptions Options() const override { return CriEnvOptions::ForThisBuild(/*cni=*/true); }

  void SetUp() override {
    if (testutil::Which("curl").empty()) CLOAK_SKIP() << "curl is not installed";
    CriEnvFixture::SetUp();
  }

  v1::ContainerConfig Container(const std::string& name, const std::string& script) {
    v1::ContainerConfig c;
    c.mutable_metadata()->set_name(name);
    c.mutable_image()->set_image(env_->image());
    for (const char* a : {"sh", "-c"}) c.add_command(a);
    c.add_command(script);
    c.set_log_path(name + "/0.log");
    return c;
  }

  std::string WaitForLog(const std::string& path, const std::string& needle) {
    std::string log;
    for (int i = 0; i < 150 && !absl::StrContains(log, needle); ++i) {
      absl::SleepFor(absl::Milliseconds(100));
      log = Slurp(path);
    }
    return log;
  }

  std::string Exec(const std::string& ctr, const std::string& script) {
    auto r = client_->ExecSync(ctr, {"sh", "-c", script}, 60);
    if (!r.ok()) return "exec failed: " + r.status().ToString();
    return r->stdout() + r->stderr();
  }

  // The test body, for either hypervisor driver.
  void TwoContainerPodServesHttpOnThePodIpAndLeavesNothing();
};

void CriNetworkE2eTest::TwoContainerPodServesHttpOnThePodIpAndLeavesNothing() {
  const bool libvirt = Options().hypervisor_driver == "libvirt";
  ASSERT_TRUE(client_->PullImage(env_->image()).ok());
  const v1::PodSandboxConfig pod = env_->PodConfig("web");

  const absl::Time start = absl::Now();
  auto pod_id = env_->RunPod(pod, "cloak-dev");
  ASSERT_TRUE(pod_id.ok()) << pod_id.status();
  const absl::Duration run_pod = absl::Now() - start;
  auto sandbox = client_->PodSandboxStatus(*pod_id);
  ASSERT_TRUE(sandbox.ok()) << sandbox.status();
  const std::string ip = sandbox->network().ip();
  ASSERT_TRUE(absl::StartsWith(ip, env_->cni_prefix())) << "pod IP \"" << ip << "\"";
  ASSERT_EQ(env_->QemuPids().size(), 1u);
  // The tap the VM's NIC uses: made in the pod's namespace (qemu driver), or
  // made in the host's for libvirt to open and then moved into the pod's.
  const std::string tap = libvirt ? shim::HostTapName(*pod_id, 0) : "tap0_cloak";
  // The pod's shim socket, named as containerd names it (its address, the
  // k8s.io namespace, the sandbox id).
  const std::string shim_socket =
      shim::SocketPath(env_->dir() + "/c.sock", "k8s.io", *pod_id, "/run/containerd/s");
  EXPECT_TRUE(std::filesystem::exists(shim_socket)) << shim_socket;

  // The web server, then a second container in the same VM.
  auto web = client_->CreateContainer(
      *pod_id,
      Container("web", "mkdir -p /www && echo hello-from-the-pod-vm > /www/index.html && "
                       "echo serving; exec httpd -f -p 8080 -h /www"),
      pod);
  ASSERT_TRUE(web.ok()) << web.status();
  ASSERT_TRUE(client_->StartContainer(*web).ok());
  const absl::Duration one_container = absl::Now() - start;
  std::cerr << "RunPodSandbox " << absl::FormatDuration(run_pod)
            << ", RunPodSandbox + CreateContainer + StartContainer "
            << absl::FormatDuration(one_container) << " (wall)\n";
  auto side = client_->CreateContainer(
      *pod_id, Container("side", "echo second-container; exec sleep 300"), pod);
  ASSERT_TRUE(side.ok()) << side.status();
  ASSERT_TRUE(client_->StartContainer(*side).ok());
  EXPECT_EQ(env_->QemuPids().size(), 1u) << "both containers run in the pod's one VM";

  // Both logs at their CRI log paths.
  const std::string logs = env_->dir() + "/logs/web/";
  EXPECT_THAT(WaitForLog(logs + "web/0.log", "serving"), HasSubstr("stdout F serving"));
  EXPECT_THAT(WaitForLog(logs + "side/0.log", "second-container"),
              HasSubstr("stdout F second-container"));

  // The guest holds the pod's address and route (netlink, from the pod's
  // namespace) and the pod's resolv.conf.
  EXPECT_THAT(Exec(*side, "ip -o addr show"), HasSubstr(ip + "/24"));
  EXPECT_THAT(Exec(*side, "ip route"), HasSubstr("default via " + env_->cni_gateway()));
  EXPECT_THAT(Exec(*side, "cat /etc/resolv.conf"), HasSubstr("nameserver"));
  // The pod reaches what the pod network reaches: the registry on the
  // bridge's gateway.
  EXPECT_THAT(Exec(*side, absl::StrCat("wget -q -O- http://", env_->registry_host(), "/v2/")),
              HasSubstr("{}"));

  // The pod IP answers from the host's namespace: the guest's httpd, through
  // veth → tc → tap → virtio-net.
  std::string body;
  int rc = -1;
  for (int i = 0; i < 50 && rc != 0; ++i) {
    rc = Shell(absl::StrCat("curl -sS --noproxy '*' --max-time 5 http://", ip, ":8080/"), &body);
    if (rc != 0) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(rc, 0) << body;
  EXPECT_EQ(body, "hello-from-the-pod-vm\n");

  // The wiring in the pod's namespace, found through the shim's netns.
  std::string netns;
  Shell(absl::StrCat("grep -o '", env_->dir(), "[^ ]*netns[^ ]*' /proc/self/mounts | head -1"),
        &netns);
  netns = std::string(absl::StripAsciiWhitespace(netns));
  ASSERT_FALSE(netns.empty()) << "the pod's netns mount under " << env_->dir();
  std::string filters;
  Shell(absl::StrCat("nsenter --net=", netns, " tc filter show dev eth0 ingress"), &filters);
  EXPECT_THAT(filters, HasSubstr("Egress Redirect to device " + tap));
  std::string host_links;
  Shell("ip -o link show", &host_links);
  EXPECT_THAT(host_links, Not(HasSubstr(tap))) << "the tap must be in the pod's namespace";

  std::cerr << "host memory of the pod (2 containers, idle): QEMU PSS "
            << PssKib(env_->QemuPids()) << " KiB, shim PSS " << PssKib(env_->ShimPids())
            << " KiB\n";

  ASSERT_TRUE(client_->StopPodSandbox(*pod_id).ok());
  ASSERT_TRUE(client_->RemovePodSandbox(*pod_id).ok());
  env_->ForgetPod(*pod_id);
  for (int i = 0; i < 100 && !(env_->QemuPids().empty() && env_->ShimPids().empty()); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(env_->QemuPids().empty()) << "QEMU left: " << absl::StrJoin(env_->QemuPids(), " ");
  EXPECT_TRUE(env_->ShimPids().empty()) << "shim left: " << absl::StrJoin(env_->ShimPids(), " ");
  // No netns (nor any other mount of the pod), no veth on the bridge, no tap
  // anywhere in the host's namespace, no shim socket or sandbox state.
  const std::string mounts = Slurp("/proc/self/mounts");
  EXPECT_THAT(mounts, Not(HasSubstr(netns)));
  EXPECT_THAT(mounts, Not(HasSubstr(*pod_id)));
  EXPECT_FALSE(std::filesystem::exists(netns)) << netns;
  std::string bridged;
  Shell(absl::StrCat("ip -o link show master ", env_->cni_bridge()), &bridged);
  EXPECT_EQ(bridged, "") << "veths left on " << env_->cni_bridge();
  std::string links;
  Shell("ip -o link show", &links);
  EXPECT_THAT(links, Not(HasSubstr(tap)));
  if (libvirt) {
    EXPECT_TRUE(testutil::CloakDomainsUnder(env_->libvirt_uri(), env_->dir()).empty())
        << "a libvirt domain was left";
  }
  EXPECT_FALSE(std::filesystem::exists(env_->dir() + "/run/" + *pod_id))
      << "sandbox state dir left";
  EXPECT_FALSE(std::filesystem::exists(shim_socket)) << "shim socket left: " << shim_socket;
}

TEST_F(CriNetworkE2eTest, TwoContainerPodServesHttpOnThePodIpAndLeavesNothing) {
  TwoContainerPodServesHttpOnThePodIpAndLeavesNothing();
}

// The same pod through the libvirt driver (hypervisor.driver = "libvirt").
class CriNetworkLibvirtE2eTest : public CriNetworkE2eTest {
 protected:
  CriEnvOptions Options() const override {
    CriEnvOptions o = CriEnvOptions::ForThisBuild(/*cni=*/true);
    o.hypervisor_driver = "libvirt";
    return o;
  }
};

TEST_F(CriNetworkLibvirtE2eTest, TwoContainerPodServesHttpOnThePodIpAndLeavesNothing) {
  TwoContainerPodServesHttpOnThePodIpAndLeavesNothing();
  // The start timeline in the shim's log (containerd's log) has libvirt's steps.
  const std::string log = env_->ContainerdLogTail(1 << 22);
  EXPECT_THAT(log, HasSubstr("step=libvirt-connect"));
  EXPECT_THAT(log, HasSubstr("step=libvirt-create-domain"));
  EXPECT_THAT(log, HasSubstr("step=libvirt-after-launch"));
  EXPECT_THAT(log, HasSubstr("step=agent-ready"));
}

}  // namespace
}  // namespace cloak::cri
