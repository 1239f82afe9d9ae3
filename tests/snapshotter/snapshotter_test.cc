// The snapshotter core over a temp root, with a fake content store: ordinary
// overlay snapshots, guest-pull layers, errors, restarts. No mounts are made
// (they need root); the integration test mounts what containerd gets.
#include "snapshotter/snapshotter.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/guest_pull_mount.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::snapshotter {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr char kManifest[] = R"({"schemaVersion":2,"layers":[
  {"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip+encrypted","digest":"sha256:l1"},
  {"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:l2"}]})";

class FakeContent final : public ManifestSource {
 public:
  struct Shared {
    absl::Mutex mu;
    int reads = 0;
    std::string last_namespace;
    absl::Status fail;
  };
  explicit FakeContent(Shared* shared) : shared_(shared) {}
  absl::StatusOr<std::string> ReadBlob(const std::string& ns, const std::string& digest) override {
    absl::MutexLock lock(&shared_->mu);
    ++shared_->reads;
    shared_->last_namespace = ns;
    if (!shared_->fail.ok()) return shared_->fail;
    if (digest != "sha256:manifest") return absl::NotFoundError("content " + digest + " not found");
    return std::string(kManifest);
  }

 private:
  Shared* shared_;
};

Labels Layer(const std::string& chain, const std::string& layer) {
  return {{std::string(kLabelTargetRef), chain},
          {std::string(kLabelImageRef), "127.0.0.1:5000/app:enc"},
          {std::string(kLabelManifestDigest), "sha256:manifest"},
          {std::string(kLabelLayerDigest), layer}};
}

class SnapshotterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cksnap-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    root_ = dir_->Join("root");
    Open();
  }
  void Open(GuestPullMode mode = GuestPullMode::kEncrypted) {
    snap_.reset();
    SnapshotterOptions options;
    options.root = root_;
    options.mode = mode;
    auto s = Snapshotter::Create(options, std::make_unique<FakeContent>(&content_));
    ASSERT_TRUE(s.ok()) << s.status();
    snap_ = std::move(*s);
  }
  std::vector<std::string> Names() {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<Snapshot>> all = snap_->List({});
    if (!all.ok()) ADD_FAILURE() << all.status();
    for (const Snapshot& s : all.value_or(std::vector<Snapshot>{})) out.push_back(s.name);
    return out;
  }
  // Commits an ordinary layer `name` over `parent` holding `file`.
  void HostLayer(const std::string& name, const std::string& parent, const std::string& file) {
    const std::string key = "extract " + name;
    auto m = snap_->Prepare("k8s.io", key, parent, {{std::string(kLabelTargetRef), name}});
    ASSERT_TRUE(m.ok()) << m.status();
    const std::string fs = snap_->FsDir(snap_->Stat(key)->id);
    std::ofstream(fs + "/" + file) << "content of " << file;
    ASSERT_TRUE(snap_->Commit(name, key, {{std::string(kLabelTargetRef), name}}).ok());
  }

  std::optional<TempDir> dir_;
  std::string root_;
  FakeContent::Shared content_;
  std::unique_ptr<Snapshotter> snap_;
};

