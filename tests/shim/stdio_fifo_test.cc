// ProcessIo against real fifos (docs/shim.md, "No output lost"): a fast
// process's output is held until the client opens its reader, however late,
// within the drain bound; nothing is read from the guest before that.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <optional>
#include <cerrno>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/fd.h"
#include "common/temp_dir.h"
#include "gtest/gtest.h"
#include "shim/stdio.h"

namespace cloak::shim {
namespace {

// An agent stream that hands over `data` in 4 KiB chunks, then ends; it
// records that the guest's output was read.
OutputReader FastProcess(std::string data, std::atomic<bool>* read_started) {
  return [data = std::move(data), read_started](
             const std::function<bool(absl::string_view)>& sink, Cancellation&) {
    read_started->store(true);
    absl::string_view rest = data;
    while (!rest.empty()) {
      size_t n = std::min<size_t>(rest.size(), 4096);
      if (!sink(rest.substr(0, n))) return absl::CancelledError("sink refused");
      rest.remove_prefix(n);
    }
    return absl::OkStatus();
  };
}

// The client's end: opened O_RDONLY|O_NONBLOCK (as containerd's fifo
// package does), then polled; POLLHUP comes only after a writer came and
// went, so a read of 0 is the shim's EOF.
std::string ReadUntilEof(int fd, absl::Duration timeout, bool* eof) {
  std::string out;
  *eof = false;
  const absl::Time deadline = absl::Now() + timeout;
  char buf[65536];
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      *eof = true;
      return out;
    } else if (errno != EAGAIN && errno != EINTR) {
      return out;
    }
  }
  return out;
}

StdioUris Uris(const std::string& out, const std::string& err = "") {
  StdioUris uris;
  uris.stdout_uri = out;
  uris.stderr_uri = err;
  return uris;
}

class StdioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-stdio-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    out_ = dir_->Join("stdout");
    err_ = dir_->Join("stderr");
    ASSERT_EQ(::mkfifo(out_.c_str(), 0600), 0);
    ASSERT_EQ(::mkfifo(err_.c_str(), 0600), 0);
  }
  std::optional<TempDir> dir_;
  std::string out_;
  std::string err_;
};

TEST_F(StdioTest, LateReaderGetsAFastProcessOutput) {
  auto io = ProcessIo::Open(Uris(out_, err_), {"c1", "default"});
  ASSERT_TRUE(io.ok()) << io.status();
  std::atomic<bool> out_read{false}, err_read{false};
  (*io)->StartOutput(StreamKind::kStdout, FastProcess("hello from stdout\n", &out_read));
  (*io)->StartOutput(StreamKind::kStderr, FastProcess("hello from stderr\n", &err_read));

  // The process exited at once; the shim waits for its output to drain.
  std::atomic<bool> drained{false};
  absl::Notification wait_done;
  std::thread waiter([&] {
    drained = (*io)->WaitOutput(absl::Now() + absl::Seconds(10));
    wait_done.Notify();
  });
  absl::SleepFor(absl::Milliseconds(700));
  EXPECT_FALSE(wait_done.HasBeenNotified()) << "output drained with no reader: it is lost";
  EXPECT_FALSE(out_read.load()) << "the guest's stdout was read before any client could get it";
  EXPECT_FALSE(err_read.load());

  // The client opens its readers late.
  UniqueFd out_fd(::open(out_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  UniqueFd err_fd(::open(err_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(out_fd && err_fd);
  bool out_eof = false, err_eof = false;
  EXPECT_EQ(ReadUntilEof(out_fd.get(), absl::Seconds(10), &out_eof), "hello from stdout\n");
  EXPECT_EQ(ReadUntilEof(err_fd.get(), absl::Seconds(10), &err_eof), "hello from stderr\n");
  EXPECT_TRUE(out_eof) << "stdout never ended";
  EXPECT_TRUE(err_eof) << "stderr never ended";
  waiter.join();
  EXPECT_TRUE(drained.load());
  (*io)->Close();
}

TEST_F(StdioTest, LateReaderGetsMoreThanAPipeBufferInOrder) {
  std::string big;
  for (int i = 0; big.size() < 1024 * 1024; ++i) big += "line " + std::to_string(i) + "\n";
  auto io = ProcessIo::Open(Uris(out_, out_), {"c1", "default"});
  ASSERT_TRUE(io.ok()) << io.status();
  std::atomic<bool> read{false};
  (*io)->StartOutput(StreamKind::kStdout, FastProcess(big, &read));
  std::thread waiter([&] { EXPECT_TRUE((*io)->WaitOutput(absl::Now() + absl::Seconds(20))); });
  absl::SleepFor(absl::Milliseconds(300));
  UniqueFd fd(::open(out_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(fd);
  bool eof = false;
  std::string got = ReadUntilEof(fd.get(), absl::Seconds(20), &eof);
  EXPECT_TRUE(eof);
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big) << "output reordered or corrupted";
  waiter.join();
}

TEST_F(StdioTest, ReaderFirstStillWorks) {
  UniqueFd fd(::open(out_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(fd);
  auto io = ProcessIo::Open(Uris(out_), {"c1", "default"});
  ASSERT_TRUE(io.ok()) << io.status();
  std::atomic<bool> read{false};
  (*io)->StartOutput(StreamKind::kStdout, FastProcess("early\n", &read));
  EXPECT_TRUE((*io)->WaitOutput(absl::Now() + absl::Seconds(10)));
  bool eof = false;
  EXPECT_EQ(ReadUntilEof(fd.get(), absl::Seconds(5), &eof), "early\n");
  EXPECT_TRUE(eof);
}

TEST_F(StdioTest, NoReaderEverIsBoundedByTheDrainDeadline) {
  auto io = ProcessIo::Open(Uris(out_, err_), {"c1", "default"});
  ASSERT_TRUE(io.ok()) << io.status();
  std::atomic<bool> read{false}, err_read{false};
  (*io)->StartOutput(StreamKind::kStdout, FastProcess("nobody reads\n", &read));
  (*io)->StartOutput(StreamKind::kStderr, FastProcess("nobody reads\n", &err_read));
  const absl::Time start = absl::Now();
  EXPECT_FALSE((*io)->WaitOutput(start + absl::Milliseconds(400)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_FALSE(read.load());
  (*io)->Close();
}

TEST_F(StdioTest, CloseWhileWaitingForAReaderReturns) {
  auto io = ProcessIo::Open(Uris(out_), {"c1", "default"});
  ASSERT_TRUE(io.ok()) << io.status();
  std::atomic<bool> read{false};
  (*io)->StartOutput(StreamKind::kStdout, FastProcess("x", &read));
  absl::SleepFor(absl::Milliseconds(150));
  const absl::Time start = absl::Now();
  (*io)->Close();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

}  // namespace
}  // namespace cloak::shim
