#include "agent/cgroup_stats.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/fd.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace cloak::agent {

absl::flat_hash_map<std::string, uint64_t> ParseFlatKeyed(absl::string_view content) {
  absl::flat_hash_map<std::string, uint64_t> out;
  for (absl::string_view line : absl::StrSplit(content, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (parts.size() != 2) continue;
    uint64_t value = 0;
    if (!absl::SimpleAtoi(parts[1], &value)) continue;
    out[std::string(parts[0])] = value;
  }
  return out;
}

absl::StatusOr<uint64_t> ParseSingleValue(absl::string_view content) {
  absl::string_view v = absl::StripAsciiWhitespace(content);
  if (v == "max") return 0;
  uint64_t value = 0;
  if (!absl::SimpleAtoi(v, &value)) {
    return absl::InvalidArgumentError(absl::StrCat("not a cgroup value: '", v.substr(0, 32), "'"));
  }
  return value;
}

namespace {

constexpr size_t kMaxCgroupFile = 256 * 1024;

// Reads `dir`/`name`; an absent file (controller not enabled) reads as "".
absl::StatusOr<std::string> ReadOptional(const std::string& dir, absl::string_view name) {
  std::string path = absl::StrCat(dir, "/", name);
  absl::StatusOr<std::string> content = ReadFile(path, kMaxCgroupFile, Symlinks::kRefuse);
  if (absl::IsNotFound(content.status())) return std::string();
  return content;
}

absl::StatusOr<uint64_t> ReadOptionalValue(const std::string& dir, absl::string_view name) {
  ASSIGN_OR_RETURN(std::string content, ReadOptional(dir, name));
  if (content.empty()) return 0;
  absl::StatusOr<uint64_t> v = ParseSingleValue(content);
  if (!v.ok()) return Annotate(v.status(), absl::StrCat(dir, "/", name));
  return v;
}

uint64_t Get(const absl::flat_hash_map<std::string, uint64_t>& m, const char* key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

}  // namespace

absl::StatusOr<CgroupStats> ReadCgroupV2Stats(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoError(errno, "cgroup directory ", dir);
  std::string controllers = absl::StrCat(dir, "/cgroup.controllers");
  if (::access(controllers.c_str(), F_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " is not a cgroup v2 directory (no cgroup.controllers)"));
  }
  CgroupStats s;
  ASSIGN_OR_RETURN(std::string cpu, ReadOptional(dir, "cpu.stat"));
  auto cpu_stat = ParseFlatKeyed(cpu);
  s.cpu_usage_usec = Get(cpu_stat, "usage_usec");
  s.cpu_user_usec = Get(cpu_stat, "user_usec");
  s.cpu_system_usec = Get(cpu_stat, "system_usec");
  ASSIGN_OR_RETURN(s.memory_usage_bytes, ReadOptionalValue(dir, "memory.current"));
  ASSIGN_OR_RETURN(s.memory_limit_bytes, ReadOptionalValue(dir, "memory.max"));
  ASSIGN_OR_RETURN(std::string mem, ReadOptional(dir, "memory.stat"));
  auto mem_stat = ParseFlatKeyed(mem);
  s.memory_anon_bytes = Get(mem_stat, "anon");
  s.memory_file_bytes = Get(mem_stat, "file");
  ASSIGN_OR_RETURN(s.pids_current, ReadOptionalValue(dir, "pids.current"));
  ASSIGN_OR_RETURN(s.pids_limit, ReadOptionalValue(dir, "pids.max"));
  ASSIGN_OR_RETURN(std::string events, ReadOptional(dir, "memory.events"));
  auto mem_events = ParseFlatKeyed(events);
  s.oom_events = Get(mem_events, "oom");
  s.oom_kill_events = Get(mem_events, "oom_kill");
  return s;
}

absl::StatusOr<uint64_t> ReadOomKillCount(const std::string& dir) {
  ASSIGN_OR_RETURN(std::string events, ReadOptional(dir, "memory.events"));
  return Get(ParseFlatKeyed(events), "oom_kill");
}

}  // namespace cloak::agent
