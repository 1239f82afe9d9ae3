#include "shim/hypervisor/console_log.h"

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::shim::hypervisor {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ConsoleLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-console-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    path_ = dir_->Join("console.log");
  }
  void Write(const std::string& text) { std::ofstream(path_, std::ios::binary) << text; }

  std::optional<TempDir> dir_;
  std::string path_;
};

TEST_F(ConsoleLogTest, TailOfMissingOrEmptyFile) {
  EXPECT_EQ(ReadConsoleTail(path_, 20), "");
  Write("");
  EXPECT_EQ(ReadConsoleTail(path_, 20), "");
}

TEST_F(ConsoleLogTest, LastLinesWithoutEscapes) {
  Write("\x1b[2J\x1b[0mSeaBIOS (version 1.16)\r\nline 2\r\nbell\x07here\nlast\n\n");
  EXPECT_EQ(ReadConsoleTail(path_, 20), "SeaBIOS (version 1.16)\nline 2\nbell?here\nlast");
  EXPECT_EQ(ReadConsoleTail(path_, 2), "bell?here\nlast");
  EXPECT_EQ(ReadConsoleTail(path_, 0), "");
}

TEST_F(ConsoleLogTest, LargeFileReadsOnlyTheEnd) {
  std::string text;
  for (int i = 0; i < 20000; ++i) absl::StrAppend(&text, "[    0.", i, "] kernel line ", i, "\n");
  Write(text);
  std::string tail = ReadConsoleTail(path_, 3);
  EXPECT_EQ(tail,
            "[    0.19997] kernel line 19997\n[    0.19998] kernel line 19998\n"
            "[    0.19999] kernel line 19999");
}

TEST_F(ConsoleLogTest, DeadlineErrorQuotesTheConsole) {
  std::string text;
  for (int i = 1; i <= 30; ++i) absl::StrAppend(&text, "boot line ", i, "\n");
  absl::StrAppend(&text, "Kernel panic - not syncing: No working init found.\n");
  Write(text);
  BootDeadline boot(absl::Seconds(30), path_);
  absl::Status s = boot.Exceeded("the agent to answer");
  EXPECT_TRUE(absl::IsDeadlineExceeded(s));
  EXPECT_THAT(s.message(), HasSubstr("the agent to answer did not happen within 30s"));
  EXPECT_THAT(s.message(), HasSubstr("last 20 lines of the console (" + path_ + ")"));
  EXPECT_THAT(s.message(), HasSubstr("Kernel panic - not syncing"));
  EXPECT_THAT(s.message(), HasSubstr("boot line 12\n"));
  EXPECT_THAT(s.message(), Not(HasSubstr("boot line 11\n")));
}

TEST_F(ConsoleLogTest, DeadlineErrorOnSilentGuest) {
  BootDeadline boot(absl::Seconds(1), path_);
  absl::Status s = boot.Exceeded("the kernel to print");
  EXPECT_THAT(s.message(), HasSubstr("the guest printed nothing"));
  EXPECT_FALSE(boot.Expired());
  EXPECT_GT(boot.deadline(), absl::Now());
}

}  // namespace
}  // namespace cloak::shim::hypervisor
