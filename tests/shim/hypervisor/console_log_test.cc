#include "shim/hypervisor/console_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/fd.h"
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
  // Appends as the VMM does (O_APPEND on a descriptor kept open).
  void Append(const std::string& text) {
    if (!vmm_) vmm_.Reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    ASSERT_TRUE(vmm_);
    ASSERT_EQ(::write(vmm_.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  int64_t Size(const std::string& path) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    return ec ? -1 : static_cast<int64_t>(size);
  }
  // Blocks allocated to the file: a truncated O_APPEND file is not sparse.
  int64_t Allocated(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_blocks) * 512 : -1;
  }

  struct Lines {
    absl::Mutex mu;
    std::vector<std::string> got;
    std::function<void(absl::string_view)> Sink() {
      return [this](absl::string_view line) {
        absl::MutexLock l(&mu);
        got.emplace_back(line);
      };
    }
    std::vector<std::string> Get() {
      absl::MutexLock l(&mu);
      return got;
    }
  };

  UniqueFd vmm_;

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


// The pump's thread is not relied on below (a long interval); PollOnce is
// what it runs.
constexpr absl::Duration kNoPolling = absl::Hours(1);

TEST_F(ConsoleLogTest, PumpPassesCompleteLinesAndFlushesTheLastAtStop) {
  Lines lines;
  ConsoleLogPump pump(path_, 1 << 20, lines.Sink(), kNoPolling);
  pump.PollOnce();  // no file yet
  Append("\x1b[0m[    0.5] Linux version 6.1\r\n2026-12-07T00:00:00Z info cloak-agent [agent] ");
  pump.PollOnce();
  EXPECT_THAT(lines.Get(), ::testing::ElementsAre("[    0.5] Linux version 6.1"));
  Append("serving\n\nhalf a li");
  pump.PollOnce();
  EXPECT_THAT(lines.Get(), ::testing::ElementsAre(
                               "[    0.5] Linux version 6.1",
                               "2026-12-07T00:00:00Z info cloak-agent [agent] serving"));
  Append("ne");
  pump.Stop();
  EXPECT_EQ(lines.Get().back(), "half a line");
  EXPECT_EQ(pump.rotations(), 0);
}

TEST_F(ConsoleLogTest, PumpCutsAnEndlessLine) {
  Lines lines;
  ConsoleLogPump pump(path_, 1 << 20, lines.Sink(), kNoPolling);
  Append(std::string(10000, 'x'));
  pump.PollOnce();
  ASSERT_EQ(lines.Get().size(), 2u);
  EXPECT_EQ(lines.Get()[0].size(), 4096u);
  EXPECT_EQ(lines.Get()[1].size(), 4096u);
  pump.Stop();
  ASSERT_EQ(lines.Get().size(), 3u);
  EXPECT_EQ(lines.Get()[2].size(), 10000u - 8192u);
}

TEST_F(ConsoleLogTest, PumpRotatesAtTheCapAndTheTailSpansBothFiles) {
  Lines lines;
  ConsoleLogPump pump(path_, 4096, lines.Sink(), kNoPolling);
  std::string first;
  for (int i = 0; i < 120; ++i) absl::StrAppend(&first, "boot line ", i, " ..........\n");
  ASSERT_LT(first.size(), 4096u);
  Append(first);
  pump.PollOnce();
  EXPECT_EQ(pump.rotations(), 0);
  EXPECT_EQ(Size(path_), static_cast<int64_t>(first.size()));
  std::string second;
  for (int i = 120; i < 240; ++i) absl::StrAppend(&second, "boot line ", i, " ..........\n");
  Append(second);
  pump.PollOnce();
  EXPECT_EQ(pump.rotations(), 1);
  EXPECT_EQ(Size(path_), 0);
  EXPECT_EQ(Size(path_ + ".1"), static_cast<int64_t>(first.size() + second.size()));
  // The VMM goes on appending: the file starts over, not sparse.
  Append("after rotation\n");
  EXPECT_EQ(Size(path_), 15);
  EXPECT_LE(Allocated(path_), 8192);
  EXPECT_EQ(ReadConsoleTail(path_, 3), "boot line 238 ..........\nboot line 239 ..........\nafter rotation");
  pump.PollOnce();
  pump.Stop();
  // Every line reached the sink once, in order.
  std::vector<std::string> got = lines.Get();
  ASSERT_EQ(got.size(), 241u);
  EXPECT_EQ(got[0], "boot line 0 ..........");
  EXPECT_EQ(got[239], "boot line 239 ..........");
  EXPECT_EQ(got[240], "after rotation");
}

TEST_F(ConsoleLogTest, PumpKeepsASpewingGuestBounded) {
  Lines lines;
  constexpr int64_t kCap = 64 * 1024;
  ConsoleLogPump pump(path_, kCap, lines.Sink(), kNoPolling);
  // 4 MiB of console in 8 KiB bursts between polls.
  const std::string burst = std::string(8191, 'y') + "\n";
  for (int i = 0; i < 512; ++i) {
    Append(burst);
    pump.PollOnce();
    ASSERT_LT(Size(path_), kCap + 8192);
    ASSERT_LT(Size(path_ + ".1"), kCap + 8192);
  }
  pump.Stop();
  EXPECT_GE(pump.rotations(), 60);
  // Every byte was passed on (each burst is two 4 KiB pieces).
  EXPECT_EQ(lines.Get().size(), 1024u);
}

}  // namespace
}  // namespace cloak::shim::hypervisor
