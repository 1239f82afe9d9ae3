// Reaper: the only place in the agent that calls waitpid(). As PID 1 (or a
// child subreaper on a host) the agent inherits every orphan, so all child
// statuses arrive here and are dispatched by pid: to a callback registered
// with OnExit(), to a Wait()er, or kept (bounded) until someone claims them.
//
// Spawn() forks under the reaper's lock, so a child's status can never be
// reaped before the pid is known. Statuses carry a sequence number; a claim
// for a pid read from a pid file passes the sequence taken before the crun
// call that created it (Mark()), so a stale status of a recycled pid is
// never delivered.
#ifndef CLOAK_AGENT_REAPER_H_
#define CLOAK_AGENT_REAPER_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cloak::agent {

// Exit status as containerd reports it: the exit code, or 128+N for signal N.
int ExitStatusFromWaitStatus(int wait_status);

struct ExitRecord {
  int wait_status = 0;
  int exit_status = 0;  // ExitStatusFromWaitStatus(wait_status)
  absl::Time time;
  uint64_t sequence = 0;
};

struct ChildSpec {
  // argv[0] must be an absolute path (no PATH lookup after fork).
  std::vector<std::string> argv;
  // Full environment; empty means the agent's own.
  std::vector<std::string> env;
  // Fds for the child's 0, 1, 2; -1 means /dev/null.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  std::string cwd;
};

class Reaper {
 public:
  // Installs the SIGCHLD handler and starts the reaping thread. At most one
  // Reaper may exist in a process. Not PID 1: also makes the process a child
  // subreaper when `subreaper` is set.
  static absl::StatusOr<std::unique_ptr<Reaper>> Start(bool subreaper);
  ~Reaper();
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  // Forks and execs `spec`. The pid's status is kept for Wait()/OnExit().
  absl::StatusOr<pid_t> Spawn(const ChildSpec& spec);

  // Current sequence number: statuses reaped after this call have a larger one.
  uint64_t Mark();

  // Waits for `pid`'s status (reaped after `after`) until `deadline`;
  // DeadlineExceeded if it has not come. The status is consumed.
  absl::StatusOr<ExitRecord> Wait(pid_t pid, uint64_t after, absl::Time deadline);

  // Calls `callback` (on the reaper thread, or right now if the status is
  // already here) once `pid` (reaped after `after`) exits. The callback must
  // be quick and must not call back into the Reaper.
  void OnExit(pid_t pid, uint64_t after, std::function<void(const ExitRecord&)> callback);

  // Drops interest in `pid` (a callback not yet called is discarded).
  void Forget(pid_t pid);

  // Runs `argv` to completion with stdout+stderr captured (at most
  // `max_output` bytes kept), stdin from /dev/null. On timeout the child is
  // SIGKILLed and DeadlineExceeded returned.
  struct RunResult {
    int exit_status = 0;
    std::string output;
  };
  absl::StatusOr<RunResult> Run(const std::vector<std::string>& argv, absl::Duration timeout,
                                size_t max_output = 1 << 20);

 private:
  Reaper() = default;
  void Loop();
  void ReapAll();

  absl::Mutex mu_;
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Statuses nobody has claimed yet (bounded; oldest dropped first).
  absl::flat_hash_map<pid_t, ExitRecord> exited_ ABSL_GUARDED_BY(mu_);
  struct Watch {
    uint64_t after;
    std::function<void(const ExitRecord&)> callback;
  };
  absl::flat_hash_map<pid_t, Watch> watches_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_REAPER_H_
