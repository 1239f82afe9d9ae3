// The guest console log and the boot deadline.
//
// QEMU writes the guest's serial console to VmConfig::console_log_path (in
// the sandbox state dir). When a boot step misses its deadline, the error
// quotes the console's last lines, which is nearly always what explains it
// (kernel panic, missing init, agent crash).
#ifndef CLOAK_SHIM_HYPERVISOR_CONSOLE_LOG_H_
#define CLOAK_SHIM_HYPERVISOR_CONSOLE_LOG_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cloak::shim::hypervisor {

class Hypervisor;

inline constexpr int kBootErrorConsoleLines = 20;

// The last `lines` lines of the file at `path` (reads at most its last
// 64 KiB). Carriage returns and ANSI escape sequences are dropped, other
// control characters become '?'. "" if the file is missing or empty.
std::string ReadConsoleTail(const std::string& path, int lines);

// A boot deadline tied to a console log.
//
//   BootDeadline boot(config.boot_timeout, config.console_log_path);
//   RETURN_IF_ERROR(hv->Start(boot.deadline()));
//   RETURN_IF_ERROR(boot.WaitFor(*hv, "the agent to answer", [&] { return Ping(); }));
class BootDeadline {
 public:
  BootDeadline(absl::Duration timeout, std::string console_log_path)
      : start_(absl::Now()), timeout_(timeout), console_log_path_(std::move(console_log_path)) {}

  absl::Time deadline() const { return start_ + timeout_; }
  bool Expired() const { return absl::Now() >= deadline(); }
  absl::Duration Elapsed() const { return absl::Now() - start_; }

  // DeadlineExceeded: "<waiting_for> did not happen within <timeout> of the
  // VM's start; last N lines of the console (<path>):\n..."
  absl::Status Exceeded(absl::string_view waiting_for) const;

  // Polls `ready` (every 50 ms to 250 ms) until it returns true, it fails,
  // the VM exits (Aborted, with the exit and console tail), or the deadline
  // passes (Exceeded(waiting_for)).
  absl::Status WaitFor(Hypervisor& hypervisor, absl::string_view waiting_for,
                       const std::function<absl::StatusOr<bool>()>& ready) const;

 private:
  std::string Tail() const;

  absl::Time start_;
  absl::Duration timeout_;
  std::string console_log_path_;
};

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_CONSOLE_LOG_H_
