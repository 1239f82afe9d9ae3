#include "shim/hypervisor/qemu/qemu_hypervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "shim/hypervisor/console_log.h"
#include "shim/hypervisor/qemu/qemu_args.h"

namespace cloak::shim::hypervisor {
namespace {

constexpr int kVmmLogLinesInErrors = 10;
constexpr absl::Duration kDestructorStopGrace = absl::Seconds(2);
constexpr absl::Duration kStartupExitGrace = absl::Milliseconds(500);

absl::Status CheckFileExists(absl::string_view key, const std::string& path,
                             absl::string_view hint) {
  if (path.empty()) return absl::OkStatus();
  if (::access(path.c_str(), R_OK) == 0) return absl::OkStatus();
  const int err = errno;
  if (err == ENOENT) {
    return absl::NotFoundError(absl::StrCat(key, " ", path, " does not exist: ", hint));
  }
  return ErrnoError(err, key, " ", path, " cannot be read");
}

std::string Describe(const ExitInfo& exit) {
  if (exit.term_signal != 0) return absl::StrCat("killed by signal ", exit.term_signal);
  return absl::StrCat("exit code ", exit.exit_code);
}

// Polls `poll` until it yields a value or `deadline` passes.
template <typename F>
std::optional<ExitInfo> PollUntil(F poll, absl::Time deadline) {
  absl::Duration sleep = absl::Milliseconds(2);
  while (true) {
    if (std::optional<ExitInfo> e = poll()) return e;
    const absl::Time now = absl::Now();
    if (now >= deadline) return std::nullopt;
    absl::SleepFor(std::min(sleep, deadline - now));
    sleep = std::min(sleep * 2, absl::Milliseconds(50));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Hypervisor>> QemuHypervisor::Create(const VmConfig& config,
                                                                   const HostCapabilities& caps) {
  auto log = Logger("hypervisor");
  if (!caps.qemu.found) {
    return absl::NotFoundError(absl::StrCat("QEMU is not usable: ", caps.qemu.error,
                                            ": install qemu-system-x86 or set the QEMU path"));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> args, BuildQemuArgs(config, caps));
  RETURN_IF_ERROR(CheckFileExists("kernel", config.kernel,
                                  "install the guest image or set the kernel path"));
  RETURN_IF_ERROR(CheckFileExists("initrd", config.initrd,
                                  "install the guest image or set the initrd path"));
  RETURN_IF_ERROR(CheckFileExists("firmware", config.firmware, "set the firmware path"));
  ASSIGN_OR_RETURN(AccelChoice accel, ResolveAccel(config, caps));
  ASSIGN_OR_RETURN(ChannelChoice channel, ResolveChannel(config, caps));
  log->info("vm {}: accel {}: {}", config.name, std::string(AccelName(accel.accel)),
            accel.reason);
  log->info("vm {}: agent channel {}: {}", config.name,
            std::string(AgentChannelName(channel.channel)), channel.reason);

  transport::AgentAddress agent = AgentAddressFor(config, channel.channel);
  std::string vmm_log = config.vmm_log_path;
  if (vmm_log.empty()) {
    vmm_log = (std::filesystem::path(config.console_log_path).parent_path() / "qemu.log").string();
  }
  return std::unique_ptr<Hypervisor>(
      new QemuHypervisor(config, std::move(args), std::move(agent), std::move(vmm_log)));
}

QemuHypervisor::QemuHypervisor(VmConfig config, std::vector<std::string> args,
                               transport::AgentAddress agent, std::string vmm_log_path)
    : config_(std::move(config)),
      args_(std::move(args)),
      agent_(std::move(agent)),
      vmm_log_path_(std::move(vmm_log_path)) {}

QemuHypervisor::~QemuHypervisor() {
  bool running;
  {
    absl::MutexLock lock(&process_mu_);
    running = process_.has_value() && !exit_.has_value();
  }
  if (running) (void)Stop(kDestructorStopGrace);
  absl::MutexLock op(&op_mu_);
  qmp_.reset();
}

void QemuHypervisor::SetEventCallback(VmEventCallback callback) {
  absl::MutexLock lock(&process_mu_);
  on_event_ = std::move(callback);
}

std::optional<ExitInfo> QemuHypervisor::PollLocked() {
  if (exit_ || !process_) return exit_;
  if (std::optional<ExitInfo> e = process_->Poll()) {
    exit_ = e;
    Logger("hypervisor")->info("vm {}: QEMU pid {} ended: {}", config_.name, pid_, Describe(*e));
    pid_ = -1;
    state_ = VmState::kExited;
  }
  return exit_;
}

std::optional<ExitInfo> QemuHypervisor::PollExit() {
  absl::MutexLock lock(&process_mu_);
  return PollLocked();
}

std::string QemuHypervisor::VmmLogTail() const {
  std::string tail = ReadConsoleTail(vmm_log_path_, kVmmLogLinesInErrors);
  if (tail.empty()) return absl::StrCat("(QEMU wrote nothing to ", vmm_log_path_, ")");
  return absl::StrCat("QEMU said (", vmm_log_path_, "):\n", tail);
}

void QemuHypervisor::OnQmpEvent(const QmpEvent& event) {
  VmEventCallback callback;
  {
    absl::MutexLock lock(&process_mu_);
    if (state_ == VmState::kRunning && event.name == "STOP") state_ = VmState::kPaused;
    if (state_ == VmState::kPaused && event.name == "RESUME") state_ = VmState::kRunning;
    callback = on_event_;
  }
  auto log = Logger("hypervisor");
  if (event.name == "GUEST_PANICKED" || event.name == "GUEST_CRASHLOADED") {
    log->warn("vm {}: guest panicked: {}", config_.name, event.data.dump());
  } else {
    log->debug("vm {}: QMP event {}", config_.name, event.name);
  }
  if (callback) callback(VmEvent{event.name, event.data.dump(), event.timestamp});
}

absl::Status QemuHypervisor::Start(absl::Time deadline) {
  absl::MutexLock op(&op_mu_);
  auto log = Logger("hypervisor");
  {
    absl::MutexLock lock(&process_mu_);
    if (state_ != VmState::kCreated) {
      return absl::FailedPreconditionError(
          absl::StrCat("vm ", config_.name, " was already started (state ", VmStateName(state_),
                       "): a Hypervisor runs one VM once; create a new one"));
    }
  }
  // Stale sockets from an earlier run would only confuse the connect loop.
  ::unlink(config_.qmp_socket_path.c_str());
  if (agent_.kind == transport::AgentAddress::Kind::kSerial) ::unlink(agent_.path.c_str());
  {
    UniqueFd truncate(
        ::open(vmm_log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    if (!truncate) return ErrnoError(errno, "create QEMU log ", vmm_log_path_);
  }
  SpawnOptions options;
  options.stdout_path = vmm_log_path_;
  options.stderr_path = vmm_log_path_;
  options.stop_grace = absl::Seconds(1);
  for (const VmConfig::TapNic& tap : config_.taps) options.extra_fds.push_back(tap.fd);
  const absl::Time started = absl::Now();
  absl::StatusOr<Subprocess> spawned = Subprocess::Spawn(args_, options);
  if (!spawned.ok()) {
    return Annotate(spawned.status(), absl::StrCat("start QEMU for vm ", config_.name));
  }
  pid_t pid = spawned->pid();
  {
    absl::MutexLock lock(&process_mu_);
    process_.emplace(std::move(*spawned));
    pid_ = pid;
    state_ = config_.start_paused ? VmState::kPaused : VmState::kRunning;
  }
  log->info("vm {}: started QEMU pid {}: {}", config_.name, pid, QemuArgsToString(args_));

  auto exited_error = [&](const ExitInfo& exit) {
    return absl::InternalError(absl::StrCat("QEMU for vm ", config_.name, " (pid ", pid,
                                            ") ended during startup with ", Describe(exit), "; ",
                                            VmmLogTail()));
  };
  absl::StatusOr<std::unique_ptr<QmpClient>> qmp = QmpClient::Connect(
      config_.qmp_socket_path, deadline, [this](const QmpEvent& e) { OnQmpEvent(e); },
      [&]() -> absl::Status {
        if (std::optional<ExitInfo> e = PollExit()) return exited_error(*e);
        return absl::OkStatus();
      });
  if (!qmp.ok()) {
    absl::Status error = qmp.status();
    // QEMU opens the QMP socket before it checks devices, so a bad command
    // line often shows up as a connection reset: give it a moment to exit
    // and report its own words.
    std::optional<ExitInfo> exit =
        PollUntil([this] { return PollExit(); }, absl::Now() + kStartupExitGrace);
    if (exit) {
      error = exited_error(*exit);
    } else {
      {
        absl::MutexLock lock(&process_mu_);
        (void)process_->Signal(SIGKILL);
      }
      PollUntil([this] { return PollExit(); }, absl::InfiniteFuture());
      error = absl::Status(error.code(), absl::StrCat("vm ", config_.name, ": ", error.message(),
                                                      "; QEMU was killed; ", VmmLogTail()));
    }
    log->error("vm {}: start failed: {}", config_.name, std::string(error.message()));
    return error;
  }
  qmp_ = std::move(*qmp);
  log->info("vm {}: QMP connected (QEMU {}) {} ms after spawn", config_.name,
            qmp_->qemu_version(), absl::ToInt64Milliseconds(absl::Now() - started));
  if (config_.after_launch) {
    if (absl::Status s = config_.after_launch(); !s.ok()) {
      {
        absl::MutexLock lock(&process_mu_);
        if (process_ && !exit_) (void)process_->Signal(SIGKILL);
      }
      PollUntil([this] { return PollExit(); }, absl::InfiniteFuture());
      qmp_.reset();
      return Annotate(s, absl::StrCat("vm ", config_.name, " (QEMU killed)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ExitInfo> QemuHypervisor::Stop(absl::Duration grace) {
  absl::MutexLock op(&op_mu_);
  auto log = Logger("hypervisor");
  pid_t pid;
  {
    absl::MutexLock lock(&process_mu_);
    if (state_ == VmState::kCreated) {
      state_ = VmState::kExited;
      exit_ = ExitInfo{};
      return *exit_;
    }
    pid = pid_;
  }
  if (std::optional<ExitInfo> e = PollExit()) {
    qmp_.reset();  // not under process_mu_: the reader thread may want it
    return *e;
  }
  const absl::Time deadline = absl::Now() + grace;
  if (qmp_ != nullptr && qmp_->Health().ok()) {
    absl::Status quit = qmp_->Quit(std::min(grace, kQmpQuitTimeout));
    if (!quit.ok()) {
      log->warn("vm {}: QMP quit failed: {}", config_.name, std::string(quit.message()));
    }
  }
  std::optional<ExitInfo> exit = PollUntil([this] { return PollExit(); }, deadline);
  if (!exit) {
    log->warn("vm {}: QEMU pid {} still running {} after quit; sending SIGKILL", config_.name,
              pid, absl::FormatDuration(grace));
    {
      absl::MutexLock lock(&process_mu_);
      if (process_ && !exit_) (void)process_->Signal(SIGKILL);
    }
    exit = PollUntil([this] { return PollExit(); }, absl::InfiniteFuture());
  }
  qmp_.reset();
  return *exit;
}

absl::StatusOr<ExitInfo> QemuHypervisor::Wait(absl::Time deadline) {
  {
    absl::MutexLock lock(&process_mu_);
    if (state_ == VmState::kCreated) {
      return absl::FailedPreconditionError(
          absl::StrCat("vm ", config_.name, " was never started: nothing to wait for"));
    }
  }
  if (std::optional<ExitInfo> e = PollUntil([this] { return PollExit(); }, deadline)) return *e;
  return absl::DeadlineExceededError(
      absl::StrCat("vm ", config_.name, " (QEMU pid ", Pid(), ") still running at the deadline"));
}

absl::StatusOr<QmpClient*> QemuHypervisor::Qmp() {
  VmState state;
  {
    absl::MutexLock lock(&process_mu_);
    PollLocked();
    state = state_;
  }
  if (state == VmState::kCreated || state == VmState::kExited) {
    return absl::FailedPreconditionError(
        absl::StrCat("vm ", config_.name, " is ", VmStateName(state), ", not running"));
  }
  if (qmp_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("vm ", config_.name, " has no QMP connection"));
  }
  RETURN_IF_ERROR(qmp_->Health());
  return qmp_.get();
}

absl::Status QemuHypervisor::Pause(absl::Time deadline) {
  absl::MutexLock op(&op_mu_);
  ASSIGN_OR_RETURN(QmpClient * qmp, Qmp());
  RETURN_IF_ERROR(qmp->Stop(std::max(deadline - absl::Now(), absl::Milliseconds(1))));
  absl::MutexLock lock(&process_mu_);
  if (state_ == VmState::kRunning) state_ = VmState::kPaused;
  return absl::OkStatus();
}

absl::Status QemuHypervisor::Resume(absl::Time deadline) {
  absl::MutexLock op(&op_mu_);
  ASSIGN_OR_RETURN(QmpClient * qmp, Qmp());
  RETURN_IF_ERROR(qmp->Cont(std::max(deadline - absl::Now(), absl::Milliseconds(1))));
  absl::MutexLock lock(&process_mu_);
  if (state_ == VmState::kPaused) state_ = VmState::kRunning;
  return absl::OkStatus();
}

pid_t QemuHypervisor::Pid() const {
  absl::MutexLock lock(&process_mu_);
  return pid_;
}

absl::StatusOr<VmStatus> QemuHypervisor::Status(absl::Time deadline) {
  absl::MutexLock op(&op_mu_);
  VmStatus status;
  {
    absl::MutexLock lock(&process_mu_);
    PollLocked();
    status.state = state_;
    status.pid = pid_;
    status.exit = exit_;
  }
  if (status.state == VmState::kCreated || status.state == VmState::kExited) return status;
  ASSIGN_OR_RETURN(QmpClient * qmp, Qmp());
  ASSIGN_OR_RETURN(QmpStatus qs,
                   qmp->QueryStatus(std::max(deadline - absl::Now(), absl::Milliseconds(1))));
  status.detail = qs.status;
  status.state = qs.running ? VmState::kRunning : VmState::kPaused;
  absl::MutexLock lock(&process_mu_);
  if (state_ != VmState::kExited) state_ = status.state;
  return status;
}

std::string QemuHypervisor::ConsoleTail(int lines) const {
  return ReadConsoleTail(config_.console_log_path, lines);
}

transport::AgentAddress QemuHypervisor::Agent() const { return agent_; }

}  // namespace cloak::shim::hypervisor
