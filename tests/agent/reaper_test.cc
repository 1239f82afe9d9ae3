// agent/reaper: wait statuses to exit codes, children reaped by pid.
#include "agent/reaper.h"

#include <signal.h>

#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

TEST(ExitStatusTest, Mapping) {
  EXPECT_EQ(ExitStatusFromWaitStatus(0), 0);
  EXPECT_EQ(ExitStatusFromWaitStatus(3 << 8), 3);
  EXPECT_EQ(ExitStatusFromWaitStatus(SIGTERM), 143);
  EXPECT_EQ(ExitStatusFromWaitStatus(SIGKILL), 137);
  EXPECT_EQ(ExitStatusFromWaitStatus(SIGKILL | 0x80), 137);  // core dumped
}

TEST(ReaperTest, DispatchesStatusesByPid) {
  absl::StatusOr<std::unique_ptr<Reaper>> reaper = Reaper::Start(/*subreaper=*/false);
  ASSERT_TRUE(reaper.ok()) << reaper.status();
  absl::StatusOr<Reaper::RunResult> r = (*reaper)->Run({"/bin/sh", "-c", "echo out; exit 3"},
                                                       absl::Seconds(10));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_status, 3);
  EXPECT_EQ(r->output, "out\n");
  uint64_t mark = (*reaper)->Mark();
  ChildSpec sleeper;
  sleeper.argv = {"/bin/sleep", "100"};
  absl::StatusOr<pid_t> pid = (*reaper)->Spawn(sleeper);
  ASSERT_TRUE(pid.ok());
  EXPECT_EQ((*reaper)->Wait(*pid, mark, absl::Now() + absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  ::kill(*pid, SIGTERM);
  absl::StatusOr<ExitRecord> e = (*reaper)->Wait(*pid, mark, absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->exit_status, 143);
  EXPECT_EQ((*reaper)->Run({"/bin/sleep", "10"}, absl::Milliseconds(100)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace cloak::agent
