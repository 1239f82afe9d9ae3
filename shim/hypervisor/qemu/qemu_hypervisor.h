// QemuHypervisor: runs one VM as a QEMU child process (never -daemonize: we
// own and reap the process) controlled over QMP.
#ifndef CLOAK_SHIM_HYPERVISOR_QEMU_QEMU_HYPERVISOR_H_
#define CLOAK_SHIM_HYPERVISOR_QEMU_QEMU_HYPERVISOR_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/process.h"
#include "shim/hypervisor/host_capabilities.h"
#include "shim/hypervisor/hypervisor.h"
#include "shim/hypervisor/qemu/qmp_client.h"
#include "shim/hypervisor/vm_config.h"

namespace cloak::shim::hypervisor {

// QMP timeout for quit during Stop before falling back to SIGKILL.
inline constexpr absl::Duration kQmpQuitTimeout = absl::Seconds(2);

class QemuHypervisor final : public Hypervisor {
 public:
  // Validates the config, resolves accel and channel (logging why), checks
  // the TEE against the host, checks that kernel, initrd and firmware exist
  // and builds the command line. Nothing is started.
  //   InvalidArgument   a config value is wrong (the message names the key)
  //   NotFound          kernel / initrd / firmware / QEMU binary missing
  //   FailedPrecondition the host or QEMU cannot provide the TEE / accel /
  //                     channel asked for
  static absl::StatusOr<std::unique_ptr<Hypervisor>> Create(const VmConfig& config,
                                                            const HostCapabilities& caps);

  ~QemuHypervisor() override;

  void SetEventCallback(VmEventCallback callback) override;
  absl::Status Start(absl::Time deadline) override;
  absl::StatusOr<ExitInfo> Stop(absl::Duration grace) override;
  absl::StatusOr<ExitInfo> Wait(absl::Time deadline) override;
  absl::Status Pause(absl::Time deadline) override;
  absl::Status Resume(absl::Time deadline) override;
  pid_t Pid() const override;
  absl::StatusOr<VmStatus> Status(absl::Time deadline) override;
  std::string ConsoleTail(int lines) const override;
  transport::AgentAddress Agent() const override;
  std::vector<std::string> CommandLine() const override { return args_; }

 private:
  QemuHypervisor(VmConfig config, std::vector<std::string> args, transport::AgentAddress agent,
                 std::string vmm_log_path);

  // Reaps the process if it ended; returns its exit. Needs process_mu_.
  std::optional<ExitInfo> PollLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(process_mu_);
  std::optional<ExitInfo> PollExit();
  // QMP client if connected and the process still runs; else the reason.
  absl::StatusOr<QmpClient*> Qmp();
  void OnQmpEvent(const QmpEvent& event);
  std::string VmmLogTail() const;

  const VmConfig config_;
  const std::vector<std::string> args_;
  const transport::AgentAddress agent_;
  const std::string vmm_log_path_;

  // Serialises Start / Stop / Pause / Resume against each other.
  absl::Mutex op_mu_ ABSL_ACQUIRED_BEFORE(process_mu_);
  mutable absl::Mutex process_mu_;
  std::optional<Subprocess> process_ ABSL_GUARDED_BY(process_mu_);
  std::optional<ExitInfo> exit_ ABSL_GUARDED_BY(process_mu_);
  pid_t pid_ ABSL_GUARDED_BY(process_mu_) = -1;
  VmState state_ ABSL_GUARDED_BY(process_mu_) = VmState::kCreated;
  VmEventCallback on_event_ ABSL_GUARDED_BY(process_mu_);
  // Created in Start, reset in Stop; only touched with op_mu_ held, except
  // for reads through Qmp() which also hold op_mu_.
  std::unique_ptr<QmpClient> qmp_ ABSL_GUARDED_BY(op_mu_);
};

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_QEMU_QEMU_HYPERVISOR_H_
