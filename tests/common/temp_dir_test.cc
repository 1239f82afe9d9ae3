#include "common/temp_dir.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace cloak {
namespace {

TEST(TempDir, CreatedAndRemovedRecursively) {
  std::filesystem::path p;
  {
    auto d = TempDir::Create("cloak-tmptest-");
    ASSERT_TRUE(d.ok()) << d.status();
    p = d->path();
    EXPECT_TRUE(std::filesystem::is_directory(p));
    std::filesystem::create_directories(p / "a" / "b");
    std::ofstream(p / "a" / "b" / "f") << "x";
    TempDir moved = std::move(*d);
    EXPECT_EQ(moved.path(), p);
  }
  EXPECT_FALSE(std::filesystem::exists(p));
}

TEST(TempDir, BadBaseIsAnError) {
  auto d = TempDir::Create("x-", "/nonexistent/cloak/base");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cloak
