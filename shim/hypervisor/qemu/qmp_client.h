// QmpClient: QEMU Machine Protocol over a unix socket (JSON lines).
//
// After the greeting and `qmp_capabilities`, a reader thread owns the read
// side: command replies are matched to callers by "id", asynchronous events
// (SHUTDOWN, STOP, RESUME, GUEST_PANICKED, ...) go to the event callback and
// to a bounded queue. Every command has a timeout. Malformed JSON from QEMU
// fails the pending commands and closes the client; it never crashes.
//
// Thread-safe: Execute may be called from several threads at once.
#ifndef CLOAK_SHIM_HYPERVISOR_QEMU_QMP_CLIENT_H_
#define CLOAK_SHIM_HYPERVISOR_QEMU_QMP_CLIENT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/fd.h"
#include "nlohmann/json.hpp"

namespace cloak::shim::hypervisor {

inline constexpr absl::Duration kDefaultQmpTimeout = absl::Seconds(5);
// Longest JSON line accepted from QEMU.
inline constexpr size_t kMaxQmpMessageBytes = 1 << 20;
// Events kept for TakeEvents() before the oldest are dropped.
inline constexpr size_t kMaxQueuedQmpEvents = 256;

struct QmpEvent {
  std::string name;       // "SHUTDOWN", "STOP", "RESUME", "GUEST_PANICKED", ...
  nlohmann::json data;    // the event's "data" member (null if absent)
  absl::Time timestamp;   // from QEMU's "timestamp"
};

// Called on the reader thread. Must not block and must not call back into
// the client (its reply could only be read by this same thread).
using QmpEventCallback = std::function<void(const QmpEvent&)>;

struct QmpStatus {
  std::string status;  // "prelaunch", "running", "paused", "shutdown", ...
  bool running = false;
};

class QmpClient {
 public:
  // Connects to `socket_path`, retrying while the socket is absent or
  // refuses (QEMU still starting) until `deadline`; then reads the greeting
  // and negotiates capabilities. `keep_trying`, if set, is asked between
  // attempts; returning an error stops early with it (e.g. QEMU exited).
  static absl::StatusOr<std::unique_ptr<QmpClient>> Connect(
      const std::string& socket_path, absl::Time deadline, QmpEventCallback on_event = nullptr,
      std::function<absl::Status()> keep_trying = nullptr);
  // The same over an already connected stream socket (tests: a socketpair).
  static absl::StatusOr<std::unique_ptr<QmpClient>> FromFd(UniqueFd fd, std::string name,
                                                           absl::Time deadline,
                                                           QmpEventCallback on_event = nullptr);

  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;
  ~QmpClient();

  // Sends {"execute": command, "arguments": arguments} and returns the
  // "return" member. QEMU's {"error": ...} becomes a status carrying its
  // class and description (GenericError → FailedPrecondition,
  // CommandNotFound → Unimplemented, others Internal); no answer within
  // `timeout` → DeadlineExceeded; connection lost → Unavailable; malformed
  // JSON from QEMU → DataLoss.
  absl::StatusOr<nlohmann::json> Execute(absl::string_view command,
                                         const nlohmann::json& arguments = nullptr,
                                         absl::Duration timeout = kDefaultQmpTimeout);

  absl::StatusOr<QmpStatus> QueryStatus(absl::Duration timeout = kDefaultQmpTimeout);
  absl::Status Stop(absl::Duration timeout = kDefaultQmpTimeout);
  absl::Status Cont(absl::Duration timeout = kDefaultQmpTimeout);
  // Asks QEMU to exit. A connection closed before the reply counts as done.
  absl::Status Quit(absl::Duration timeout = kDefaultQmpTimeout);
  // ACPI power button: the guest decides whether to shut down.
  absl::Status SystemPowerdown(absl::Duration timeout = kDefaultQmpTimeout);

  // Removes and returns the queued events (oldest first).
  std::deque<QmpEvent> TakeEvents();
  // Waits until an event named `name` is queued (and takes it), or deadline.
  absl::StatusOr<QmpEvent> WaitForEvent(absl::string_view name, absl::Time deadline);

  // OK while connected; else why the connection ended.
  absl::Status Health() const;
  // The greeting's QEMU version, e.g. "7.2.22".
  const std::string& qemu_version() const { return qemu_version_; }
  const std::string& name() const { return name_; }

 private:
  struct Pending {
    std::string command;
    std::optional<absl::StatusOr<nlohmann::json>> result;
  };

  QmpClient(UniqueFd fd, std::string name, QmpEventCallback on_event)
      : fd_(std::move(fd)), name_(std::move(name)), on_event_(std::move(on_event)) {}

  absl::Status Handshake(absl::Time deadline);
  // Reads one line (without the newline) before `deadline`; used before the
  // reader thread starts and by it (with an infinite deadline).
  absl::StatusOr<std::string> ReadLine(absl::Time deadline);
  absl::Status SendLine(const std::string& line, absl::Time deadline);
  void ReaderLoop();
  void Dispatch(const nlohmann::json& message);
  void CloseWith(absl::Status why);

  UniqueFd fd_;
  const std::string name_;
  const QmpEventCallback on_event_;
  std::string qemu_version_;
  std::string read_buffer_;  // only the handshake, then the reader thread
  std::thread reader_;

  absl::Mutex write_mu_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Pending*> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<QmpEvent> events_ ABSL_GUARDED_BY(mu_);
  absl::Status closed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_QEMU_QMP_CLIENT_H_
