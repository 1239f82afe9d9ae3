// agent/guest_details: the TEE seen from the guest's devices.
#include "agent/guest_details.h"

#include <filesystem>
#include <fstream>

#include "common/temp_dir.h"
#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

void WriteFile(const std::filesystem::path& p, const std::string& content) {
  std::ofstream(p) << content;
}

TEST(GuestDetailsTest, DetectsTeeFromDevices) {
  absl::StatusOr<TempDir> dir = TempDir::Create("tee-");
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(DetectTee(dir->path().string()), "none");
  std::filesystem::create_directories(dir->path() / "dev");
  WriteFile(dir->path() / "dev" / "tdx_guest", "");
  EXPECT_EQ(DetectTee(dir->path().string()), "tdx");
  WriteFile(dir->path() / "dev" / "sev-guest", "");
  EXPECT_EQ(DetectTee(dir->path().string()), "snp");
}

}  // namespace
}  // namespace cloak::agent
