#include "shim/hypervisor/libvirt/libvirt_hypervisor.h"

#include <libvirt/libvirt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "shim/hypervisor/console_log.h"
#include "shim/hypervisor/libvirt/domain_xml.h"

namespace cloak::shim::hypervisor {

struct LibvirtHypervisor::Shared {
  explicit Shared(std::string n) : name(std::move(n)) {}
  const std::string name;
  absl::Mutex mu;
  VmState state ABSL_GUARDED_BY(mu) = VmState::kCreated;
  std::optional<ExitInfo> exit ABSL_GUARDED_BY(mu);
  std::string detail ABSL_GUARDED_BY(mu);
  pid_t pid ABSL_GUARDED_BY(mu) = -1;
  VmEventCallback on_event ABSL_GUARDED_BY(mu);

  // Records the end of the domain once.
  void Exited(ExitInfo exit_info, std::string why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (exit.has_value()) return;
    exit = exit_info;
    state = VmState::kExited;
    detail = std::move(why);
    pid = -1;
  }
};

namespace {

constexpr absl::Duration kStoppedEventWait = absl::Seconds(5);
constexpr absl::Duration kDestructorStopGrace = absl::Seconds(2);

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

// libvirt's STOPPED detail as an exit: a guest poweroff is a clean exit;
// anything else reads like a kill.
std::pair<ExitInfo, std::string> StoppedExit(int detail) {
  switch (detail) {
    case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
      return {ExitInfo{0, 0}, "shutdown"};
    case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
      return {ExitInfo{128 + 9, 9}, "destroyed"};
    case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
      return {ExitInfo{1, 0}, "crashed"};
    case VIR_DOMAIN_EVENT_STOPPED_FAILED:
      return {ExitInfo{128 + 9, 9}, "failed (QEMU ended on its own)"};
    case VIR_DOMAIN_EVENT_STOPPED_MIGRATED:
      return {ExitInfo{1, 0}, "migrated"};
    case VIR_DOMAIN_EVENT_STOPPED_SAVED:
      return {ExitInfo{1, 0}, "saved"};
    default:
      return {ExitInfo{1, 0}, absl::StrCat("stopped (detail ", detail, ")")};
  }
}

absl::string_view EventName(int event) {
  switch (event) {
    case VIR_DOMAIN_EVENT_DEFINED:
      return "DEFINED";
    case VIR_DOMAIN_EVENT_UNDEFINED:
      return "UNDEFINED";
    case VIR_DOMAIN_EVENT_STARTED:
      return "STARTED";
    case VIR_DOMAIN_EVENT_SUSPENDED:
      return "SUSPENDED";
    case VIR_DOMAIN_EVENT_RESUMED:
      return "RESUMED";
    case VIR_DOMAIN_EVENT_STOPPED:
      return "STOPPED";
    case VIR_DOMAIN_EVENT_SHUTDOWN:
      return "SHUTDOWN";
    case VIR_DOMAIN_EVENT_PMSUSPENDED:
      return "PMSUSPENDED";
    case VIR_DOMAIN_EVENT_CRASHED:
      return "CRASHED";
    default:
      return "UNKNOWN";
  }
}

// Runs on libvirt's event loop thread.
int OnLifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  auto* shared = static_cast<std::shared_ptr<LibvirtHypervisor::Shared>*>(opaque);
  LibvirtHypervisor::Shared& s = **shared;
  const char* name = virDomainGetName(dom);
  if (name == nullptr || s.name != name) return 0;
  VmEventCallback callback;
  std::string data = absl::StrCat("{\"detail\":", detail, "}");
  {
    absl::MutexLock lock(&s.mu);
    if (event == VIR_DOMAIN_EVENT_STOPPED) {
      auto [exit, why] = StoppedExit(detail);
      data = absl::StrCat("{\"detail\":", detail, ",\"reason\":\"", why, "\"}");
      Logger("hypervisor")->info("vm {}: libvirt domain stopped: {}", s.name, why);
      s.Exited(exit, why);
    } else if (event == VIR_DOMAIN_EVENT_SUSPENDED && s.state == VmState::kRunning) {
      s.state = VmState::kPaused;
    } else if (event == VIR_DOMAIN_EVENT_RESUMED && s.state == VmState::kPaused) {
      s.state = VmState::kRunning;
    } else if (event == VIR_DOMAIN_EVENT_CRASHED) {
      Logger("hypervisor")->warn("vm {}: guest crashed (libvirt detail {})", s.name, detail);
    }
    callback = s.on_event;
  }
  if (callback) callback(VmEvent{std::string(EventName(event)), data, absl::Now()});
  return 0;
}

void FreeOpaque(void* opaque) {
  delete static_cast<std::shared_ptr<LibvirtHypervisor::Shared>*>(opaque);
}

absl::Status WriteSmallFile(const std::string& path, absl::string_view content) {
  return WriteFileAtomic(path, content, 0600);
}

// The pid libvirt's QEMU driver records for a domain of the system
// instance; -1 when it cannot be read (another URI, or not root).
pid_t ReadQemuPid(const std::string& uri, const std::string& name) {
  if (!absl::StartsWith(uri, "qemu:///system")) return -1;
  std::ifstream in(absl::StrCat("/run/libvirt/qemu/", name, ".pid"));
  std::string text;
  std::getline(in, text);
  int pid = -1;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid)) return -1;
  return pid;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Hypervisor>> LibvirtHypervisor::Create(
    const VmConfig& config, const LibvirtCapabilities& libvirt, const HostCapabilities& host) {
  auto log = Logger("hypervisor");
  RETURN_IF_ERROR(CheckLibvirtTeeSupport(config.tee, libvirt));
  ASSIGN_OR_RETURN(AccelChoice accel, ResolveLibvirtAccel(config, libvirt, host));
  ASSIGN_OR_RETURN(ChannelChoice channel, ResolveChannel(config, host));
  ASSIGN_OR_RETURN(std::string xml, BuildDomainXml(config, accel.accel, channel.channel));
  RETURN_IF_ERROR(CheckFileExists("kernel", config.kernel,
                                  "install the guest image or set the kernel path"));
  RETURN_IF_ERROR(CheckFileExists("initrd", config.initrd,
                                  "install the guest image or set the initrd path"));
  RETURN_IF_ERROR(CheckFileExists("firmware", config.firmware, "set the firmware path"));
  log->info("vm {}: libvirt {}", config.name, libvirt.Summary());
  log->info("vm {}: accel {}: {}", config.name, std::string(AccelName(accel.accel)),
            accel.reason);
  log->info("vm {}: agent channel {}: {}", config.name,
            std::string(AgentChannelName(channel.channel)), channel.reason);
  return std::unique_ptr<Hypervisor>(
      new LibvirtHypervisor(config, std::move(xml), AgentAddressFor(config, channel.channel)));
}

