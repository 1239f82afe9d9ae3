// Hypervisor: one sandbox VM, whatever runs it (QEMU directly, or libvirt).
//
// Life cycle (an explicit state machine):
//
//   kCreated --Start--> kRunning <--Pause/Resume--> kPaused
//       |                  |                           |
//       +------------------+--- Stop / VM exits -------+--> kExited
//
// Start launches the VMM and connects its control channel; the TEE type is
// part of the launch parameters, not a different driver. Every blocking call
// takes a deadline. Implementations are thread-safe: Wait may block in one
// thread while another calls Stop. Destroying a Hypervisor stops the VM.
#ifndef CLOAK_SHIM_HYPERVISOR_HYPERVISOR_H_
#define CLOAK_SHIM_HYPERVISOR_HYPERVISOR_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/process.h"
#include "common/transport/address.h"
#include "shim/hypervisor/vm_config.h"

namespace cloak::shim::hypervisor {

enum class VmState { kCreated, kRunning, kPaused, kExited };
absl::string_view VmStateName(VmState state);

struct VmStatus {
  VmState state = VmState::kCreated;
  // The VMM's own word, when it could be asked: QEMU's query-status
  // ("prelaunch", "running", "paused", "shutdown", "guest-panicked", ...).
  std::string detail;
  pid_t pid = -1;
  // Set once the VMM process has ended and been reaped.
  std::optional<ExitInfo> exit;
};

// Something the VMM reported asynchronously.
struct VmEvent {
  std::string name;       // QEMU event name: SHUTDOWN, STOP, RESUME, GUEST_PANICKED, ...
  std::string data_json;  // its details as JSON ("null" if none)
  absl::Time timestamp;
};
// Runs on the driver's reader thread: do not block, do not call back into
// the Hypervisor from it.
using VmEventCallback = std::function<void(const VmEvent&)>;

// The agent's address for `config` once its channel is resolved (kVsock or
// kSerial, never kAuto): what Hypervisor::Agent() hands out.
transport::AgentAddress AgentAddressFor(const VmConfig& config, AgentChannel resolved);

inline constexpr absl::Duration kDefaultStopGrace = absl::Seconds(5);

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;

  // Registers the event callback; call before Start.
  virtual void SetEventCallback(VmEventCallback callback) = 0;

  // Launches the VM and connects its control channel before `deadline`.
  // FailedPrecondition if already started; DeadlineExceeded if the VMM did
  // not come up; Internal with the VMM's own error output if it exited.
  // On failure nothing is left running.
  virtual absl::Status Start(absl::Time deadline) = 0;

  // Asks the VMM to quit, waits up to `grace` for it to exit, then kills it
  // (SIGKILL) and reaps it. Returns how it ended. Idempotent: after the
  // process ended it returns that exit again.
  virtual absl::StatusOr<ExitInfo> Stop(absl::Duration grace = kDefaultStopGrace) = 0;

  // Waits for the VMM process to end on its own (guest poweroff, crash,
  // kill -9) until `deadline`; DeadlineExceeded if still running.
  virtual absl::StatusOr<ExitInfo> Wait(absl::Time deadline) = 0;

  // Freezes / thaws the guest's vCPUs. FailedPrecondition in a wrong state.
  virtual absl::Status Pause(absl::Time deadline) = 0;
  virtual absl::Status Resume(absl::Time deadline) = 0;

  // The VMM's pid, or -1 before Start / after it was reaped.
  virtual pid_t Pid() const = 0;

  // Current state, asking the VMM when it is running.
  virtual absl::StatusOr<VmStatus> Status(absl::Time deadline) = 0;

  // The guest console's last `lines` lines (control characters replaced).
  virtual std::string ConsoleTail(int lines) const = 0;

  // Where the guest agent is reached once the guest has booted: the
  // resolved channel (kVsock cid:port, or kSerial with the host end of the
  // virtio-serial port), ready for transport::CreateTransport.
  virtual transport::AgentAddress Agent() const = 0;

  // What was launched, for logs and diagnostics: QEMU's argv, or the
  // libvirt domain XML as one element.
  virtual std::vector<std::string> CommandLine() const = 0;
};

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_HYPERVISOR_H_
