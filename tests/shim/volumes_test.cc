// shim/volumes.h: a pod volume in kubelet's layout on the host, copied into
// a guest volume directory through CopyFile requests (applied here by the
// agent's own code, agent/volume_files.h, as the guest would), refreshed
// when kubelet's atomic writer updates it; and the early-attestation check
// of the sandbox factory.
#include "shim/volumes.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "agent/volume_files.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/sandbox_factory.h"

namespace cloak::shim {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr char kPodUid[] = "0f5a6b7c-1234-4abc-9def-0123456789ab";

std::string Slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Write(const std::string& p, const std::string& data) {
  fs::create_directories(fs::path(p).parent_path());
  std::ofstream(p) << data;
}

// kubelet's atomic writer (pkg/volume/util/atomic_writer.go): the payload
// in a timestamped directory, `..data` pointing at it, one symlink per key
// through `..data`; an update writes a new directory, swaps `..data` with a
// rename and removes the old directory.
void AtomicWrite(const std::string& dir, const std::map<std::string, std::string>& files,
                 const std::string& stamp) {
  const std::string ts = absl::StrCat(dir, "/..", stamp);
  for (const auto& [k, v] : files) Write(ts + "/" + k, v);
  std::string old;
  std::error_code ec;
  if (fs::is_symlink(dir + "/..data")) old = fs::read_symlink(dir + "/..data").string();
  fs::create_symlink(".." + stamp, dir + "/..data_tmp");
  fs::rename(dir + "/..data_tmp", dir + "/..data");
  for (const auto& [k, v] : files) {
    if (!fs::is_symlink(dir + "/" + k)) fs::create_symlink("..data/" + k, dir + "/" + k);
  }
  if (!old.empty()) fs::remove_all(dir + "/" + old, ec);
}

class VolumeSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TempDir> t = TempDir::Create("cloak-volsync-");
    ASSERT_TRUE(t.ok()) << t.status();
    tmp_ = std::make_unique<TempDir>(std::move(*t));
    pod_ = tmp_->Join(absl::StrCat("kubelet/pods/", kPodUid, "/volumes"));
    guest_ = tmp_->Join("guest-volumes");
    fs::create_directories(guest_);
  }
  // The sender the shim uses, with the agent applying each request.
  VolumeSync::Sender Agent() {
    return [this](const agent::v1::CopyFileRequest& r) {
      sent_.push_back(r);
      return agent::ApplyCopyFile(guest_, r);
    };
  }
  std::string InGuest(const std::string& guest_path) const {
    return guest_ + guest_path.substr(std::string(kGuestVolumeRoot).size());
  }
  GuestVolume Volume(const std::string& source, const std::string& dest, bool ro = true) {
    absl::StatusOr<std::optional<GuestVolume>> v =
        GuestVolumeForMount(dest, "bind", source, ro ? std::vector<std::string>{"rbind", "ro"}
                                                     : std::vector<std::string>{"rbind"});
    EXPECT_TRUE(v.ok() && v->has_value());
    return **v;
  }

  std::unique_ptr<TempDir> tmp_;
  std::string pod_;
  std::string guest_;
  std::vector<agent::v1::CopyFileRequest> sent_;
};

TEST_F(VolumeSyncTest, CopiesAConfigMapAndRefreshesItWhenKubeletUpdatesIt) {
  const std::string cm = pod_ + "/kubernetes.io~configmap/config";
  AtomicWrite(cm, {{"app.conf", "port=80\n"}, {"mode", "prod"}}, "2026_12_07_20_00_00.1");
  VolumeSync sync("sb", Agent(), absl::ZeroDuration());
  const GuestVolume v = Volume(cm, "/etc/config");
  ASSERT_EQ(v.guest_path, std::string(kGuestVolumeRoot) + "/kubernetes.io~configmap/config");
  ASSERT_TRUE(sync.Add(v).ok());
  EXPECT_EQ(Slurp(InGuest(v.guest_path) + "/app.conf"), "port=80\n");
  EXPECT_EQ(Slurp(InGuest(v.guest_path) + "/mode"), "prod");
  EXPECT_TRUE(fs::is_symlink(InGuest(v.guest_path) + "/..data"));
  // Symlinks were sent after what they point at.
  ASSERT_FALSE(sent_.empty());
  EXPECT_EQ(sent_.front().path(), v.guest_path);
  EXPECT_EQ(sent_.front().file_mode() & S_IFMT, static_cast<uint32_t>(S_IFDIR));

  // Nothing changed: nothing is sent.
  sent_.clear();
  sync.PollOnce();
  EXPECT_TRUE(sent_.empty());

  AtomicWrite(cm, {{"app.conf", "port=81\n"}, {"mode", "prod"}}, "2026_12_07_20_01_00.2");
  sync.PollOnce();
  EXPECT_EQ(Slurp(InGuest(v.guest_path) + "/app.conf"), "port=81\n");
  // The old timestamped directory went away in the guest too.
  EXPECT_FALSE(fs::exists(InGuest(v.guest_path) + "/..2026_12_07_20_00_00.1"));
  EXPECT_TRUE(fs::exists(InGuest(v.guest_path) + "/..2026_12_07_20_01_00.2/app.conf"));
  bool removed = false;
  for (const auto& r : sent_) removed = removed || r.remove();
  EXPECT_TRUE(removed);
}

