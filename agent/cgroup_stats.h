// cgroup v2 statistics of one container, read from its cgroup directory.
// Pure parsing over a directory path, so tests use a fake directory.
#ifndef CLOAK_AGENT_CGROUP_STATS_H_
#define CLOAK_AGENT_CGROUP_STATS_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::agent {

struct CgroupStats {
  uint64_t cpu_usage_usec = 0;
  uint64_t cpu_user_usec = 0;
  uint64_t cpu_system_usec = 0;
  uint64_t memory_usage_bytes = 0;
  uint64_t memory_limit_bytes = 0;  // 0 = unlimited ("max")
  uint64_t memory_anon_bytes = 0;
  uint64_t memory_file_bytes = 0;
  uint64_t pids_current = 0;
  uint64_t pids_limit = 0;  // 0 = unlimited ("max")
  uint64_t oom_events = 0;
  uint64_t oom_kill_events = 0;
};

// Parses a flat-keyed cgroup file ("key value\n" lines, as cpu.stat,
// memory.stat, memory.events). Lines that do not parse are skipped.
absl::flat_hash_map<std::string, uint64_t> ParseFlatKeyed(absl::string_view content);

// Parses a single-value file ("123\n" or "max\n" → 0). InvalidArgument
// otherwise.
absl::StatusOr<uint64_t> ParseSingleValue(absl::string_view content);

// Reads the statistics of the cgroup v2 directory `dir`. FailedPrecondition
// if `dir` is not a cgroup v2 directory (no cgroup.controllers), NotFound if
// it does not exist. Files of controllers that are not enabled count as 0.
absl::StatusOr<CgroupStats> ReadCgroupV2Stats(const std::string& dir);

// Reads the oom_kill counter of `dir`/memory.events (0 if absent).
absl::StatusOr<uint64_t> ReadOomKillCount(const std::string& dir);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_CGROUP_STATS_H_
