// The hostile-host suite, file copies (docs/policy.md "copy_files"): CopyFile
// requests a malicious host could send to plant files in a confidential
// pod's guest. Each must be denied with its reason; the copies kubelet's
// volumes legitimately need are allowed.
#include <sys/stat.h>

#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policy/engine.h"
#include "tests/policy/specs.h"

namespace cloak::policy_test {
namespace {

using policy::Decision;
using policy::Engine;
using policy::PodState;
namespace v1 = agent::v1;

constexpr char kCm[] = "/run/cloak/sandbox/volumes/kubernetes.io~configmap/config";

v1::CopyFileRequest File(std::string path, std::string data, uint32_t perm = 0644) {
  v1::CopyFileRequest r;
  r.set_path(std::move(path));
  r.set_file_mode(S_IFREG | perm);
  r.set_data(std::move(data));
  return r;
}

v1::CopyFileRequest Dir(std::string path) {
  v1::CopyFileRequest r;
  r.set_path(std::move(path));
  r.set_file_mode(S_IFDIR | 0755);
  return r;
}

v1::CopyFileRequest Link(std::string path, std::string target) {
  v1::CopyFileRequest r;
  r.set_path(std::move(path));
  r.set_file_mode(S_IFLNK | 0777);
  r.set_data(std::move(target));
  return r;
}

Engine WebEngine() {
  absl::StatusOr<policy::Policy> p = policy::ParsePolicy(WebPodPolicy());
  EXPECT_TRUE(p.ok()) << p.status();
  return Engine(*std::move(p));
}

Decision Send(const Engine& e, const v1::CopyFileRequest& r) {
  return e.Check("CopyFile", r, PodState());
}

struct HostileCopy {
  std::string name;
  v1::CopyFileRequest request;
  std::string want;  // substring of the reason
  bool default_policy = false;
};

std::vector<HostileCopy> Cases() {
  const std::string big(1048577, 'x');
  return {
      {"FileToEtc", File("/etc/passwd", "root::0:0::/:/bin/sh\n"),
       R"(policy: copy denied: path "/etc/passwd" is outside the guest volume directory /run/cloak/sandbox/volumes)"},
      {"FileToEtcUnderTheDefaultPolicy", File("/etc/shadow", "root::1::::::\n"),
       R"(path "/etc/shadow" is outside the guest volume directory)", true},
      {"OversizedFile", File(std::string(kCm) + "/..data_1/huge", big),
       R"(1048577 bytes to "/run/cloak/sandbox/volumes/kubernetes.io~configmap/config/..data_1/huge" exceed max_bytes 1048576)"},
      {"OversizedFileUnderTheDefaultPolicy", File(std::string(kCm) + "/huge", big),
       "exceed max_bytes 1048576", true},
      {"PathOutsideTheAllowedVolumes",
       File("/run/cloak/sandbox/volumes/host-path/root-0123456789abcdef/x", "x"),
       R"(destination "/run/cloak/sandbox/volumes/host-path/root-0123456789abcdef/x" matches no copy_files rule)"},
      {"HostPathUnderTheDefaultPolicy",
       File("/run/cloak/sandbox/volumes/host-path/etc-0123456789abcdef/passwd", "x"),
       "matches no copy_files rule", true},
      {"VolumeKindNotAllowed",
       File("/run/cloak/sandbox/volumes/kubernetes.io~downward-api/podinfo/labels", "a=b"),
       R"(matches no copy_files rule)"},
      {"DotDotTraversal", File(std::string(kCm) + "/../../../../../etc/passwd", "x"),
       R"(is not a clean absolute path)"},
      {"DotDotTraversalUnderTheDefaultPolicy",
       File("/run/cloak/sandbox/volumes/kubernetes.io~secret/s/../../../../../../etc/cron.d/x", "x"),
       "is not a clean absolute path", true},
      {"DotComponent", File(std::string(kCm) + "/./key", "x"), "is not a clean absolute path"},
      {"DoubleSlash", File(std::string(kCm) + "//key", "x"), "is not a clean absolute path"},
      {"RelativePath", File("run/cloak/sandbox/volumes/kubernetes.io~configmap/config/k", "x"),
       "is not a clean absolute path"},
      {"SymlinkEscapeAbsolute", Link(std::string(kCm) + "/..data", "/etc"),
       R"(symlink "/run/cloak/sandbox/volumes/kubernetes.io~configmap/config/..data" -> "/etc" points outside its volume)"},
      {"SymlinkEscapeRelative", Link(std::string(kCm) + "/key", "../../../../../../etc/shadow"),
       "points outside its volume"},
      {"SymlinkIntoAnotherVolume",
       Link(std::string(kCm) + "/token", "../../kubernetes.io~secret/creds/..data/password"),
       "points outside its volume"},
      {"SymlinkEscapeUnderTheDefaultPolicy",
       Link("/run/cloak/sandbox/volumes/kubernetes.io~projected/kube-api-access-x/token", "/proc/1/root"),
       "points outside its volume", true},
      {"IntoAnEmptyDir",
       File("/run/cloak/sandbox/volumes/kubernetes.io~empty-dir/scratch/run.sh", "#!/bin/sh\n"),
       "is in an emptyDir volume"},
      {"VolumeRootItself", Dir("/run/cloak/sandbox/volumes/kubernetes.io~configmap"),
       "names no volume"},
      {"DeviceNode",
       [] {
         v1::CopyFileRequest r = File(std::string(kCm) + "/mem", "");
         r.set_file_mode(S_IFCHR | 0666);
         return r;
       }(),
       "is not a regular file, directory or symlink"},
      {"ModeBeyondThePermissionBits", File(std::string(kCm) + "/x", "x", 0200644),
       "has bits beyond 07777"},
      {"RemoveOutsideTheVolumes",
       [] {
         v1::CopyFileRequest r;
         r.set_path("/run/cloak/containers");
         r.set_remove(true);
         return r;
       }(),
       "is outside the guest volume directory"},
  };
}

class HostileCopyTest : public ::testing::TestWithParam<HostileCopy> {};

TEST_P(HostileCopyTest, IsDeniedWithItsReason) {
  const HostileCopy& h = GetParam();
  Engine e = h.default_policy ? Engine(policy::DefaultPolicy()) : WebEngine();
  Decision d = Send(e, h.request);
  EXPECT_FALSE(d.allow) << h.name << " was allowed";
  EXPECT_THAT(d.reason, ::testing::HasSubstr(h.want));
  EXPECT_THAT(d.reason, ::testing::StartsWith("policy: copy denied: "));
}

INSTANTIATE_TEST_SUITE_P(Requests, HostileCopyTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<HostileCopy>& i) { return i.param.name; });

// kubelet's atomic-writer layout of a configMap, a secret and the
// service-account token: what the shim sends for a legitimate pod.
std::vector<v1::CopyFileRequest> KubeletVolumes() {
  std::vector<v1::CopyFileRequest> out;
  for (const std::string& vol : {std::string(kCm),
                                std::string("/run/cloak/sandbox/volumes/kubernetes.io~secret/creds"),
                                std::string("/run/cloak/sandbox/volumes/kubernetes.io~projected/"
                                            "kube-api-access-abcde")}) {
    out.push_back(Dir(vol));
    out.push_back(Dir(vol + "/..2026_12_07_20_00_00.123456789"));
    out.push_back(File(vol + "/..2026_12_07_20_00_00.123456789/key", "value"));
    out.push_back(Link(vol + "/..data", "..2026_12_07_20_00_00.123456789"));
    out.push_back(Link(vol + "/key", "..data/key"));
  }
  // A nested key (configMap items with a path) links two levels down.
  out.push_back(Dir(std::string(kCm) + "/..2026_12_07_20_00_00.123456789/sub"));
  out.push_back(Link(std::string(kCm) + "/sub", "..data/sub"));
  out.push_back(Link(std::string(kCm) + "/..2026_12_07_20_00_00.123456789/sub/up", "../key"));
  v1::CopyFileRequest remove;
  remove.set_path(std::string(kCm) + "/..2026_12_07_19_00_00.000000001");
  remove.set_remove(true);
  out.push_back(remove);
  return out;
}

TEST(LegitimateCopies, KubeletVolumesAreAllowedByTheWebPolicy) {
  Engine e = WebEngine();
  for (const v1::CopyFileRequest& r : KubeletVolumes()) {
    Decision d = Send(e, r);
    EXPECT_TRUE(d.allow) << r.path() << ": " << d.reason;
  }
}

TEST(LegitimateCopies, KubeletVolumesAreAllowedByTheDefaultPolicy) {
  Engine e{policy::DefaultPolicy()};
  for (const v1::CopyFileRequest& r : KubeletVolumes()) {
    Decision d = Send(e, r);
    EXPECT_TRUE(d.allow) << r.path() << ": " << d.reason;
  }
}

TEST(LegitimateCopies, ADeniedRpcStaysDenied) {
  absl::StatusOr<policy::Policy> p = policy::ParsePolicy(
      R"({"version": "1", "rpcs": {"CopyFile": "deny"},
          "copy_files": [{"path": {"regex": "/run/cloak/sandbox/volumes/.+"}, "max_bytes": 10}]})");
  ASSERT_TRUE(p.ok()) << p.status();
  Engine e(*std::move(p));
  Decision d = Send(e, File(std::string(kCm) + "/k", "v"));
  EXPECT_FALSE(d.allow);
  EXPECT_THAT(d.reason, ::testing::HasSubstr(R"(rule rpcs.CopyFile is "deny")"));
}

TEST(LegitimateCopies, AnotherMessageTypeIsNotMistakenForACopy) {
  Engine e{policy::DefaultPolicy()};
  Decision d = e.Check("CopyFile", v1::HealthRequest(), PodState());
  EXPECT_FALSE(d.allow);
}

}  // namespace
}  // namespace cloak::policy_test
