#include "shim/shim_process.h"

#include <signal.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "shim/bundle.h"

namespace cloak::shim {

std::string ShimSocketDir() {
  const char* dir = std::getenv("CLOAK_SHIM_SOCKET_DIR");
  if (dir != nullptr && dir[0] == '/') return dir;
  return std::string(kDefaultSocketDir);
}

std::vector<std::string> ProcessCmdline(pid_t pid) {
  absl::StatusOr<std::string> raw = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
  if (!raw.ok()) return {};
  std::vector<std::string> words = absl::StrSplit(*raw, '\0', absl::SkipEmpty());
  return words;
}

pid_t ReadPidFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path, 64);
  int pid = -1;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pid) || pid <= 1) {
    return -1;
  }
  return pid;
}

bool ProcessMatches(pid_t pid, const std::string& binary_suffix, const std::string& must_contain) {
  if (pid <= 1) return false;
  std::vector<std::string> words = ProcessCmdline(pid);
  if (words.empty() || !absl::EndsWith(words[0], binary_suffix)) return false;
  if (must_contain.empty()) return true;
  for (const std::string& w : words) {
    if (absl::StrContains(w, must_contain)) return true;
  }
  return false;
}

bool WaitForPidGone(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    // A zombie still answers kill(0): treat it as gone.
    absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"), 4096);
    if (stat.ok()) {
      size_t close = stat->rfind(')');
      if (close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] == 'Z') {
        return true;
      }
    }
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

}  // namespace cloak::shim