TEST_F(SnapshotterTest, OrdinaryLayersGetOverlayMountsLikeContainerdsOverlayfs) {
  auto first = snap_->Prepare("k8s.io", "k1", "", {});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string fs1 = snap_->FsDir(snap_->Stat("k1")->id);
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].type, "bind");
  EXPECT_EQ((*first)[0].source, fs1);
  EXPECT_THAT((*first)[0].options, ElementsAre("rbind", "rw"));
  std::ofstream(fs1 + "/a") << "hello";
  ASSERT_TRUE(snap_->Commit("c1", "k1", {}).ok());
  EXPECT_EQ(snap_->Stat("k1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(snap_->Stat("c1")->kind, Kind::kCommitted);
  EXPECT_GT(snap_->GetUsage("c1")->size, 0);
  EXPECT_EQ(snap_->GetUsage("c1")->inodes, 2);  // fs and a

  HostLayer("c2", "c1", "b");
  const std::string fs2 = snap_->FsDir(snap_->Stat("c2")->id);
  auto active = snap_->Prepare("k8s.io", "ctr", "c2", {});
  ASSERT_TRUE(active.ok()) << active.status();
  const uint64_t id = snap_->Stat("ctr")->id;
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ((*active)[0].type, "overlay");
  EXPECT_THAT((*active)[0].options,
              ElementsAre("workdir=" + snap_->WorkDir(id), "upperdir=" + snap_->FsDir(id),
                          "lowerdir=" + fs2 + ":" + fs1));
  auto again = snap_->Mounts("ctr");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].options, (*active)[0].options);

  auto view1 = snap_->View("k8s.io", "v1", "c1", {});
  ASSERT_TRUE(view1.ok());
  EXPECT_EQ((*view1)[0].type, "bind");
  EXPECT_EQ((*view1)[0].source, fs1);
  EXPECT_THAT((*view1)[0].options, ElementsAre("rbind", "ro"));
  auto view2 = snap_->View("k8s.io", "v2", "c2", {});
  ASSERT_TRUE(view2.ok());
  EXPECT_EQ((*view2)[0].type, "overlay");
  EXPECT_THAT((*view2)[0].options, ElementsAre("lowerdir=" + fs2 + ":" + fs1));
  EXPECT_EQ(content_.reads, 0) << "no manifest is read for images without CRI labels";
}

