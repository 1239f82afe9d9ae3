#include "agent/image/unpack.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/image/test_util.h"

namespace cloak::agent::image {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ReadFileOrEmpty;
using testing::TarBuilder;

class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-unpack-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    rootfs_ = dir_->Join("rootfs");
    outside_ = dir_->Join("outside");
    fs::create_directories(rootfs_);
    fs::create_directories(outside_);
    ASSERT_TRUE(testing::WriteFile(outside_ + "/secret", "host secret").ok());
  }

  absl::StatusOr<UnpackStats> Apply(const TarBuilder& tar,
                                    Compression compression = Compression::kNone) {
    std::string path = dir_->Join("layer-" + std::to_string(counter_++));
    absl::Status s = testing::WriteFile(path, tar.Build(compression));
    if (!s.ok()) return s;
    return ApplyLayer(path, rootfs_, "sha256:test");
  }

  std::string R(const std::string& p) const { return rootfs_ + "/" + p; }

  void ExpectRefused(const absl::StatusOr<UnpackStats>& r, const std::string& entry) {
    ASSERT_FALSE(r.ok()) << "layer with entry " << entry << " was accepted";
    EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("entry \"" + entry + "\"")) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("sha256:test"));
    // Nothing outside the rootfs was touched.
    EXPECT_EQ(ReadFileOrEmpty(outside_ + "/secret"), "host secret");
    EXPECT_FALSE(fs::exists(outside_ + "/pwned"));
  }

  std::optional<TempDir> dir_;
  std::string rootfs_;
  std::string outside_;
  int counter_ = 0;
};

