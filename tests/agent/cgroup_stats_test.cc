// agent/cgroup_stats: cgroup v2 statistics from a fake cgroup directory.
#include "agent/cgroup_stats.h"

#include <filesystem>
#include <fstream>

#include "common/temp_dir.h"
#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

void WriteFile(const std::filesystem::path& p, const std::string& content) {
  std::ofstream(p) << content;
}

TEST(CgroupStatsTest, ParsesFakeCgroupDir) {
  absl::StatusOr<TempDir> dir = TempDir::Create("cgroup-");
  ASSERT_TRUE(dir.ok());
  const auto& d = dir->path();
  WriteFile(d / "cgroup.controllers", "cpu memory pids\n");
  WriteFile(d / "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\ncore_sched.force_idle_usec 0\n");
  WriteFile(d / "memory.current", "4096000\n");
  WriteFile(d / "memory.max", "max\n");
  WriteFile(d / "memory.stat", "anon 1024\nfile 2048\nkernel 77\n");
  WriteFile(d / "pids.current", "3\n");
  WriteFile(d / "pids.max", "50\n");
  WriteFile(d / "memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n");
  absl::StatusOr<CgroupStats> s = ReadCgroupV2Stats(d.string());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->cpu_usage_usec, 1500u);
  EXPECT_EQ(s->cpu_user_usec, 1000u);
  EXPECT_EQ(s->cpu_system_usec, 500u);
  EXPECT_EQ(s->memory_usage_bytes, 4096000u);
  EXPECT_EQ(s->memory_limit_bytes, 0u);
  EXPECT_EQ(s->memory_anon_bytes, 1024u);
  EXPECT_EQ(s->memory_file_bytes, 2048u);
  EXPECT_EQ(s->pids_current, 3u);
  EXPECT_EQ(s->pids_limit, 50u);
  EXPECT_EQ(s->oom_events, 2u);
  EXPECT_EQ(s->oom_kill_events, 1u);
  EXPECT_EQ(*ReadOomKillCount(d.string()), 1u);
}

TEST(CgroupStatsTest, MissingControllersAndErrors) {
  absl::StatusOr<TempDir> dir = TempDir::Create("cgroup-");
  ASSERT_TRUE(dir.ok());
  const auto& d = dir->path();
  // Not v2 (a cgroup v1 dir or any other dir).
  EXPECT_EQ(ReadCgroupV2Stats(d.string()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadCgroupV2Stats((d / "nope").string()).status().code(), absl::StatusCode::kNotFound);
  WriteFile(d / "cgroup.controllers", "\n");
  WriteFile(d / "cpu.stat", "usage_usec 7\n");
  absl::StatusOr<CgroupStats> s = ReadCgroupV2Stats(d.string());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->cpu_usage_usec, 7u);
  EXPECT_EQ(s->memory_usage_bytes, 0u);
  WriteFile(d / "memory.max", "garbage\n");
  EXPECT_EQ(ReadCgroupV2Stats(d.string()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseFlatKeyed("a 1\nbad\nb x\nc 3").size(), 2u);
}

}  // namespace
}  // namespace cloak::agent
