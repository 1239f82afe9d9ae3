#include "common/files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/temp_dir.h"

namespace cloak {
namespace {

using ::testing::HasSubstr;

TEST(FilesTest, WriteAtomicThenRead) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir.ok());
  const std::string path = dir->Join("f");
  ASSERT_TRUE(WriteFileAtomic(path, std::string("a\0b", 3), 0640).ok());
  EXPECT_EQ(*ReadFile(path), std::string("a\0b", 3));
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  ASSERT_TRUE(WriteFileDurably(path, "new").ok());
  EXPECT_EQ(*ReadFile(path), "new");
  // No temporary file is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir->path()),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(FilesTest, ReadErrorsCarryTheCodeAndPath) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir.ok());
  absl::StatusOr<std::string> missing = ReadFile(dir->Join("nope"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nope"));
  ASSERT_TRUE(WriteFileAtomic(dir->Join("big"), std::string(100, 'x')).ok());
  EXPECT_EQ(ReadFile(dir->Join("big"), 10).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(WriteFileAtomic(dir->Join("no/such/dir/f"), "x").ok());
}

TEST(FilesTest, WriteAtomicDoesNotFollowALinkedTemporary) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir.ok());
  const std::string target = dir->Join("target");
  ASSERT_TRUE(WriteFileAtomic(target, "keep").ok());
  const std::string path = dir->Join("f");
  ASSERT_EQ(::symlink(target.c_str(), (path + ".tmp." + std::to_string(::getpid())).c_str()), 0);
  EXPECT_FALSE(WriteFileAtomic(path, "evil").ok());
  EXPECT_EQ(*ReadFile(target), "keep");
}

TEST(FilesTest, MakeDirsAndRemoveTree) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir.ok());
  const std::string deep = dir->Join("a/b/c/");
  ASSERT_TRUE(MakeDirs(deep, 0700).ok());
  ASSERT_TRUE(MakeDirs(deep).ok());  // exists: fine
  ASSERT_TRUE(WriteFileAtomic(dir->Join("a/b/c/f"), "x").ok());
  ASSERT_EQ(::symlink("/", dir->Join("a/b/root").c_str()), 0);
  EXPECT_FALSE(MakeDirs(dir->Join("a/b/c/f")).ok());  // a file is in the way
  ASSERT_TRUE(RemoveTree(dir->Join("a")).ok());
  EXPECT_FALSE(std::filesystem::exists(dir->Join("a")));
  EXPECT_TRUE(std::filesystem::exists("/"));     // the link was removed, not followed
  EXPECT_TRUE(RemoveTree(dir->Join("a")).ok());  // already gone
}

}  // namespace
}  // namespace cloak