TEST_F(UnpackTest, AppliesEveryKindOfEntryInAllCompressions) {
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(static_cast<int>(c));
    fs::remove_all(rootfs_);
    fs::create_directories(rootfs_);
    TarBuilder tar;
    tar.Dir("bin", 0755)
        .File("bin/tool", "#!/bin/sh\necho hi\n", 0755)
        .Symlink("bin/sh", "tool")
        .Hardlink("bin/tool2", "bin/tool")
        .File("/abs/file", "absolute names are relative to the rootfs")
        .File("./dot/file", "x")
        .File("deep/implicit/parents/f", "p")
        .Fifo("run/fifo")
        .Dir("lib", 0755)
        .Symlink("lib64", "lib")
        .File("lib64/through-relative-link", "ok");
    auto stats = Apply(tar, c);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(ReadFileOrEmpty(R("bin/tool")), "#!/bin/sh\necho hi\n");
    EXPECT_EQ(fs::read_symlink(R("bin/sh")), "tool");
    EXPECT_EQ(fs::hard_link_count(R("bin/tool")), 2u);
    EXPECT_EQ(ReadFileOrEmpty(R("abs/file")), "absolute names are relative to the rootfs");
    EXPECT_EQ(ReadFileOrEmpty(R("dot/file")), "x");
    EXPECT_EQ(ReadFileOrEmpty(R("deep/implicit/parents/f")), "p");
    EXPECT_TRUE(fs::is_fifo(R("run/fifo")));
    EXPECT_EQ(ReadFileOrEmpty(R("lib/through-relative-link")), "ok");
    struct stat st;
    ASSERT_EQ(stat(R("bin/tool").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    EXPECT_EQ(stats->files, 5);
    EXPECT_EQ(stats->hardlinks, 1);
  }
}

TEST_F(UnpackTest, KeepsSetuidBits) {
  auto stats = Apply(TarBuilder().File("bin/su", "x", 04755));
  ASSERT_TRUE(stats.ok()) << stats.status();
  struct stat st;
  ASSERT_EQ(stat(R("bin/su").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
}

TEST_F(UnpackTest, Whiteouts) {
  ASSERT_TRUE(Apply(TarBuilder()
                        .File("a/x", "x")
                        .File("a/sub/y", "y")
                        .File("b/z", "z")
                        .File("b/keep", "k")
                        .File("c", "c")
                        .Dir("d")
                        .File("d/inner", "i"))
                  .ok());
  auto stats = Apply(TarBuilder()
                         .File("a/new", "n")  // before the opaque marker: kept
                         .File("a/.wh..wh..opq", "")
                         .File("b/.wh.z", "")
                         .File(".wh.c", "")
                         .File(".wh.d", "")
                         .File(".wh.never-existed", ""));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->whiteouts, 5);
  EXPECT_FALSE(fs::exists(R("a/x")));
  EXPECT_FALSE(fs::exists(R("a/sub")));
  EXPECT_EQ(ReadFileOrEmpty(R("a/new")), "n");
  EXPECT_FALSE(fs::exists(R("a/.wh..wh..opq")));
  EXPECT_FALSE(fs::exists(R("b/z")));
  EXPECT_FALSE(fs::exists(R("b/.wh.z")));
  EXPECT_TRUE(fs::exists(R("b/keep")));
  EXPECT_FALSE(fs::exists(R("c")));
  EXPECT_FALSE(fs::exists(R("d")));
}

TEST_F(UnpackTest, OpaqueWhiteoutOfNewDirectory) {
  auto stats = Apply(TarBuilder().File("e/.wh..wh..opq", "").File("e/f", "f"));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(ReadFileOrEmpty(R("e/f")), "f");
}

TEST_F(UnpackTest, ReplacesSymlinkInsteadOfWritingThroughIt) {
  ASSERT_TRUE(Apply(TarBuilder().Symlink("link", outside_ + "/secret")).ok());
  auto stats = Apply(TarBuilder().File("link", "new"));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_FALSE(fs::is_symlink(R("link")));
  EXPECT_EQ(ReadFileOrEmpty(R("link")), "new");
  EXPECT_EQ(ReadFileOrEmpty(outside_ + "/secret"), "host secret");
}

TEST_F(UnpackTest, RewritingAHardlinkedPathDoesNotChangeTheOtherName) {
  ASSERT_TRUE(Apply(TarBuilder().File("f", "original").Hardlink("h", "f")).ok());
  ASSERT_TRUE(Apply(TarBuilder().File("h", "changed")).ok());
  EXPECT_EQ(ReadFileOrEmpty(R("f")), "original");
  EXPECT_EQ(ReadFileOrEmpty(R("h")), "changed");
}

TEST_F(UnpackTest, RefusesDotDotEntries) {
  ExpectRefused(Apply(TarBuilder().File("../pwned", "x")), "../pwned");
  ExpectRefused(Apply(TarBuilder().File("a/../../outside/pwned", "x")), "a/../../outside/pwned");
  ExpectRefused(Apply(TarBuilder().File("/../outside/pwned", "x")), "/../outside/pwned");
  ExpectRefused(Apply(TarBuilder().Dir("../outside/pwned")), "../outside/pwned/");
}

TEST_F(UnpackTest, RefusesAbsoluteSymlinkEscape) {
  auto r = Apply(TarBuilder().Symlink("esc", outside_).File("esc/pwned", "x"));
  ExpectRefused(r, "esc/pwned");
  EXPECT_THAT(r.status().message(), HasSubstr("resolves outside the rootfs"));
}

TEST_F(UnpackTest, RefusesRelativeSymlinkEscapeThenWriteThroughIt) {
  auto r = Apply(TarBuilder().Dir("x").Symlink("x/up", "../../outside").File("x/up/pwned", "x"));
  ExpectRefused(r, "x/up/pwned");
}

TEST_F(UnpackTest, RefusesWriteThroughEscapingSymlinkFromEarlierLayer) {
  ASSERT_TRUE(Apply(TarBuilder().Symlink("usr", "../outside")).ok());
  ExpectRefused(Apply(TarBuilder().File("usr/pwned", "x")), "usr/pwned");
  ExpectRefused(Apply(TarBuilder().Dir("usr/pwned")), "usr/pwned/");
}

TEST_F(UnpackTest, RefusesHardlinksOutOfTheRootfs) {
  ExpectRefused(Apply(TarBuilder().Hardlink("h", "../outside/secret")), "h");
  ExpectRefused(Apply(TarBuilder().Symlink("esc", outside_).Hardlink("h2", "esc/secret")), "h2");
  auto missing = Apply(TarBuilder().Hardlink("h3", "no/such/file"));
  ExpectRefused(missing, "h3");
}

TEST_F(UnpackTest, RefusesDeviceNodes) {
  auto r = Apply(TarBuilder().File("ok", "fine").CharDevice("dev/mem", 1, 1));
  ExpectRefused(r, "dev/mem");
  EXPECT_THAT(r.status().message(), HasSubstr("device node"));
  EXPECT_FALSE(fs::exists(R("dev/mem")));
}

TEST_F(UnpackTest, CorruptArchiveIsDataLoss) {
  std::string path = dir_->Join("corrupt");
  std::string gz = TarBuilder().File("a", std::string(10000, 'a')).Build(Compression::kGzip);
  ASSERT_TRUE(testing::WriteFile(path, gz.substr(0, gz.size() / 2)).ok());
  auto r = ApplyLayer(path, rootfs_, "sha256:corrupt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("sha256:corrupt"));
}

}  // namespace
}  // namespace cloak::agent::image
