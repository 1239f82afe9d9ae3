// agent/volume_files.h: the host's CopyFile requests applied under the
// sandbox's volume directory (never outside it, whatever the request and
// whatever a container planted there), and the bind mounts of volumes.
#include "agent/volume_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

const std::string kRoot = kGuestVolumeRoot;
const std::string kCm = kRoot + "/kubernetes.io~configmap/config";

v1::CopyFileRequest Req(const std::string& path, uint32_t mode, const std::string& data = "") {
  v1::CopyFileRequest r;
  r.set_path(path);
  r.set_file_mode(mode);
  r.set_uid(::geteuid());
  r.set_gid(::getegid());
  r.set_data(data);
  return r;
}

std::string Slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class VolumeFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TempDir> t = TempDir::Create("cloak-volfiles-");
    ASSERT_TRUE(t.ok()) << t.status();
    tmp_ = std::make_unique<TempDir>(std::move(*t));
    root_ = tmp_->Join("volumes");
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
  }
  std::string Guest(const std::string& path) const { return root_ + path.substr(kRoot.size()); }

  std::unique_ptr<TempDir> tmp_;
  std::string root_;
};

TEST_F(VolumeFilesTest, WritesKubeletsAtomicWriterLayout) {
  const std::string ts = kCm + "/..2026_12_07_20_00_00.1";
  ASSERT_TRUE(ApplyCopyFile(root_, Req(kCm, S_IFDIR | 0777)).ok());
  ASSERT_TRUE(ApplyCopyFile(root_, Req(ts + "/app.conf", S_IFREG | 0640, "port=80\n")).ok());
  ASSERT_TRUE(ApplyCopyFile(root_, Req(kCm + "/..data", S_IFLNK | 0777, "..2026_12_07_20_00_00.1")).ok());
  ASSERT_TRUE(ApplyCopyFile(root_, Req(kCm + "/app.conf", S_IFLNK | 0777, "..data/app.conf")).ok());
  EXPECT_EQ(Slurp(Guest(kCm) + "/app.conf"), "port=80\n");
  struct stat st;
  ASSERT_EQ(::stat(Guest(ts + "/app.conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(::stat(Guest(kCm).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0777u);

  // kubelet's update: a new timestamped directory, `..data` swapped, the
  // old directory removed.
  const std::string ts2 = kCm + "/..2026_12_07_20_01_00.2";
  ASSERT_TRUE(ApplyCopyFile(root_, Req(ts2 + "/app.conf", S_IFREG | 0640, "port=81\n")).ok());
  ASSERT_TRUE(ApplyCopyFile(root_, Req(kCm + "/..data", S_IFLNK | 0777, "..2026_12_07_20_01_00.2")).ok());
  v1::CopyFileRequest rm = Req(ts, 0);
  rm.set_remove(true);
  ASSERT_TRUE(ApplyCopyFile(root_, rm).ok());
  EXPECT_EQ(Slurp(Guest(kCm) + "/app.conf"), "port=81\n");
  EXPECT_NE(::access(Guest(ts).c_str(), F_OK), 0);
  // Removing what is not there is not an error.
  EXPECT_TRUE(ApplyCopyFile(root_, rm).ok());
}

TEST_F(VolumeFilesTest, ReplacesAFileAtomicallyAndLeavesNoTemporary) {
  ASSERT_TRUE(ApplyCopyFile(root_, Req(kCm + "/k", S_IFREG | 0644, "one")).ok());
  ASSERT_TRUE(ApplyCopyFile(root_, Req(kCm + "/k", S_IFREG | 0644, "two")).ok());
  EXPECT_EQ(Slurp(Guest(kCm) + "/k"), "two");
  EXPECT_NE(::access((Guest(kCm) + "/.k.cloak-tmp").c_str(), F_OK), 0);
}

TEST_F(VolumeFilesTest, RefusesPathsOutsideTheVolumeRoot) {
  for (const std::string& p : {std::string("/etc/passwd"), kCm + "/../../../../etc/passwd",
                               kCm + "/./x", kCm + "//x", std::string("relative/x"),
                               std::string("/run/cloak/sandbox/volumesX/a/b")}) {
    absl::Status s = ApplyCopyFile(root_, Req(p, S_IFREG | 0644, "x"));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << p << ": " << s;
  }
}

TEST_F(VolumeFilesTest, NeverWritesThroughASymlinkAContainerPlanted) {
  // A container with the volume mounted read-write (or a malicious host
  // copy that got through) left a symlink to a directory outside.
  const std::string outside = tmp_->Join("outside");
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  ASSERT_TRUE(ApplyCopyFile(root_, Req(kCm, S_IFDIR | 0755)).ok());
  ASSERT_EQ(::symlink(outside.c_str(), (Guest(kCm) + "/evil").c_str()), 0);
  absl::Status s = ApplyCopyFile(root_, Req(kCm + "/evil/passwd", S_IFREG | 0644, "x"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("is a symlink or not a directory"));
  EXPECT_NE(::access((outside + "/passwd").c_str(), F_OK), 0);
  // Writing a file over the symlink replaces the link, not its target.
  ASSERT_TRUE(ApplyCopyFile(root_, Req(kCm + "/evil", S_IFREG | 0644, "plain")).ok());
  struct stat st;
  ASSERT_EQ(::lstat((Guest(kCm) + "/evil").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  // Removing a symlink to a directory removes the link only.
  ASSERT_EQ(::symlink(outside.c_str(), (Guest(kCm) + "/evil2").c_str()), 0);
  std::ofstream(outside + "/keep") << "keep";
  v1::CopyFileRequest rm = Req(kCm + "/evil2", 0);
  rm.set_remove(true);
  ASSERT_TRUE(ApplyCopyFile(root_, rm).ok());
  EXPECT_EQ(Slurp(outside + "/keep"), "keep");
}

TEST_F(VolumeFilesTest, RefusesOtherFileTypesAndTooMuchData) {
  EXPECT_EQ(ApplyCopyFile(root_, Req(kCm + "/fifo", S_IFIFO | 0644)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyCopyFile(root_, Req(kCm + "/big", S_IFREG | 0644,
                                     std::string(kMaxCopyFileBytes + 1, 'x')))
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(VolumeFilesTest, NeedsTheSandboxVolumeDirectory) {
  absl::Status s = ApplyCopyFile(tmp_->Join("missing"), Req(kCm + "/k", S_IFREG | 0644, "v"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
}

json CriSpecWithMounts(json mounts) {
  return json{{"process", {{"args", {"/bin/sh"}}}}, {"mounts", std::move(mounts)}};
}

TEST(VolumeMounts, KubeletVolumesBecomeBindsFromTheGuestVolumeDirectory) {
  const std::string pod = "/var/lib/kubelet/pods/0f5a6b7c-1234-4abc-9def-0123456789ab/volumes";
  json spec = CriSpecWithMounts(json::array({
      {{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
      {{"destination", "/etc/hosts"}, {"type", "bind"},
       {"source", "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/x/hosts"},
       {"options", {"rbind", "ro"}}},
      {{"destination", "/etc/config"}, {"type", "bind"},
       {"source", pod + "/kubernetes.io~configmap/config"}, {"options", {"rbind", "ro"}}},
      {{"destination", "/scratch"}, {"type", "bind"},
       {"source", pod + "/kubernetes.io~empty-dir/scratch"}, {"options", {"rbind", "rw"}}},
      {{"destination", "/token"}, {"type", "bind"},
       {"source", pod + "/kubernetes.io~projected/kube-api-access-x/token"},
       {"options", {"rbind", "ro"}}},
  }));
  absl::StatusOr<std::vector<VolumeMount>> m = VolumeMountsOfSpec(spec);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[0].volume.guest_path, kCm);
  EXPECT_TRUE((*m)[0].volume.readonly);
  EXPECT_TRUE((*m)[1].volume.empty_dir);
  EXPECT_FALSE((*m)[1].volume.readonly);
  EXPECT_EQ((*m)[2].volume.guest_path,
            kRoot + "/kubernetes.io~projected/kube-api-access-x/token");
  EXPECT_EQ((*m)[2].volume.guest_volume_dir, kRoot + "/kubernetes.io~projected/kube-api-access-x");
  json bind = VolumeBindMount((*m)[0], "/run/cloak/sandbox/volumes");
  EXPECT_EQ(bind["source"], kCm);
  EXPECT_EQ(bind["destination"], "/etc/config");
  EXPECT_EQ(bind["options"], json({"rbind", "rprivate", "nosuid", "nodev", "ro"}));
  json rw = VolumeBindMount((*m)[1], "/x/volumes");
  EXPECT_EQ(rw["source"], "/x/volumes/kubernetes.io~empty-dir/scratch");
  EXPECT_EQ(rw["options"], json({"rbind", "rprivate", "nosuid", "nodev"}));
}

TEST(VolumeMounts, AHostPathOutsideKubeletsLayoutGetsAHashedName) {
  json spec = CriSpecWithMounts(json::array(
      {{{"destination", "/data"}, {"type", "bind"}, {"source", "/srv/data"}, {"options", {"rbind"}}}}));
  absl::StatusOr<std::vector<VolumeMount>> m = VolumeMountsOfSpec(spec);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 1u);
  EXPECT_EQ((*m)[0].volume.kind, kHostPathVolumeKind);
  EXPECT_THAT((*m)[0].volume.guest_path, ::testing::StartsWith(kRoot + "/host-path/data-"));
}

TEST(VolumeMounts, RefusesBadDestinationsAndSources) {
  const std::string src =
      "/var/lib/kubelet/pods/0f5a6b7c-1234-4abc-9def-0123456789ab/volumes/kubernetes.io~secret/s";
  for (const std::string& dest : {std::string("/"), std::string("/proc/sys"), std::string("/sys"),
                                  std::string("/a/../etc"), std::string("rel")}) {
    json spec = CriSpecWithMounts(json::array(
        {{{"destination", dest}, {"type", "bind"}, {"source", src}, {"options", {"rbind"}}}}));
    EXPECT_FALSE(VolumeMountsOfSpec(spec).ok()) << dest;
  }
  json spec = CriSpecWithMounts(json::array(
      {{{"destination", "/x"}, {"type", "bind"}, {"source", src + "/../../../../../etc"}}}));
  EXPECT_FALSE(VolumeMountsOfSpec(spec).ok());
}

}  // namespace
}  // namespace cloak::agent
