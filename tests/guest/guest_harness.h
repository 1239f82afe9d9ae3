// GuestHarness: boots the real guest image (vmlinuz + initrd.img with
// cloak-agent as PID 1) under QEMU and hands out the agent's gRPC stub, with
// no shim in between. Integration tests drive the agent API through it.
//
//   GuestOptions options;
//   options.insecure_registries = {"10.0.2.2:5000"};
//   ASSIGN_OR_RETURN(std::unique_ptr<GuestHarness> guest, GuestHarness::Boot(options));
//   RETURN_IF_ERROR(guest->CreateSandbox());
//   guest->stub().CreateContainer(...);
//
// What it boots is what the shim boots (shim/sandbox_factory.cc
// BuildVmConfig / BuildSandboxOptions): the same kernel command line, the
// virtio-serial agent channel `cloak.agent`, QEMU user-mode networking with
// the guest at 10.0.2.15/24 behind 10.0.2.2 (the host's loopback), and the
// same CreateSandbox request. Accel is always TCG. guest_harness_test.cc
// checks the two stay in step.
//
// Ownership: the harness owns the QEMU process (through QemuHypervisor) and
// a temporary state directory (sockets, console and QEMU logs). Destroying
// it stops QEMU (QMP quit, then SIGKILL by pid) and removes the directory,
// whether or not the test passed.
#ifndef CLOAK_TESTS_GUEST_GUEST_HARNESS_H_
#define CLOAK_TESTS_GUEST_GUEST_HARNESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cloak/agent/v1/agent.grpc.pb.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "shim/hypervisor/hypervisor.h"
#include "shim/hypervisor/vm_config.h"

namespace cloak::guest_test {

// TCG boots take ~5 s on an idle machine; much more when CI shares the CPU.
inline constexpr absl::Duration kDefaultGuestBootTimeout = absl::Seconds(120);
// One Health probe while the guest boots (as the shim: kHealthAttemptTimeout).
inline constexpr absl::Duration kHealthAttemptTimeout = absl::Seconds(2);
// Default deadline of one agent call made by the harness itself.
inline constexpr absl::Duration kDefaultCallTimeout = absl::Seconds(30);

// Values the shim uses (shim/sandbox_factory.h, shim/task_translate.h);
// copied, not included, so that the harness does not link the shim.
inline constexpr char kBaseKernelCmdline[] =
    "console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check net.ifnames=0";
inline constexpr char kGuestAddress[] = "10.0.2.15";
inline constexpr int kGuestPrefixLength = 24;
inline constexpr char kHostLoopbackFromGuest[] = "10.0.2.2";
inline constexpr char kGuestDns[] = "nameserver 10.0.2.3";
inline constexpr char kQemuUserNetMac[] = "52:54:00:12:34:56";

struct GuestOptions {
  // Guest image. Empty: <CLOAK_BUILD_DIR>/guest-image/{vmlinuz,initrd.img}.
  std::string kernel;
  std::string initrd;
  std::string qemu_path = "qemu-system-x86_64";
  int memory_mib = 512;
  int vcpus = 1;
  // Sandbox id (CreateSandbox, VM name) and the pod's hostname.
  std::string sandbox_id = "guest-test";
  std::string hostname = "guest-test";
  // Registries the guest may use over plain HTTP, as the guest names them
  // ("10.0.2.2:5000"): kernel parameter cloak.insecure_registries (a
  // class-level parameter; the shim passes a pod's in the init-data).
  std::vector<std::string> insecure_registries;
  // Guest agent log level (kernel parameter cloak.log).
  std::string agent_log_level = "debug";
  // Image layers the guest downloads at once (kernel parameter
  // cloak.max_downloads; the shim's image.max_concurrent_downloads).
  int max_concurrent_downloads = 3;
  // Turn the agent policy off (kernel parameter cloak.policy=allow-all, as
  // the shim's agent.allow_all_policy). Off: the pod's init-data policy, or
  // the built-in default that refuses exec and stdin writes.
  bool allow_all_policy = false;
  // From QEMU's start until the agent answers Health.
  absl::Duration boot_timeout = kDefaultGuestBootTimeout;
  // Parent of the state directory; keep it short (unix socket paths < 108).
  std::string state_parent = "/tmp";
};

// The default guest image of this build tree.
std::string DefaultKernel();
std::string DefaultInitrd();

// OK when this host can boot the guest: QEMU runs and the guest image
// exists. FailedPrecondition saying what is missing otherwise (tests skip).
absl::Status CheckCanBoot(const GuestOptions& options);

// Pure: the agent settings the harness puts on the kernel command line
// (cloak.log, cloak.max_downloads, cloak.insecure_registries), which the
// shim would take as hypervisor.kernel_params.
std::string GuestKernelParams(const GuestOptions& options);

// Pure: the VM the harness boots, with sockets and logs under `state_dir`.
shim::hypervisor::VmConfig BuildGuestVmConfig(const GuestOptions& options,
                                              const std::string& state_dir);
// Pure: the CreateSandbox request the harness sends (the shim's, field for field).
agent::v1::CreateSandboxRequest BuildCreateSandboxRequest(const GuestOptions& options);

class GuestHarness {
 public:
  // Boots the guest and waits until the agent answers Health (serving).
  // DeadlineExceeded (with the console's tail) if it does not within
  // options.boot_timeout; Aborted if QEMU exits while booting. Nothing is
  // left running on failure.
  static absl::StatusOr<std::unique_ptr<GuestHarness>> Boot(const GuestOptions& options);

