// The guest console log and the boot deadline.
//
// QEMU writes the guest's serial console to VmConfig::console_log_path (in
// the sandbox state dir). When a boot step misses its deadline, the error
// quotes the console's last lines, which is nearly always what explains it
// (kernel panic, missing init, agent crash).
#ifndef CLOAK_SHIM_HYPERVISOR_CONSOLE_LOG_H_
#define CLOAK_SHIM_HYPERVISOR_CONSOLE_LOG_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace cloak::shim::hypervisor {

class Hypervisor;

inline constexpr int kBootErrorConsoleLines = 20;
// hypervisor.console_log_max_bytes' default.
inline constexpr int64_t kDefaultConsoleLogMaxBytes = 1 << 20;

// The last `lines` lines of the file at `path` (reads at most its last
// 64 KiB), preceded by lines of its rotated predecessor `<path>.1` when
// `path` alone holds fewer. Carriage returns and ANSI escape sequences are
// dropped, other control characters become '?'. "" if both are missing or
// empty.
std::string ReadConsoleTail(const std::string& path, int lines);

// Keeps a console log bounded and hands its lines to the shim's log.
//
// The VMM appends the guest console to `path` (QEMU's file chardev with
// append=on, libvirt's <log append='on'>). A thread reads what was added
// every poll interval and passes each complete line (sanitized as
// ReadConsoleTail does; a line longer than 4 KiB is cut there) to
// `on_line`. Once the file reaches `max_bytes`, it is rotated: its content
// replaces `<path>.1` and the file is truncated to zero, so the VMM's next
// append starts it again. Both files together hold at most about
// 2 × max_bytes. Bytes the VMM appends between the last read and the
// truncation (microseconds) are lost.
//
// Stop() (or the destructor) reads what is left, flushes a partial last
// line and joins the thread; the files stay.
class ConsoleLogPump {
 public:
  ConsoleLogPump(std::string path, int64_t max_bytes,
                 std::function<void(absl::string_view line)> on_line,
                 absl::Duration poll_interval = absl::Milliseconds(250));
  ~ConsoleLogPump();
  ConsoleLogPump(const ConsoleLogPump&) = delete;
  ConsoleLogPump& operator=(const ConsoleLogPump&) = delete;

  void Stop();
  // Rotations done so far.
  int rotations() const { return rotations_.load(); }

  // One step: reads what was appended, passes lines on, rotates if the file
  // is at its cap. What the thread runs each interval (exposed for tests).
  void PollOnce();

 private:
  void Emit(absl::string_view raw, bool flush) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const int64_t max_bytes_;
  const std::function<void(absl::string_view)> on_line_;
  const absl::Duration poll_interval_;
  absl::Mutex mu_;
  int64_t offset_ ABSL_GUARDED_BY(mu_) = 0;
  std::string partial_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> rotations_{0};
  absl::Notification stop_;
  std::atomic<bool> stopped_{false};
  std::thread thread_;
};

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