LibvirtHypervisor::LibvirtHypervisor(VmConfig config, std::string xml,
                                     transport::AgentAddress agent)
    : config_(std::move(config)),
      xml_(std::move(xml)),
      agent_(std::move(agent)),
      shared_(std::make_shared<Shared>(config_.name)) {}

LibvirtHypervisor::~LibvirtHypervisor() {
  bool running;
  {
    absl::MutexLock lock(&shared_->mu);
    running = shared_->state != VmState::kCreated && !shared_->exit.has_value();
  }
  if (running) (void)Stop(kDestructorStopGrace);
  absl::MutexLock op(&op_mu_);
  if (conn_ != nullptr && lifecycle_callback_ >= 0) {
    virConnectDomainEventDeregisterAny(conn_->get(), lifecycle_callback_);
  }
  if (dom_ != nullptr) virDomainFree(dom_);
  dom_ = nullptr;
  conn_.reset();
}

void LibvirtHypervisor::SetEventCallback(VmEventCallback callback) {
  absl::MutexLock lock(&shared_->mu);
  shared_->on_event = std::move(callback);
}

absl::Status LibvirtHypervisor::Start(absl::Time deadline) {
  absl::MutexLock op(&op_mu_);
  auto log = Logger("hypervisor");
  {
    absl::MutexLock lock(&shared_->mu);
    if (shared_->state != VmState::kCreated) {
      return absl::FailedPreconditionError(absl::StrCat(
          "vm ", config_.name, " was already started (state ", VmStateName(shared_->state),
          "): a Hypervisor runs one VM once; create a new one"));
    }
  }
  const std::string& uri = config_.libvirt_uri;
  const std::string sandbox = config_.sandbox_id.empty() ? config_.name : config_.sandbox_id;
  absl::Time t = absl::Now();
  ASSIGN_OR_RETURN(conn_, LibvirtConnection::Open(uri));
  unsigned long lib = 0;
  (void)virConnectGetLibVersion(conn_->get(), &lib);
  log->info("sandbox={} step=libvirt-connect took {} ({} libvirt {})", sandbox,
            absl::FormatDuration(absl::Trunc(absl::Now() - t, absl::Milliseconds(1))), uri,
            QemuVersionString(LibvirtVersionFromNumber(lib)));

  // Events first: a domain that dies at once must not be missed.
  lifecycle_callback_ = virConnectDomainEventRegisterAny(
      conn_->get(), nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle),
      new std::shared_ptr<Shared>(shared_), FreeOpaque);
  if (lifecycle_callback_ < 0) {
    return absl::InternalError(absl::StrCat("libvirt at ", uri,
                                            ": register for domain lifecycle events: ",
                                            LibvirtLastError()));
  }
  if (!config_.state_dir.empty()) {
    RETURN_IF_ERROR(WriteSmallFile(absl::StrCat(config_.state_dir, "/", kLibvirtUriFile), uri));
    (void)WriteSmallFile(absl::StrCat(config_.state_dir, "/domain.xml"), xml_);
  }
  if (agent_.kind == transport::AgentAddress::Kind::kSerial) ::unlink(agent_.path.c_str());
  if (absl::Now() >= deadline) {
    return absl::DeadlineExceededError(
        absl::StrCat("vm ", config_.name, ": no time left to create the libvirt domain"));
  }

  t = absl::Now();
  dom_ = virDomainCreateXML(conn_->get(), xml_.c_str(),
                            config_.start_paused ? VIR_DOMAIN_START_PAUSED : 0);
  if (dom_ == nullptr) {
    const std::string error = LibvirtLastError();
    log->error("vm {}: libvirt refused the domain: {}", config_.name, error);
    return absl::InternalError(absl::StrCat(
        "libvirt at ", uri, " could not start domain ", config_.name, ": ", error,
        " (the domain XML is in ", config_.state_dir, "/domain.xml; libvirtd's QEMU log is "
        "/var/log/libvirt/qemu/", config_.name, ".log)"));
  }
  const pid_t pid = ReadQemuPid(uri, config_.name);
  {
    absl::MutexLock lock(&shared_->mu);
    if (!shared_->exit.has_value()) {
      shared_->state = config_.start_paused ? VmState::kPaused : VmState::kRunning;
      shared_->pid = pid;
    }
  }
  log->info("sandbox={} step=libvirt-create-domain took {} (domain {}, QEMU pid {})", sandbox,
            absl::FormatDuration(absl::Trunc(absl::Now() - t, absl::Milliseconds(1))),
            config_.name, pid);
  if (config_.after_launch) {
    t = absl::Now();
    if (absl::Status s = config_.after_launch(); !s.ok()) {
      (void)DestroyDomain(/*graceful=*/false);
      return Annotate(s, absl::StrCat("vm ", config_.name, " (domain destroyed)"));
    }
    log->info("sandbox={} step=libvirt-after-launch took {}", sandbox,
              absl::FormatDuration(absl::Trunc(absl::Now() - t, absl::Milliseconds(1))));
  }
  return absl::OkStatus();
}