TEST_F(VolumeSyncTest, ATokenFileMountFollowsItsSymlinkOnTheHost) {
  const std::string sa = pod_ + "/kubernetes.io~projected/kube-api-access-abcde";
  AtomicWrite(sa, {{"token", "eyJ.first"}, {"namespace", "default"}}, "2026_12_07_20_00_00.1");
  VolumeSync sync("sb", Agent(), absl::ZeroDuration());
  const GuestVolume v = Volume(sa + "/token", "/var/run/secrets/token");
  ASSERT_TRUE(sync.Add(v).ok());
  struct stat st;
  ASSERT_EQ(::lstat(InGuest(v.guest_path).c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(Slurp(InGuest(v.guest_path)), "eyJ.first");
  AtomicWrite(sa, {{"token", "eyJ.rotated"}, {"namespace", "default"}}, "2026_12_07_20_10_00.2");
  sync.PollOnce();
  EXPECT_EQ(Slurp(InGuest(v.guest_path)), "eyJ.rotated");
}

TEST_F(VolumeSyncTest, ARefusalComesBackAndTheVolumeIsNotTracked) {
  const std::string secret = pod_ + "/kubernetes.io~secret/creds";
  AtomicWrite(secret, {{"password", "hunter2"}}, "2026_12_07_20_00_00.1");
  VolumeSync sync(
      "sb",
      [](const agent::v1::CopyFileRequest& r) {
        return absl::PermissionDeniedError(absl::StrCat(
            "policy: copy denied: destination \"", r.path(), "\" matches no copy_files rule"));
      },
      absl::ZeroDuration());
  absl::Status s = sync.Add(Volume(secret, "/etc/creds"));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("matches no copy_files rule"));
  EXPECT_EQ(sync.tracked(), 0u);
}

TEST_F(VolumeSyncTest, EmptyDirIsNeverCopied) {
  VolumeSync sync("sb", Agent(), absl::ZeroDuration());
  const GuestVolume v = Volume(pod_ + "/kubernetes.io~empty-dir/scratch", "/scratch", false);
  EXPECT_TRUE(v.empty_dir);
  EXPECT_TRUE(sync.Add(v).ok());
  EXPECT_TRUE(sent_.empty());
}

TEST_F(VolumeSyncTest, HostPathsAreCopiedUnderTheirOwnKind) {
  Write(tmp_->Join("srv/data/file"), "x");
  VolumeSync sync("sb", Agent(), absl::ZeroDuration());
  const GuestVolume v = Volume(tmp_->Join("srv/data"), "/data");
  EXPECT_EQ(v.kind, kHostPathVolumeKind);
  ASSERT_TRUE(sync.Add(v).ok());
  EXPECT_EQ(Slurp(InGuest(v.guest_path) + "/file"), "x");
}

TEST_F(VolumeSyncTest, TheWatcherThreadRefreshesOnItsOwn) {
  const std::string cm = pod_ + "/kubernetes.io~configmap/live";
  AtomicWrite(cm, {{"k", "1"}}, "2026_12_07_20_00_00.1");
  VolumeSync sync("sb",
                  [this](const agent::v1::CopyFileRequest& r) {
                    return agent::ApplyCopyFile(guest_, r);
                  },
                  absl::Milliseconds(50));
  const GuestVolume v = Volume(cm, "/live");
  ASSERT_TRUE(sync.Add(v).ok());
  AtomicWrite(cm, {{"k", "2"}}, "2026_12_07_20_00_01.2");
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Slurp(InGuest(v.guest_path) + "/k") != "2" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(Slurp(InGuest(v.guest_path) + "/k"), "2");
}

TEST(VolumesOfSpec, ListsThePodVolumesOfACriSpec) {
  const std::string pod = absl::StrCat("/var/lib/kubelet/pods/", kPodUid, "/volumes");
  const std::string spec = absl::StrCat(R"({"mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/etc/hostname", "type": "bind", "source": "/var/lib/containerd/sandboxes/x/hostname", "options": ["rbind"]},
    {"destination": "/etc/config", "type": "bind", "source": ")", pod, R"(/kubernetes.io~configmap/config", "options": ["rbind", "ro"]},
    {"destination": "/cache", "type": "bind", "source": ")", pod, R"(/kubernetes.io~empty-dir/cache", "options": ["rbind", "rw"]}
  ]})");
  absl::StatusOr<std::vector<GuestVolume>> v = VolumesOfSpec(spec);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), 2u);
  EXPECT_EQ((*v)[0].kind, "kubernetes.io~configmap");
  EXPECT_EQ((*v)[0].name, "config");
  EXPECT_TRUE((*v)[0].readonly);
  EXPECT_TRUE((*v)[1].empty_dir);
  EXPECT_FALSE(VolumesOfSpec("[]").ok());
}

TEST(EarlyAttestation, TeeAndSimulatedSnpClassesAttestEarlyAndNeedInitData) {
  config::Config dev;
  EXPECT_FALSE(AttestsEarly(dev));
  EXPECT_TRUE(RequireInitDataForEarlyAttestation(dev, false).ok());

  config::Config sim;
  sim.tee.simulated_snp_chain = "/etc/cloak/simsp";
  EXPECT_TRUE(AttestsEarly(sim));
  absl::Status s = RequireInitDataForEarlyAttestation(sim, false);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("has no init-data"));
  EXPECT_THAT(s.message(), HasSubstr("simulated SNP"));
  EXPECT_THAT(s.message(), HasSubstr("io.cloak.initdata"));
  EXPECT_TRUE(RequireInitDataForEarlyAttestation(sim, true).ok());

  for (config::TeeType t : {config::TeeType::kSnp, config::TeeType::kTdx}) {
    config::Config tee;
    tee.tee.type = t;
    EXPECT_TRUE(AttestsEarly(tee));
    absl::Status r = RequireInitDataForEarlyAttestation(tee, false);
    EXPECT_EQ(r.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(r.message(), HasSubstr("TEE runtime class"));
  }
}

}  // namespace
}  // namespace cloak::shim
