// shim/bundle: the shim socket address, pod grouping from the bundle's
// config.json, the delete response.
#include "shim/bundle.h"

#include <string>

#include "absl/time/time.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "containerd/task/v2/shim.pb.h"
#include "gtest/gtest.h"

namespace cloak::shim {
namespace {

std::string Sha256Hex(const std::string& s) { return tee::HexEncode(tee::Sha256(s)); }

TEST(SocketAddressTest, MatchesGoShimLibrary) {
  const std::string want =
      "unix:///run/containerd/s/" + Sha256Hex("/run/containerd/containerd.sock/default/c1");
  EXPECT_EQ(SocketAddress("/run/containerd/containerd.sock", "default", "c1"), want);
  // filepath.Join cleans: trailing and doubled slashes vanish.
  EXPECT_EQ(SocketAddress("/run/containerd//containerd.sock/", "default", "c1"), want);
  EXPECT_EQ(SocketPathFromAddress(want).size(), std::string("/run/containerd/s/").size() + 64);
}

TEST(SocketAddressTest, CleanPath) {
  EXPECT_EQ(CleanPath("/a//b/./c/../d/"), "/a/b/d");
  EXPECT_EQ(CleanPath("a/../.."), "..");
  EXPECT_EQ(CleanPath("/../x"), "/x");
  EXPECT_EQ(CleanPath(""), ".");
}

TEST(PodInfoTest, Grouping) {
  auto plain = ParsePodInfo(R"({"annotations":{"io.cloak.image":"r/busybox"}})", "c1");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->is_sandbox);
  EXPECT_EQ(plain->sandbox_id, "c1");
  EXPECT_EQ(plain->image, "r/busybox");

  auto sandbox = ParsePodInfo(
      R"({"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"p1"}})",
      "p1");
  ASSERT_TRUE(sandbox.ok());
  EXPECT_TRUE(sandbox->is_sandbox);
  EXPECT_EQ(sandbox->sandbox_id, "p1");

  auto app = ParsePodInfo(
      R"({"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"p1",
          "io.kubernetes.cri.image-name":"docker.io/library/nginx:1","io.cloak.image":"ignored"}})",
      "c2");
  ASSERT_TRUE(app.ok());
  EXPECT_FALSE(app->is_sandbox);
  EXPECT_EQ(app->sandbox_id, "p1");
  EXPECT_EQ(app->image, "docker.io/library/nginx:1");

  EXPECT_FALSE(ParsePodInfo("{not json", "x").ok());
  EXPECT_FALSE(ParsePodInfo(R"({"annotations":{"io.kubernetes.cri.container-type":"container"}})",
                            "x")
                   .ok());
  EXPECT_TRUE(ParsePodInfo(R"({"ociVersion":"1.0.2"})", "x").ok());
}

TEST(PodInfoTest, NetworkNamespaceAndResolvConf) {
  // A CRI sandbox on a CNI network, as containerd 1.6 writes it.
  auto pod = ParsePodInfo(R"({"linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},
      {"type":"network","path":"/var/run/netns/cni-1234"}]},
      "mounts":[{"destination":"/dev/shm","source":"/run/x/shm","type":"bind"},
      {"destination":"/etc/resolv.conf","source":"/var/lib/x/sandboxes/p1/resolv.conf"}]})",
                          "p1");
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->netns_path, "/var/run/netns/cni-1234");
  EXPECT_EQ(pod->resolv_conf_source, "/var/lib/x/sandboxes/p1/resolv.conf");
  // A new, empty namespace (ctr run) or the host's (no entry): no path.
  auto fresh = ParsePodInfo(R"({"linux":{"namespaces":[{"type":"network"}]}})", "c");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->netns_path, "");
  auto host = ParsePodInfo(R"({"linux":{"namespaces":[{"type":"pid"}]}})", "c");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->netns_path, "");
  // Wrong types are ignored, never thrown.
  for (const char* bad : {R"({"linux":{"namespaces":[{"type":7,"path":[]}]}})",
                          R"({"linux":{"namespaces":{"type":"network"}}})",
                          R"({"linux":"x","mounts":[1,{"destination":{}}]})",
                          R"({"mounts":[{"destination":"/etc/resolv.conf","source":5}]})"}) {
    auto p = ParsePodInfo(bad, "c");
    ASSERT_TRUE(p.ok()) << bad << ": " << p.status();
    EXPECT_EQ(p->netns_path, "") << bad;
    EXPECT_EQ(p->resolv_conf_source, "") << bad;
  }
}

TEST(DeleteResponseTest, EncodesFieldsContainerdReads) {
  const absl::Time t = absl::FromUnixSeconds(1700000000) + absl::Nanoseconds(5);
  std::string bytes = EncodeDeleteResponse(42, 137, t);
  containerd::task::v2::DeleteResponse decoded;
  ASSERT_TRUE(decoded.ParseFromString(bytes));
  EXPECT_EQ(decoded.pid(), 42u);
  EXPECT_EQ(decoded.exit_status(), 137u);
  EXPECT_EQ(decoded.exited_at().seconds(), 1700000000);
  EXPECT_EQ(decoded.exited_at().nanos(), 5);
  // Wire bytes: field 1 varint 42, field 2 varint 137, field 3 message.
  EXPECT_EQ(bytes.substr(0, 5), std::string("\x08\x2a\x10\x89\x01", 5));
}

}  // namespace
}  // namespace cloak::shim