absl::Status LibvirtHypervisor::DestroyDomain(bool graceful) {
  if (dom_ == nullptr) return absl::OkStatus();
  const int rc = virDomainDestroyFlags(dom_, graceful ? VIR_DOMAIN_DESTROY_GRACEFUL : 0);
  if (rc < 0) {
    const std::string error = LibvirtLastError();
    // Already gone (it stopped on its own meanwhile) is not an error.
    int state = 0, reason = 0;
    if (virDomainGetState(dom_, &state, &reason, 0) < 0 || state == VIR_DOMAIN_SHUTOFF) {
      return absl::OkStatus();
    }
    return absl::InternalError(
        absl::StrCat("libvirt: destroy domain ", config_.name, ": ", error));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExitInfo> LibvirtHypervisor::Stop(absl::Duration grace) {
  absl::MutexLock op(&op_mu_);
  auto log = Logger("hypervisor");
  {
    absl::MutexLock lock(&shared_->mu);
    if (shared_->state == VmState::kCreated) {
      shared_->Exited(ExitInfo{}, "never started");
      return *shared_->exit;
    }
  }
  auto exited = [this]() ABSL_SHARED_LOCKS_REQUIRED(shared_->mu) {
    return shared_->exit.has_value();
  };
  {
    // The guest may be powering off already (DestroySandbox).
    absl::MutexLock lock(&shared_->mu);
    if (shared_->mu.AwaitWithTimeout(absl::Condition(&exited), grace)) return *shared_->exit;
  }
  log->info("vm {}: still running {} after the stop request; destroying the libvirt domain",
            config_.name, absl::FormatDuration(grace));
  absl::Status destroyed = DestroyDomain(/*graceful=*/false);
  absl::MutexLock lock(&shared_->mu);
  if (!shared_->mu.AwaitWithTimeout(absl::Condition(&exited), kStoppedEventWait)) {
    if (!destroyed.ok()) return destroyed;
    // Destroyed, but the event did not come (a lost connection): it ended.
    shared_->Exited(ExitInfo{128 + 9, 9}, "destroyed (no event)");
  }
  return *shared_->exit;
}

absl::StatusOr<ExitInfo> LibvirtHypervisor::Wait(absl::Time deadline) {
  absl::MutexLock lock(&shared_->mu);
  if (shared_->state == VmState::kCreated) {
    return absl::FailedPreconditionError(
        absl::StrCat("vm ", config_.name, " was never started: nothing to wait for"));
  }
  auto exited = [this]() ABSL_SHARED_LOCKS_REQUIRED(shared_->mu) {
    return shared_->exit.has_value();
  };
  if (shared_->mu.AwaitWithDeadline(absl::Condition(&exited), deadline)) return *shared_->exit;
  return absl::DeadlineExceededError(absl::StrCat(
      "vm ", config_.name, " (libvirt domain) still running at the deadline"));
}

absl::Status LibvirtHypervisor::Pause(absl::Time) {
  absl::MutexLock op(&op_mu_);
  if (dom_ == nullptr || Wait(absl::Now()).ok()) {
    return absl::FailedPreconditionError(absl::StrCat("vm ", config_.name, " is not running"));
  }
  if (virDomainSuspend(dom_) < 0) {
    return absl::InternalError(
        absl::StrCat("libvirt: suspend domain ", config_.name, ": ", LibvirtLastError()));
  }
  absl::MutexLock lock(&shared_->mu);
  if (shared_->state == VmState::kRunning) shared_->state = VmState::kPaused;
  return absl::OkStatus();
}

absl::Status LibvirtHypervisor::Resume(absl::Time) {
  absl::MutexLock op(&op_mu_);
  if (dom_ == nullptr || Wait(absl::Now()).ok()) {
    return absl::FailedPreconditionError(absl::StrCat("vm ", config_.name, " is not running"));
  }
  if (virDomainResume(dom_) < 0) {
    return absl::InternalError(
        absl::StrCat("libvirt: resume domain ", config_.name, ": ", LibvirtLastError()));
  }
  absl::MutexLock lock(&shared_->mu);
  if (shared_->state == VmState::kPaused) shared_->state = VmState::kRunning;
  return absl::OkStatus();
}

pid_t LibvirtHypervisor::Pid() const {
  absl::MutexLock lock(&shared_->mu);
  return shared_->pid;
}

absl::StatusOr<VmStatus> LibvirtHypervisor::Status(absl::Time) {
  absl::MutexLock op(&op_mu_);
  VmStatus status;
  {
    absl::MutexLock lock(&shared_->mu);
    status.state = shared_->state;
    status.pid = shared_->pid;
    status.exit = shared_->exit;
    status.detail = shared_->detail;
  }
  if (status.state == VmState::kCreated || status.state == VmState::kExited || dom_ == nullptr) {
    return status;
  }
  int state = 0, reason = 0;
  if (virDomainGetState(dom_, &state, &reason, 0) < 0) {
    return absl::UnavailableError(
        absl::StrCat("libvirt: state of domain ", config_.name, ": ", LibvirtLastError()));
  }
  switch (state) {
    case VIR_DOMAIN_RUNNING:
      status.detail = "running";
      status.state = VmState::kRunning;
      break;
    case VIR_DOMAIN_PAUSED:
      status.detail = "paused";
      status.state = VmState::kPaused;
      break;
    case VIR_DOMAIN_SHUTOFF:
      status.detail = "shutoff";
      break;
    case VIR_DOMAIN_CRASHED:
      status.detail = "crashed";
      break;
    default:
      status.detail = absl::StrCat("libvirt state ", state);
  }
  return status;
}

std::string LibvirtHypervisor::ConsoleTail(int lines) const {
  return ReadConsoleTail(config_.console_log_path, lines);
}

}  // namespace cloak::shim::hypervisor
