// agent/kbs_files.h: key broker secrets written as 0400 files owned by the
// container's user, bound read-only; and the tmpfs requirement that keeps
// them off any disk in the guest.
#include "agent/kbs_files.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/skip.h"

namespace cloak::agent {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

std::string Slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(KbsFilesTest, ProcessOwnerReadsTheSpecsUser) {
  EXPECT_EQ(ProcessOwner(json::parse(R"({"process": {"user": {"uid": 1000, "gid": 2000}}})")).uid, 1000u);
  EXPECT_EQ(ProcessOwner(json::parse(R"({"process": {"user": {"uid": 1000, "gid": 2000}}})")).gid, 2000u);
  EXPECT_EQ(ProcessOwner(json::parse(R"({"process": {}})")).uid, 0u);
  EXPECT_EQ(ProcessOwner(json::parse(R"({"process": {"user": {"uid": -1}}})")).uid, 0u);
  EXPECT_EQ(ProcessOwner(json::parse("[]")).uid, 0u);
}

TEST(KbsFilesTest, WritesPrivateFilesAndReadOnlyBinds) {
  if (::geteuid() != 0) CLOAK_SKIP() << "needs root to give the files to another user";
  auto tmp = TempDir::Create("kbs-files");
  ASSERT_TRUE(tmp.ok()) << tmp.status();
  const std::string dir = tmp->path().string() + "/kbs-files";
  std::vector<KbsFile> files = {{"default/secret/a", "/etc/a"}, {"default/secret/b", "/run/b"}};
  auto mounts = WriteKbsFiles(dir, files, {"alpha", std::string("b\0eta", 5)}, {1234, 5678},
                              /*require_tmpfs=*/false);
  ASSERT_TRUE(mounts.ok()) << mounts.status();
  ASSERT_EQ(mounts->size(), 2u);
  struct stat st;
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  for (int i = 0; i < 2; ++i) {
    const std::string path = dir + "/" + std::to_string(i);
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 07777, 0400u);
    EXPECT_EQ(st.st_uid, 1234u);
    EXPECT_EQ(st.st_gid, 5678u);
    const json& m = (*mounts)[i];
    EXPECT_EQ(m["destination"], files[i].destination);
    EXPECT_EQ(m["source"], path);
    EXPECT_EQ(m["type"], "bind");
    for (const char* o : {"ro", "nosuid", "nodev", "noexec"}) {
      EXPECT_NE(std::find(m["options"].begin(), m["options"].end(), o), m["options"].end()) << o;
    }
  }
  EXPECT_EQ(Slurp(dir + "/0"), "alpha");
  EXPECT_EQ(Slurp(dir + "/1"), std::string("b\0eta", 5));
}

TEST(KbsFilesTest, RefusesADirectoryOffTmpfs) {
  if (::geteuid() != 0) CLOAK_SKIP() << "needs root to mount a tmpfs";
  auto tmp = TempDir::Create("kbs-files");
  ASSERT_TRUE(tmp.ok()) << tmp.status();
  // The test's temporary directory is on a disk; a tmpfs mounted in it is
  // the accepted case.
  auto refused = WriteKbsFiles(tmp->path().string() + "/disk", {{"a/b/c", "/x"}}, {"s"}, {},
                               /*require_tmpfs=*/true);
  const std::string mnt = tmp->path().string() + "/mem";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0700), 0);
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  auto accepted = WriteKbsFiles(mnt + "/kbs-files", {{"a/b/c", "/x"}}, {"s"}, {},
                                /*require_tmpfs=*/true);
  ::umount2(mnt.c_str(), MNT_DETACH);
  ASSERT_FALSE(refused.ok()) << "the test's temporary directory is on a tmpfs: run it with "
                                 "TMPDIR on a disk";
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("is not on a tmpfs"));
  EXPECT_TRUE(accepted.ok()) << accepted.status();
}

TEST(KbsFilesTest, OneContentPerFile) {
  auto r = WriteKbsFiles("/nonexistent", {{"a/b/c", "/x"}}, {}, {}, false);
  EXPECT_FALSE(r.ok());
  auto none = WriteKbsFiles("/nonexistent", {}, {}, {}, true);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace cloak::agent
