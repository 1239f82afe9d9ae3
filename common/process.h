// Subprocess: a child process owned by its creator. If still running when
// destroyed, it is sent SIGTERM, given a grace period, then SIGKILL, and is
// always reaped, so no test or component leaves processes behind.
#ifndef CLOAK_COMMON_PROCESS_H_
#define CLOAK_COMMON_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cloak {

struct SpawnOptions {
  // Extra "KEY=VALUE" entries; the parent's environment is inherited.
  std::vector<std::string> env;
  // Working directory; empty keeps the parent's.
  std::string cwd;
  // Paths the child's stdout / stderr are appended to; empty: /dev/null.
  // The same path for both shares one file description.
  std::string stdout_path;
  std::string stderr_path;
  // Fds to pass: child fd 3, 4, ... in order (kept open across exec).
  std::vector<int> extra_fds;
  // Put the child into its own process group.
  bool new_process_group = true;
  // Grace period between SIGTERM and SIGKILL when destroyed running.
  absl::Duration stop_grace = absl::Seconds(5);
};

// How a process ended, in containerd's terms.
struct ExitInfo {
  int exit_code = 0;    // exit status, or 128+N for signal N
  int term_signal = 0;  // N if killed by a signal, else 0
};

class Subprocess {
 public:
  // Starts argv[0] (looked up in PATH) with the given options.
  static absl::StatusOr<Subprocess> Spawn(const std::vector<std::string>& argv,
                                          const SpawnOptions& options = {});

  Subprocess(Subprocess&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)),
        grace_(other.grace_),
        exit_(std::move(other.exit_)),
        name_(std::move(other.name_)) {}
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // Non-blocking: the exit, if the process has ended.
  std::optional<ExitInfo> Poll();
  // Waits up to `timeout`; DeadlineExceeded if still running.
  absl::StatusOr<ExitInfo> Wait(absl::Duration timeout = absl::InfiniteDuration());
  // Sends `sig`; OK if the process already ended.
  absl::Status Signal(int sig);
  // SIGTERM, wait up to `grace`, SIGKILL, reap.
  ExitInfo Stop(absl::Duration grace);

 private:
  Subprocess(pid_t pid, absl::Duration grace, std::string name)
      : pid_(pid), grace_(grace), name_(std::move(name)) {}
  pid_t pid_ = -1;
  absl::Duration grace_;
  std::optional<ExitInfo> exit_;
  std::string name_;
};

// Converts a waitpid() status to containerd's exit code convention.
ExitInfo ExitInfoFromWaitStatus(int wait_status);

// Runs argv to completion (at most `timeout`, then stopped) and returns its
// standard output. A non-zero exit is Internal, quoting the command and its
// standard error; DeadlineExceeded when it ran too long.
absl::StatusOr<std::string> RunForOutput(const std::vector<std::string>& argv,
                                         absl::Duration timeout);

}  // namespace cloak

#endif  // CLOAK_COMMON_PROCESS_H_
