#include "common/process.h"

#include <signal.h>

#include <fstream>
#include <sstream>

#include "common/files.h"
#include "common/temp_dir.h"
#include "gtest/gtest.h"

namespace cloak {
namespace {

TEST(Subprocess, ExitCodeAndOutput) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir.ok());
  SpawnOptions o;
  o.stdout_path = dir->Join("out");
  o.env = {"CLOAK_TEST_VALUE=42"};
  auto p = Subprocess::Spawn({"sh", "-c", "echo value=$CLOAK_TEST_VALUE; exit 3"}, o);
  ASSERT_TRUE(p.ok()) << p.status();
  auto e = p->Wait(absl::Seconds(10));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->exit_code, 3);
  EXPECT_EQ(*ReadFile(dir->Join("out")), "value=42\n");
}

TEST(Subprocess, SignalGives128PlusN) {
  auto p = Subprocess::Spawn({"sleep", "60"});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->Signal(SIGKILL).ok());
  auto e = p->Wait(absl::Seconds(10));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->exit_code, 137);
  EXPECT_EQ(e->term_signal, SIGKILL);
}

TEST(Subprocess, WaitTimesOutThenStop) {
  auto p = Subprocess::Spawn({"sleep", "60"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->Wait(absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  ExitInfo e = p->Stop(absl::Seconds(5));
  EXPECT_EQ(e.exit_code, 128 + SIGTERM);
}

TEST(Subprocess, DestructorReapsRunningChild) {
  pid_t pid;
  {
    auto p = Subprocess::Spawn({"sleep", "60"});
    ASSERT_TRUE(p.ok());
    pid = p->pid();
  }
  EXPECT_NE(::kill(pid, 0), 0);
}

TEST(Subprocess, MissingBinaryIsNotFound) {
  auto p = Subprocess::Spawn({"cloak-no-such-binary"});
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(p.status().message().find("cloak-no-such-binary"), std::string::npos);
}

TEST(Subprocess, PassesExtraFds) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir.ok());
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  SpawnOptions o;
  o.extra_fds = {fds[1]};
  auto p = Subprocess::Spawn({"sh", "-c", "echo via-fd3 >&3"}, o);
  ASSERT_TRUE(p.ok());
  ::close(fds[1]);
  char buf[32] = {};
  ssize_t n = ::read(fds[0], buf, sizeof(buf));
  ::close(fds[0]);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "via-fd3\n");
  EXPECT_EQ(p->Wait(absl::Seconds(10))->exit_code, 0);
}

}  // namespace
}  // namespace cloak
