// Small process-level helpers shared by the shim's subcommands.
#ifndef CLOAK_SHIM_SHIM_PROCESS_H_
#define CLOAK_SHIM_SHIM_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace cloak::shim {

// Where shim sockets go: kDefaultSocketDir, or $CLOAK_SHIM_SOCKET_DIR (tests
// running without a system containerd).
std::string ShimSocketDir();

// The NUL-separated words of /proc/<pid>/cmdline; empty if the process is
// gone.
std::vector<std::string> ProcessCmdline(pid_t pid);

// A pid read from a file holding a decimal number; -1 if unreadable.
pid_t ReadPidFile(const std::string& path);

// True if `pid` runs an executable whose argv[0] ends in `binary_suffix`
// and (when `must_contain` is non-empty) one of whose words contains it.
bool ProcessMatches(pid_t pid, const std::string& binary_suffix, const std::string& must_contain);

// Waits up to `timeout` for `pid` to disappear (kill(pid, 0) fails).
bool WaitForPidGone(pid_t pid, absl::Duration timeout);

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_SHIM_PROCESS_H_
