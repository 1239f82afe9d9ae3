// crun, the OCI runtime inside the guest, driven as a subprocess. Every call
// runs through the Reaper and has a deadline. Argument lists are built by
// pure functions (tested), the calls are thin.
#ifndef CLOAK_AGENT_CRUN_H_
#define CLOAK_AGENT_CRUN_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/reaper.h"

namespace cloak::agent {

inline constexpr absl::Duration kDefaultCrunTimeout = absl::Seconds(30);

struct CrunOptions {
  // Absolute path of the crun binary.
  std::string binary = "/usr/bin/crun";
  // crun's state directory (--root).
  std::string state_root = "/run/cloak/crun";
  // Pass --no-pivot to create (needed when / is the initramfs).
  bool no_pivot = false;
  absl::Duration timeout = kDefaultCrunTimeout;
};

// Where the created process's stdio goes, and the console socket for a tty.
struct CrunStdio {
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  std::string console_socket;
};

// Whether "/" is an initramfs (rootfs/ramfs/tmpfs), where pivot_root fails.
bool RootIsInitramfs();

class Crun {
 public:
  Crun(CrunOptions options, Reaper* reaper) : options_(std::move(options)), reaper_(reaper) {}

  // Pure argument builders.
  std::vector<std::string> GlobalArgs(const std::string& log_file) const;
  std::vector<std::string> CreateArgs(const std::string& id, const std::string& bundle,
                                      const std::string& pid_file, const std::string& log_file,
                                      const std::string& console_socket) const;
  std::vector<std::string> ExecArgs(const std::string& id, const std::string& process_file,
                                    const std::string& pid_file, const std::string& log_file,
                                    const std::string& console_socket) const;
  std::vector<std::string> KillArgs(const std::string& id, int signal, bool all) const;

  // `crun create`: the init process is left waiting for Start(). Returns
  // the init pid (read from the pid file). `console_received` is called
  // while crun runs for a terminal (it receives the pty master) and must
  // return once crun sent it or `crun_done()` turns true.
  struct Launch {
    pid_t pid = 0;
    uint64_t mark = 0;  // Reaper::Mark() before crun ran
  };
  absl::StatusOr<Launch> Create(const std::string& id, const std::string& bundle,
                                const CrunStdio& stdio,
                                const std::function<absl::Status(const std::function<bool()>&)>&
                                    receive_console);
  absl::Status Start(const std::string& id);
  // `crun exec --detach --process <file>`.
  absl::StatusOr<Launch> Exec(const std::string& id, const std::string& bundle,
                              const std::string& process_file, const std::string& exec_id,
                              const CrunStdio& stdio,
                              const std::function<absl::Status(const std::function<bool()>&)>&
                                  receive_console);
  absl::Status Kill(const std::string& id, int signal, bool all);
  absl::Status Pause(const std::string& id);
  absl::Status Resume(const std::string& id);
  absl::Status Delete(const std::string& id, bool force);
  absl::Status Update(const std::string& id, const std::string& resources_file);
  // Pids of the container's processes (`crun ps --format json`).
  absl::StatusOr<std::vector<pid_t>> Ps(const std::string& id);

  const CrunOptions& options() const { return options_; }

 private:
  absl::StatusOr<std::string> RunSimple(std::vector<std::string> args);
  absl::StatusOr<Launch> Launch_(std::vector<std::string> args, const std::string& what,
                                 const std::string& pid_file, const std::string& log_file,
                                 const CrunStdio& stdio,
                                 const std::function<absl::Status(const std::function<bool()>&)>&
                                     receive_console);

  CrunOptions options_;
  Reaper* reaper_;
};

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_CRUN_H_