TEST_F(SnapshotterTest, KindsAndChildrenAreEnforced) {
  HostLayer("c1", "", "a");
  ASSERT_TRUE(snap_->Prepare("k8s.io", "ctr", "c1", {}).ok());
  EXPECT_EQ(snap_->Prepare("k8s.io", "ctr", "c1", {}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(snap_->Prepare("k8s.io", "x", "missing", {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(snap_->Prepare("k8s.io", "x", "ctr", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(snap_->Mounts("c1").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(snap_->Commit("c1", "ctr", {}).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(snap_->Commit("c9", "c1", {}).code(), absl::StatusCode::kFailedPrecondition);
  absl::Status busy = snap_->Remove("c1");
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(busy.message(), HasSubstr("ctr"));
  const std::string ctr_dir = absl::StrCat(root_, "/snapshots/", snap_->Stat("ctr")->id);
  ASSERT_TRUE(std::filesystem::exists(ctr_dir));
  ASSERT_TRUE(snap_->Remove("ctr").ok());
  EXPECT_FALSE(std::filesystem::exists(ctr_dir));
  ASSERT_TRUE(snap_->Remove("c1").ok());
  EXPECT_EQ(snap_->Remove("c1").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Names().empty());
}

TEST_F(SnapshotterTest, BadInputIsRefusedNotFatal) {
  EXPECT_EQ(snap_->Prepare("", "", "", {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(snap_->Prepare("", std::string(5000, 'k'), "", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(snap_->Prepare("", "k", "", {{"big", std::string(5000, 'v')}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(snap_->Prepare("", "k", "", {{"", "v"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(snap_->List({"name~=x"}).status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* bad : {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"}) {
    EXPECT_EQ(snap_->Prepare("", bad, "", {}).status().code(), absl::StatusCode::kInvalidArgument)
        << absl::CHexEscape(bad);
    EXPECT_EQ(snap_->Prepare("", "k2", "", {{"l", bad}}).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  ASSERT_TRUE(snap_->Prepare("", "caf\xc3\xa9 \xf0\x9f\x90\xb3", "", {{"k", "\xe2\x82\xac"}}).ok());
  // Keys never become paths.
  ASSERT_TRUE(snap_->Prepare("", "../../etc", "", {}).ok());
  EXPECT_TRUE(std::filesystem::exists(snap_->FsDir(snap_->Stat("../../etc")->id)));
  EXPECT_FALSE(std::filesystem::exists(dir_->Join("etc")));
}

TEST_F(SnapshotterTest, UpdateChangesOnlyLabels) {
  ASSERT_TRUE(snap_->Prepare("", "k", "", {{"a", "1"}, {"b", "2"}}).ok());
  auto u = snap_->Update("k", {{"a", "9"}, {"c", "3"}}, {"labels.a", "labels.b"});
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->labels, (Labels{{"a", "9"}}));
  u = snap_->Update("k", {{"z", "1"}}, {});
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(snap_->Stat("k")->labels, (Labels{{"z", "1"}}));
  EXPECT_EQ(snap_->Update("k", {}, {"kind"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(snap_->Update("nope", {}, {}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SnapshotterTest, EncryptedLayersAreRecordedForTheGuestAndNeverGetContent) {
  // Layer 1 is encrypted: Prepare answers AlreadyExists after recording it
  // committed, where containerd's metadata store then finds it by filter.
  absl::Status s =
      snap_->Prepare("k8s.io", "k8s.io/5/extract-1 sha256:c1", "", Layer("sha256:c1", "sha256:l1"))
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_EQ(content_.last_namespace, "k8s.io");
  auto found = snap_->List({R"(labels."containerd.io/snapshot.ref"==sha256:c1,parent=="")"});
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 1u);
  const Snapshot l1 = (*found)[0];
  EXPECT_EQ(l1.kind, Kind::kCommitted);
  EXPECT_TRUE(l1.guest_pull);
  EXPECT_EQ(l1.labels.at(std::string(kLabelGuestPull)), "true");
  EXPECT_THAT(l1.name, HasSubstr("sha256:c1"));
  EXPECT_EQ(snap_->Stat("k8s.io/5/extract-1 sha256:c1").status().code(),
            absl::StatusCode::kNotFound)
      << "no extraction snapshot is left";

  // Again (another namespace, or a retry): found, not recorded twice.
  EXPECT_EQ(
      snap_->Prepare("other", "other/1/extract-2 sha256:c1", "", Layer("sha256:c1", "sha256:l1"))
          .status()
          .code(),
      absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Names().size(), 1u);

  // Layer 2 is plain, but above a guest-pulled layer: guest-pulled too,
  // without reading the manifest again.
  const int reads = content_.reads;
  EXPECT_EQ(snap_
                ->Prepare("k8s.io", "k8s.io/6/extract-3 sha256:c2", l1.name,
                          Layer("sha256:c2", "sha256:l2"))
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(content_.reads, reads);
  auto top = snap_->List({R"(labels."containerd.io/snapshot.ref"==sha256:c2)"});
  ASSERT_TRUE(top.ok());
  ASSERT_EQ(top->size(), 1u);
  EXPECT_EQ((*top)[0].parent, l1.name);

  // The container's rootfs over it: an empty directory naming the image.
  auto m = snap_->Prepare("k8s.io", "k8s.io/7/ctr1", (*top)[0].name, {});
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 1u);
  EXPECT_EQ((*m)[0].type, "bind");
  EXPECT_THAT(
      (*m)[0].options,
      ElementsAre("rbind", "rw", std::string(kGuestPullImageOption) + "127.0.0.1:5000/app:enc"));
  EXPECT_TRUE(std::filesystem::is_empty((*m)[0].source));
  EXPECT_EQ(snap_->GetUsage("k8s.io/7/ctr1")->size, 0);
  auto view = snap_->View("k8s.io", "k8s.io/8/view", (*top)[0].name, {});
  ASSERT_TRUE(view.ok());
  EXPECT_THAT((*view)[0].options, ElementsAre("rbind", "ro", HasSubstr("cloak.image=")));

  // Removing image and container removes everything.
  ASSERT_TRUE(snap_->Remove("k8s.io/8/view").ok());
  ASSERT_TRUE(snap_->Remove("k8s.io/7/ctr1").ok());
  ASSERT_TRUE(snap_->Remove((*top)[0].name).ok());
  ASSERT_TRUE(snap_->Remove(l1.name).ok());
  EXPECT_TRUE(Names().empty());
  EXPECT_TRUE(std::filesystem::is_empty(root_ + "/snapshots"));
}

TEST_F(SnapshotterTest, PlainImagesThroughCriAreUnpackedOnTheHost) {
  // The plain bottom layer of the same manifest, prepared first: ordinary.
  auto m = snap_->Prepare("k8s.io", "extract sha256:p", "", Layer("sha256:p", "sha256:l2"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)[0].type, "bind");
  EXPECT_THAT((*m)[0].options, ElementsAre("rbind", "rw"));
  EXPECT_FALSE(snap_->Stat("extract sha256:p")->guest_pull);
}

TEST_F(SnapshotterTest, UnreadableManifestFailsThePrepareAndRecordsNothing) {
  {
    absl::MutexLock lock(&content_.mu);
    content_.fail = absl::UnavailableError("connection refused");
  }
  absl::Status s =
      snap_->Prepare("k8s.io", "extract", "", Layer("sha256:c1", "sha256:l1")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("sha256:manifest"));
  EXPECT_TRUE(Names().empty());
}

TEST_F(SnapshotterTest, ModeAllRecordsEveryCriLayer) {
  Open(GuestPullMode::kAll);
  EXPECT_EQ(snap_->Prepare("k8s.io", "extract", "", Layer("sha256:p", "sha256:l2")).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(content_.reads, 0);
  // Images without CRI labels (ctr pull) are still unpacked.
  EXPECT_TRUE(snap_->Prepare("default", "k", "", {{std::string(kLabelTargetRef), "x"}}).ok());
}

TEST_F(SnapshotterTest, RootIsMadeWithItsParentsAndIsPrivate) {
  root_ = dir_->Join("var/lib/cloak-snapshotter");
  Open();
  struct stat st {};
  ASSERT_EQ(::stat(root_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // A parent that is a file: the error names the root.
  std::ofstream(dir_->Join("file")) << "x";
  SnapshotterOptions options;
  options.root = dir_->Join("file/root");
  auto s = Snapshotter::Create(options, std::make_unique<FakeContent>(&content_));
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr(options.root));
}

TEST_F(SnapshotterTest, StateSurvivesARestartAndCrashLeftoversAreCleaned) {
  HostLayer("c1", "", "a");
  EXPECT_EQ(snap_->Prepare("k8s.io", "e", "c1", Layer("sha256:c2", "sha256:l1")).status().code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(
      snap_->Prepare("k8s.io", "ctr", Names()[0] == "c1" ? Names()[1] : Names()[0], {}).ok());
  const std::vector<std::string> before = Names();
  const std::string fs1 = snap_->FsDir(snap_->Stat("c1")->id);
  // As after a kill -9: a directory made for a snapshot whose record was
  // never saved, and a torn temp file of the next state.
  std::filesystem::create_directories(root_ + "/snapshots/77/fs");
  std::ofstream(root_ + "/metadata.json.tmp") << R"({"version":1,"next_id":)";
  Open();
  EXPECT_EQ(Names(), before);
  EXPECT_EQ(snap_->FsDir(snap_->Stat("c1")->id), fs1);
  EXPECT_TRUE(std::filesystem::exists(fs1 + "/a"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/snapshots/77"));
  auto m = snap_->Mounts("ctr");
  ASSERT_TRUE(m.ok());
  EXPECT_THAT((*m)[0].options, ElementsAre("rbind", "rw", HasSubstr("cloak.image=")));
  // New ids never reuse old ones.
  ASSERT_TRUE(snap_->Prepare("", "new", "", {}).ok());
  for (const std::string& n : before) EXPECT_NE(snap_->Stat("new")->id, snap_->Stat(n)->id);
}

}  // namespace
}  // namespace cloak::snapshotter