  // Stops QEMU if it still runs and removes the state directory.
  ~GuestHarness();
  GuestHarness(const GuestHarness&) = delete;
  GuestHarness& operator=(const GuestHarness&) = delete;

  agent::v1::AgentService::Stub& stub() { return *stub_; }

  // Sends BuildCreateSandboxRequest(options).
  absl::Status CreateSandbox(absl::Duration timeout = kDefaultCallTimeout);

  // Sends DestroySandbox{power_off} and waits until QEMU exits on its own
  // (no quit, no signal). DeadlineExceeded if it is still running at
  // `deadline` (the destructor then kills it).
  absl::StatusOr<ExitInfo> DestroySandboxAndWaitForPowerOff(absl::Time deadline);

  // QEMU's pid, or -1 once it has ended and been reaped.
  pid_t qemu_pid() const { return hv_->Pid(); }
  // From QEMU's start to the first serving Health answer.
  absl::Duration boot_to_ready() const { return boot_to_ready_; }
  const std::string& state_dir() const { return state_dir_; }
  const GuestOptions& options() const { return options_; }
  // Last lines of the guest's serial console (the agent logs there).
  std::string ConsoleTail(int lines = 60) const { return hv_->ConsoleTail(lines); }
  shim::hypervisor::Hypervisor& hypervisor() { return *hv_; }

 private:
  GuestHarness(GuestOptions options, TempDir dir,
               std::unique_ptr<shim::hypervisor::Hypervisor> hv);
  // Replaces the channel with a fresh connection (QEMU serves one chardev
  // client at a time: the old one is dropped first).
  absl::Status Connect(absl::Time deadline);
  absl::Status WaitForAgent(absl::Time deadline);

  const GuestOptions options_;
  // Declared before hv_: destroyed after it, so QEMU is gone first.
  std::optional<TempDir> dir_;
  std::string state_dir_;
  std::unique_ptr<shim::hypervisor::Hypervisor> hv_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<agent::v1::AgentService::Stub> stub_;
  absl::Duration boot_to_ready_ = absl::ZeroDuration();
};

// A ClientContext with a deadline `timeout` from now.
std::unique_ptr<grpc::ClientContext> CallContext(absl::Duration timeout = kDefaultCallTimeout);

// grpc::Status → absl::Status, code for code, the method named.
absl::Status FromGrpc(absl::string_view method, const grpc::Status& status);

}  // namespace cloak::guest_test

#endif  // CLOAK_TESTS_GUEST_GUEST_HARNESS_H_
