#include "agent/container_manager.h"
#include "agent/network.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/ids.h"
#include "agent/image_process.h"
#include "agent/spec_builder.h"
#include "agent/volume_files.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace cloak::agent {

namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("agent"); }

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

absl::Status WrongState(const std::string& id, ContainerState s, absl::string_view want) {
  return absl::FailedPreconditionError(
      absl::StrCat("container ", id, " is ", StateName(s), ", not ", want));
}

}  // namespace

const char* StateName(ContainerState s) {
  switch (s) {
    case ContainerState::kCreating: return "creating";
    case ContainerState::kCreated: return "created";
    case ContainerState::kRunning: return "running";
    case ContainerState::kPaused: return "paused";
    case ContainerState::kStopped: return "stopped";
  }
  return "unknown";
}

// ---- Process ----------------------------------------------------------------

void Process::SetLaunched(pid_t pid) {
  absl::MutexLock lock(&mu_);
  pid_ = pid;
  // Signals go through a pidfd so that a recycled pid is never hit.
  pidfd_.Reset(PidfdOpen(pid));
}

void Process::SetRunning() {
  absl::MutexLock lock(&mu_);
  if (state_ == ProcessState::kCreated) state_ = ProcessState::kRunning;
}

void Process::MarkExited(const ExitRecord& record) {
  absl::MutexLock lock(&mu_);
  state_ = ProcessState::kExited;
  exit_ = record;
  pidfd_.Reset();
}

pid_t Process::pid() {
  absl::MutexLock lock(&mu_);
  return pid_;
}

ProcessState Process::state() {
  absl::MutexLock lock(&mu_);
  return state_;
}

std::optional<ExitRecord> Process::WaitExit(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return exit_.has_value(); };
  mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
  return exit_;
}

absl::Status Process::Signal(int signal) {
  absl::MutexLock lock(&mu_);
  if (exit_) return absl::NotFoundError(absl::StrCat("process ", exec_id_, " already exited"));
  if (!pidfd_) {
    return absl::FailedPreconditionError(absl::StrCat("process ", exec_id_, " has no pidfd"));
  }
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), signal, nullptr, 0) != 0) {
    if (errno == ESRCH) return absl::NotFoundError(absl::StrCat("process ", exec_id_, " already exited"));
    return ErrnoError(errno, "pidfd_send_signal");
  }
  return absl::OkStatus();
}

bool Process::Finished() {
  {
    absl::MutexLock lock(&mu_);
    if (!exit_ || !waited_) return false;
  }
  ProcessIo* io = io_.get();
  return (io->stdout_buffer() == nullptr || io->stdout_buffer()->eof_drained()) &&
         (io->stderr_buffer() == nullptr || io->stderr_buffer()->eof_drained());
}

void Process::MarkWaited() {
  absl::MutexLock lock(&mu_);
  waited_ = true;
}

// ---- ContainerManager ---------------------------------------------------------

ContainerManager::ContainerManager(ManagerOptions options, Crun* crun, Reaper* reaper,
                                   RootfsProvider* images, RootfsProvider* pause)
    : options_(std::move(options)), crun_(crun), reaper_(reaper), images_(images), pause_(pause) {
  oom_thread_ = std::thread([this] { OomLoop(); });
}

ContainerManager::~ContainerManager() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& sub : oom_subs_) {
      absl::MutexLock sub_lock(&sub->mu);
      sub->closed = true;
    }
  }
  if (oom_thread_.joinable()) oom_thread_.join();
}

SandboxState ContainerManager::sandbox_state() {
  absl::MutexLock lock(&mu_);
  return sandbox_;
}

std::string ContainerManager::CgroupDir(const std::string& id) const {
  return absl::StrCat(options_.cgroup_root, "/cloak/", id);
}

std::string ContainerManager::NewSocketPath() {
  absl::MutexLock lock(&mu_);
  return absl::StrCat(options_.run_dir, "/s/", ++socket_counter_, ".sock");
}

absl::Status ContainerManager::RequireSandbox() {
  absl::MutexLock lock(&mu_);
  switch (sandbox_) {
    case SandboxState::kReady: return absl::OkStatus();
    case SandboxState::kNone: return absl::FailedPreconditionError("no sandbox: call CreateSandbox first");
    case SandboxState::kDestroyed: return absl::FailedPreconditionError("the sandbox was destroyed");
  }
  return absl::InternalError("bad sandbox state");
}

absl::StatusOr<std::shared_ptr<ContainerManager::Container>> ContainerManager::Find(
    const std::string& id) {
  RETURN_IF_ERROR(ValidateId("container_id", id));
  absl::MutexLock lock(&mu_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return absl::NotFoundError(absl::StrCat("container ", id, " not found"));
  return it->second;
}

absl::Status ContainerManager::CreateSandbox(const v1::CreateSandboxRequest& request) {
  RETURN_IF_ERROR(ValidateId("sandbox_id", request.sandbox_id()));
  if (!request.hostname().empty()) RETURN_IF_ERROR(ValidateHostname(request.hostname()));
  if (request.dns_size() > 64) return absl::InvalidArgumentError("dns: more than 64 lines");
  std::string resolv;
  for (const std::string& line : request.dns()) {
    if (line.size() > 512 || line.find_first_of(std::string("\n\r\0", 3)) != std::string::npos) {
      return absl::InvalidArgumentError("dns: lines must be single lines of at most 512 bytes");
    }
    absl::StrAppend(&resolv, line, "\n");
  }
  if (request.initdata().size() > kMaxInitdataBytes) {
    return absl::InvalidArgumentError(absl::StrCat("initdata larger than ", kMaxInitdataBytes));
  }
  if (request.annotations_size() > 512) return absl::InvalidArgumentError("too many annotations");
  absl::StatusOr<NetworkPlan> network = PlanNetwork(request);
  if (!network.ok()) return Annotate(network.status(), "sandbox network");

  absl::MutexLock lock(&mu_);
  if (sandbox_ != SandboxState::kNone) {
    return absl::FailedPreconditionError("a sandbox was already created in this guest");
  }
  RETURN_IF_ERROR(MakeDirs(options_.run_dir + "/containers"));
  RETURN_IF_ERROR(MakeDirs(options_.run_dir + "/s"));
  RETURN_IF_ERROR(MakeDirs(options_.run_dir + "/sandbox"));
  RETURN_IF_ERROR(MakeDirs(VolumeRootDir()));
  ::chmod(VolumeRootDir().c_str(), 0755);
  ::chmod((options_.run_dir + "/s").c_str(), 0700);
  if (!request.initdata().empty()) {
    // Kept for the attestation step; its digest is checked there.
    RETURN_IF_ERROR(WriteFileAtomic(options_.run_dir + "/initdata.toml", request.initdata(), 0600));
    if (options_.on_initdata) options_.on_initdata(request.initdata());
  }
  if (!resolv.empty()) {
    resolv_conf_ = options_.run_dir + "/sandbox/resolv.conf";
    RETURN_IF_ERROR(WriteFileAtomic(resolv_conf_, resolv, 0644));
  }
  if (options_.manage_guest && !request.hostname().empty()) {
    if (::sethostname(request.hostname().data(), request.hostname().size()) != 0) {
      return ErrnoError(errno, "sethostname");
    }
  }
  if (options_.manage_guest) {
    const absl::Time t = absl::Now();
    RETURN_IF_ERROR(Annotate(ApplyNetwork(*network, "/sys/class/net", 5000), "sandbox network"));
    if (!network->interfaces.empty()) {
      Log()->info("step=network took={}", absl::FormatDuration(absl::Now() - t));
    }
  } else if (!network->interfaces.empty()) {
    Log()->info("not configuring {} interface(s): this agent does not manage a guest",
                network->interfaces.size());
  }
  sandbox_ = SandboxState::kReady;
  Log()->info("sandbox {} created (hostname '{}', {} dns lines, {} bytes of init-data)",
              request.sandbox_id(), request.hostname(), request.dns_size(),
              request.initdata().size());
  return absl::OkStatus();
}

absl::Status ContainerManager::DestroySandbox() {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    if (sandbox_ == SandboxState::kNone) {
      return absl::FailedPreconditionError("no sandbox: call CreateSandbox first");
    }
    for (const auto& [id, c] : containers_) ids.push_back(id);
  }
  absl::Status first = absl::OkStatus();
  for (const std::string& id : ids) {
    absl::Status s = RemoveContainer(id, absl::Seconds(5));
    if (!s.ok() && !absl::IsNotFound(s)) {
      Log()->error("destroy sandbox: remove {}: {}", id, s.ToString());
      if (first.ok()) first = s;
    }
  }
  absl::MutexLock lock(&mu_);
  sandbox_ = SandboxState::kDestroyed;
  for (auto& sub : oom_subs_) {
    absl::MutexLock sub_lock(&sub->mu);
    sub->closed = true;
  }
  Log()->info("sandbox destroyed ({} containers removed)", ids.size());
  return first;
}

absl::StatusOr<std::shared_ptr<Process>> ContainerManager::LaunchProcess(
    Container* c, const std::string& exec_id, const v1::Stdio& stdio,
    const std::function<absl::StatusOr<Crun::Launch>(
        const CrunStdio&, const std::function<absl::Status(const std::function<bool()>&)>&)>&
        launch) {
  StdioPlan plan{stdio.stdin(),   stdio.stdout(), stdio.stderr(),
                 stdio.terminal(), stdio.width(),  stdio.height()};
  ASSIGN_OR_RETURN(std::unique_ptr<ProcessIo> io, ProcessIo::Create(plan));
  CrunStdio crun_stdio{io->child_stdin(), io->child_stdout(), io->child_stderr(), ""};
  UniqueFd console_listener;
  if (plan.terminal) {
    crun_stdio.console_socket = NewSocketPath();
    ASSIGN_OR_RETURN(console_listener, ListenConsoleSocket(crun_stdio.console_socket));
  }
  absl::Cleanup remove_socket = [&] {
    if (!crun_stdio.console_socket.empty()) ::unlink(crun_stdio.console_socket.c_str());
  };
  ProcessIo* io_ptr = io.get();
  auto receive = [&](const std::function<bool()>& crun_done) -> absl::Status {
    ASSIGN_OR_RETURN(UniqueFd master,
                     ReceivePtyMaster(console_listener.get(),
                                      absl::Now() + crun_->options().timeout, crun_done));
    return io_ptr->AttachPty(std::move(master));
  };
  absl::StatusOr<Crun::Launch> launched = launch(crun_stdio, receive);
  io->CloseChildEnds();
  RETURN_IF_ERROR(launched.status());
  auto process = std::make_shared<Process>(exec_id, std::move(io));
  process->SetLaunched(launched->pid);
  std::weak_ptr<Process> weak = process;
  reaper_->OnExit(launched->pid, launched->mark, [weak](const ExitRecord& record) {
    if (auto p = weak.lock()) p->MarkExited(record);
  });
  process->io()->StartReaders();
  Log()->info("container {} process '{}' launched (pid {})", c->id, exec_id, launched->pid);
  return process;
}

absl::StatusOr<v1::CreateContainerResponse> ContainerManager::CreateContainer(
    const v1::CreateContainerRequest& request, const std::vector<KbsFile>& kbs_files) {
  RETURN_IF_ERROR(ValidateId("container_id", request.container_id()));
  if (request.image().size() > 4096) return absl::InvalidArgumentError("image reference too long");
  if (request.oci_spec_json().size() > kMaxSpecBytes) {
    return absl::InvalidArgumentError("oci_spec_json too large");
  }
  if (reaper_ == nullptr || crun_ == nullptr) return absl::InternalError("no container runtime");
  RETURN_IF_ERROR(RequireSandbox());
  auto c = std::make_shared<Container>();
  c->id = request.container_id();
  c->dir = absl::StrCat(options_.run_dir, "/containers/", c->id);
  c->cgroup_dir = CgroupDir(c->id);
  c->sandbox = request.sandbox_container();
  {
    absl::MutexLock lock(&mu_);
    if (containers_.contains(c->id)) {
      return absl::AlreadyExistsError(absl::StrCat("container ", c->id, " already exists"));
    }
    if (containers_.size() >= kMaxContainers) {
      return absl::ResourceExhaustedError("too many containers in this sandbox");
    }
    if (c->sandbox && have_sandbox_container_) {
      return absl::FailedPreconditionError("the sandbox container already exists");
    }
    if (c->sandbox) have_sandbox_container_ = true;
    containers_[c->id] = c;
  }
  absl::MutexLock op(&c->op_mu);
  v1::CreateContainerResponse response;
  const absl::Time start = absl::Now();
  absl::Status status = CreateLocked(c.get(), request, kbs_files, &response);
  if (!status.ok()) {
    Log()->error("create container {}: {}", c->id, status.ToString());
    (void)crun_->Delete(c->id, /*force=*/true);
    (void)UnmountAndRemoveTree(c->dir);
    absl::MutexLock lock(&mu_);
    containers_.erase(c->id);
    if (c->sandbox) have_sandbox_container_ = false;
    return status;
  }
  Log()->info("container {} created in {} (pid {})", c->id,
              absl::FormatDuration(absl::Now() - start), response.pid());
  return response;
}

absl::Status ContainerManager::CreateLocked(Container* c, const v1::CreateContainerRequest& request,
                                            const std::vector<KbsFile>& kbs_files,
                                            v1::CreateContainerResponse* response) {
  std::string resolv;
  {
    absl::MutexLock lock(&mu_);
    resolv = resolv_conf_;
  }
  RETURN_IF_ERROR(UnmountAndRemoveTree(c->dir));  // leftovers of an earlier failed attempt
  RETURN_IF_ERROR(MakeDirs(c->dir));
  ::chmod(c->dir.c_str(), 0700);
  // Key broker secrets first: a refusal fails the create with the broker's
  // reason before any image is pulled.
  std::vector<std::string> secrets;
  if (!kbs_files.empty()) {
    if (!options_.fetch_kbs_resources) {
      return absl::FailedPreconditionError(
          "the policy mounts key broker files into this container, but this agent cannot attest");
    }
    std::vector<std::string> resources;
    for (const KbsFile& f : kbs_files) resources.push_back(f.resource);
    const absl::Time t = absl::Now();
    absl::StatusOr<std::vector<std::string>> fetched = options_.fetch_kbs_resources(resources);
    if (!fetched.ok()) return Annotate(fetched.status(), "kbs_files of the container's policy rule");
    secrets = *std::move(fetched);
    Log()->info("step=kbs-files container={} files={} took={}", c->id, kbs_files.size(),
                absl::FormatDuration(absl::Now() - t));
  }
  RootfsProvider* provider = c->sandbox ? pause_ : images_;
  if (provider == nullptr) return absl::FailedPreconditionError("no rootfs provider configured");
  const absl::Time pull_start = absl::Now();
  absl::StatusOr<PreparedRootfs> prepared = provider->Prepare(c->id, request.image(), c->dir);
  if (!prepared.ok()) return Annotate(prepared.status(), "prepare rootfs");
  Log()->info("container {} rootfs ready in {} (image '{}')", c->id,
              absl::FormatDuration(absl::Now() - pull_start), request.image());
  response->set_image_digest(prepared->image_digest);

  SpecOptions spec_options;
  spec_options.rootfs_dir = prepared->rootfs_dir;
  spec_options.cgroups_path = absl::StrCat("/cloak/", c->id);
  spec_options.resolv_conf_path = resolv;
  spec_options.terminal = request.stdio().terminal();
  spec_options.console_width = request.stdio().width();
  spec_options.console_height = request.stdio().height();
  spec_options.allow_empty_args = c->sandbox || !prepared->image_config_json.empty();
  spec_options.keep_runtime_annotations = options_.policy_checks_runtime_annotations;
  ASSIGN_OR_RETURN(nlohmann::json spec, BuildContainerSpec(request.oci_spec_json(), spec_options));
  if (!c->sandbox) RETURN_IF_ERROR(AddVolumeMounts(request.oci_spec_json(), &spec));
  if (c->sandbox) {
    // The pause container runs nothing heavy, whatever the host asked for.
    spec["process"]["args"] = {"/bin/sleep", "2147483647"};
  } else {
    RETURN_IF_ERROR(ApplyImageConfigToProcess(prepared->image_config_json, prepared->rootfs_dir,
                                              &spec["process"]));
  }
  if (!kbs_files.empty()) {
    // Guest memory only: the agent's run dir is the guest's /run tmpfs.
    ASSIGN_OR_RETURN(std::vector<nlohmann::json> mounts,
                     WriteKbsFiles(c->dir + "/kbs-files", kbs_files, secrets, ProcessOwner(spec),
                                   /*require_tmpfs=*/options_.manage_guest));
    for (nlohmann::json& m : mounts) {
      Log()->info("container mount {} <- key broker file (ro, 0400)", m["destination"].get<std::string>());
      spec["mounts"].push_back(std::move(m));
    }
  }
  RETURN_IF_ERROR(WriteFileAtomic(c->dir + "/config.json", DumpJson(spec), 0600));

  ASSIGN_OR_RETURN(
      std::shared_ptr<Process> init,
      LaunchProcess(c, "", request.stdio(),
                    [&](const CrunStdio& stdio,
                        const std::function<absl::Status(const std::function<bool()>&)>& receive) {
                      return crun_->Create(c->id, c->dir, stdio, receive);
                    }));
  absl::MutexLock lock(&c->mu);
  c->init = init;
  c->state = ContainerState::kCreated;
  response->set_pid(static_cast<uint32_t>(init->pid()));
  return absl::OkStatus();
}

std::string ContainerManager::VolumeRootDir() const {
  return options_.run_dir + "/sandbox/volumes";
}

absl::Status ContainerManager::CopyFile(const v1::CopyFileRequest& request) {
  RETURN_IF_ERROR(RequireSandbox());
  absl::MutexLock lock(&volumes_mu_);
  return ApplyCopyFile(VolumeRootDir(), request);
}

absl::Status ContainerManager::AddVolumeMounts(absl::string_view host_spec_json,
                                               nlohmann::json* spec) {
  ASSIGN_OR_RETURN(nlohmann::json host, ParseJson("oci_spec_json", host_spec_json));
  ASSIGN_OR_RETURN(std::vector<VolumeMount> mounts, VolumeMountsOfSpec(host));
  const std::string root = VolumeRootDir();
  absl::MutexLock lock(&volumes_mu_);
  for (const VolumeMount& m : mounts) {
    const std::string dir = root + m.volume.guest_volume_dir.substr(std::string(kGuestVolumeRoot).size());
    if (m.volume.empty_dir) {
      // emptyDir: the guest's own memory, shared by the pod's containers.
      v1::CopyFileRequest make;
      make.set_path(m.volume.guest_volume_dir);
      make.set_file_mode(S_IFDIR | 0777);
      RETURN_IF_ERROR(ApplyCopyFile(root, make));
    } else {
      const std::string source =
          root + m.volume.guest_path.substr(std::string(kGuestVolumeRoot).size());
      struct stat st;
      if (::lstat(source.c_str(), &st) != 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "volume ", m.volume.kind, "/", m.volume.name, " for mount ", m.destination,
            " (host source ", m.volume.host_source,
            ") was not copied into the guest: its CopyFile calls were refused or never made"));
      }
    }
    (*spec)["mounts"].push_back(VolumeBindMount(m, root));
    Log()->info("container mount {} <- volume {}/{}{}", m.destination, m.volume.kind, m.volume.name,
                m.volume.readonly ? " (ro)" : "");
  }
  return absl::OkStatus();
}

absl::StatusOr<pid_t> ContainerManager::StartContainer(const std::string& id) {
  RETURN_IF_ERROR(RequireSandbox());
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  absl::MutexLock op(&c->op_mu);
  std::shared_ptr<Process> init;
  {
    absl::MutexLock lock(&c->mu);
    c->RefreshLocked();
    if (c->state != ContainerState::kCreated) return WrongState(id, c->state, "created");
    init = c->init;
  }
  if (init->state() == ProcessState::kExited) {
    absl::MutexLock lock(&c->mu);
    c->state = ContainerState::kStopped;
    return absl::FailedPreconditionError(absl::StrCat("container ", id, " init already exited"));
  }
  RETURN_IF_ERROR(crun_->Start(id));
  init->SetRunning();
  absl::MutexLock lock(&c->mu);
  if (c->state == ContainerState::kCreated) c->state = ContainerState::kRunning;
  Log()->info("container {} started", id);
  return init->pid();
}

absl::StatusOr<pid_t> ContainerManager::ExecProcess(const v1::ExecProcessRequest& request) {
  RETURN_IF_ERROR(RequireSandbox());
  RETURN_IF_ERROR(ValidateId("exec_id", request.exec_id()));
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(request.container_id()));
  ASSIGN_OR_RETURN(nlohmann::json process_in, ParseJson("process_json", request.process_json()));
  SpecOptions spec_options;
  spec_options.terminal = request.stdio().terminal();
  spec_options.console_width = request.stdio().width();
  spec_options.console_height = request.stdio().height();
  ASSIGN_OR_RETURN(nlohmann::json process, SanitizeProcess(process_in, spec_options));

  absl::MutexLock op(&c->op_mu);
  {
    absl::MutexLock lock(&c->mu);
    c->RefreshLocked();
    if (c->state != ContainerState::kRunning) return WrongState(c->id, c->state, "running");
    if (c->execs.contains(request.exec_id())) {
      return absl::AlreadyExistsError(absl::StrCat("exec ", request.exec_id(), " already exists"));
    }
    if (c->execs.size() >= kMaxExecsPerContainer) {
      for (auto it = c->execs.begin(); it != c->execs.end();) {
        if (it->second->Finished()) {
          c->execs.erase(it++);
        } else {
          ++it;
        }
      }
      if (c->execs.size() >= kMaxExecsPerContainer) {
        return absl::ResourceExhaustedError("too many exec processes");
      }
    }
  }
  std::string process_file = absl::StrCat(c->dir, "/exec-", request.exec_id(), ".json");
  RETURN_IF_ERROR(WriteFileAtomic(process_file, DumpJson(process), 0600));
  absl::Cleanup remove_file = [&] { ::unlink(process_file.c_str()); };
  ASSIGN_OR_RETURN(
      std::shared_ptr<Process> p,
      LaunchProcess(c.get(), request.exec_id(), request.stdio(),
                    [&](const CrunStdio& stdio,
                        const std::function<absl::Status(const std::function<bool()>&)>& receive) {
                      return crun_->Exec(c->id, c->dir, process_file, request.exec_id(), stdio,
                                         receive);
                    }));
  p->SetRunning();
  absl::MutexLock lock(&c->mu);
  c->execs[request.exec_id()] = p;
  return p->pid();
}

absl::StatusOr<std::shared_ptr<Process>> ContainerManager::FindProcess(const std::string& id,
                                                                      const std::string& exec_id) {
  if (!exec_id.empty()) RETURN_IF_ERROR(ValidateId("exec_id", exec_id));
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  absl::MutexLock lock(&c->mu);
  if (exec_id.empty()) {
    if (c->init == nullptr) return absl::NotFoundError(absl::StrCat("container ", id, " has no init process yet"));
    return c->init;
  }
  auto it = c->execs.find(exec_id);
  if (it == c->execs.end()) {
    return absl::NotFoundError(absl::StrCat("exec ", exec_id, " not found in container ", id));
  }
  return it->second;
}

absl::Status ContainerManager::SignalProcess(const std::string& id, const std::string& exec_id,
                                             int signal, bool all) {
  if (signal < 1 || signal > 64) return absl::InvalidArgumentError("signal must be 1..64");
  ASSIGN_OR_RETURN(std::shared_ptr<Process> p, FindProcess(id, exec_id));
  if (!exec_id.empty() && !all) return p->Signal(signal);
  if (p->state() == ProcessState::kExited && !all) {
    return absl::NotFoundError(absl::StrCat("container ", id, " init already exited"));
  }
  if (all) return crun_->Kill(id, signal, /*all=*/true);
  // Through the pidfd: crun kill would refuse a container still "created".
  return p->Signal(signal);
}

absl::StatusOr<std::vector<pid_t>> ContainerManager::ListProcesses(const std::string& id) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  std::string procs_file = c->cgroup_dir + "/cgroup.procs";
  absl::StatusOr<std::string> procs = ReadFile(procs_file, 1 << 20, Symlinks::kRefuse);
  if (procs.ok() && ::access((c->cgroup_dir + "/cgroup.controllers").c_str(), F_OK) == 0) {
    std::vector<pid_t> pids;
    for (absl::string_view line : absl::StrSplit(*procs, '\n', absl::SkipWhitespace())) {
      int pid = 0;
      if (absl::SimpleAtoi(line, &pid)) pids.push_back(pid);
    }
    return pids;
  }
  return crun_->Ps(id);
}

absl::Status ContainerManager::PauseContainer(const std::string& id) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  absl::MutexLock op(&c->op_mu);
  {
    absl::MutexLock lock(&c->mu);
    c->RefreshLocked();
    if (c->state != ContainerState::kRunning) return WrongState(id, c->state, "running");
  }
  RETURN_IF_ERROR(crun_->Pause(id));
  absl::MutexLock lock(&c->mu);
  if (c->state == ContainerState::kRunning) c->state = ContainerState::kPaused;
  return absl::OkStatus();
}

absl::Status ContainerManager::ResumeContainer(const std::string& id) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  absl::MutexLock op(&c->op_mu);
  {
    absl::MutexLock lock(&c->mu);
    c->RefreshLocked();
    if (c->state != ContainerState::kPaused) return WrongState(id, c->state, "paused");
  }
  RETURN_IF_ERROR(crun_->Resume(id));
  absl::MutexLock lock(&c->mu);
  if (c->state == ContainerState::kPaused) c->state = ContainerState::kRunning;
  return absl::OkStatus();
}

absl::StatusOr<CgroupStats> ContainerManager::StatsContainer(const std::string& id) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  if (::access((options_.cgroup_root + "/cgroup.controllers").c_str(), F_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("no cgroup v2 hierarchy at ", options_.cgroup_root, " (stats need cgroup v2)"));
  }
  absl::StatusOr<CgroupStats> stats = ReadCgroupV2Stats(c->cgroup_dir);
  if (absl::IsNotFound(stats.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", id, " has no cgroup v2 directory ", c->cgroup_dir));
  }
  return stats;
}

absl::Status ContainerManager::UpdateContainer(const std::string& id,
                                               absl::string_view resources_json) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  ASSIGN_OR_RETURN(nlohmann::json in, ParseJson("resources_json", resources_json));
  ASSIGN_OR_RETURN(nlohmann::json resources, SanitizeResources(in));
  absl::MutexLock op(&c->op_mu);
  {
    absl::MutexLock lock(&c->mu);
    c->RefreshLocked();
    if (c->state != ContainerState::kRunning && c->state != ContainerState::kPaused &&
        c->state != ContainerState::kCreated) {
      return WrongState(id, c->state, "created, running or paused");
    }
  }
  std::string file = c->dir + "/resources.json";
  RETURN_IF_ERROR(WriteFileAtomic(file, DumpJson(resources), 0600));
  return crun_->Update(id, file);
}

absl::Status ContainerManager::StopAndDelete(Container* c, absl::Duration timeout) {
  std::shared_ptr<Process> init;
  ContainerState state;
  {
    absl::MutexLock lock(&c->mu);
    init = c->init;
    state = c->state;
  }
  if (init != nullptr && init->state() != ProcessState::kExited) {
    if (state == ContainerState::kPaused) {
      absl::Status s = crun_->Resume(c->id);
      if (!s.ok()) Log()->warn("remove {}: resume before stop: {}", c->id, s.ToString());
    }
    if (state != ContainerState::kCreated) {
      absl::Status s = init->Signal(SIGTERM);
      if (!s.ok() && !absl::IsNotFound(s)) Log()->warn("remove {}: SIGTERM: {}", c->id, s.ToString());
      if (!init->WaitExit(absl::Now() + timeout)) {
        Log()->info("remove {}: no exit {} after SIGTERM, sending SIGKILL", c->id,
                    absl::FormatDuration(timeout));
      }
    }
    if (init->state() != ProcessState::kExited) {
      absl::Status s = crun_->Kill(c->id, SIGKILL, /*all=*/true);
      if (!s.ok()) (void)init->Signal(SIGKILL);
      if (!init->WaitExit(absl::Now() + kKillGrace)) {
        return absl::DeadlineExceededError(
            absl::StrCat("container ", c->id, " did not exit after SIGKILL"));
      }
    }
  }
  absl::Status deleted = crun_->Delete(c->id, /*force=*/true);
  if (!deleted.ok()) Log()->warn("remove {}: {}", c->id, deleted.ToString());
  std::vector<std::shared_ptr<Process>> processes;
  {
    absl::MutexLock lock(&c->mu);
    c->state = ContainerState::kStopped;
    if (c->init) processes.push_back(c->init);
    for (auto& [exec_id, p] : c->execs) processes.push_back(p);
  }
  for (auto& p : processes) p->io()->Shutdown();
  return UnmountAndRemoveTree(c->dir);
}

absl::Status ContainerManager::RemoveContainer(const std::string& id, absl::Duration timeout) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  {
    absl::MutexLock op(&c->op_mu);
    std::shared_ptr<Process> init;
    {
      absl::MutexLock lock(&c->mu);
      init = c->init;
    }
    bool running = init != nullptr && init->state() != ProcessState::kExited;
    if (running && timeout <= absl::ZeroDuration()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "container ", id, " is running; stop it first or pass a timeout"));
    }
    RETURN_IF_ERROR(StopAndDelete(c.get(), timeout));
  }
  absl::MutexLock lock(&mu_);
  containers_.erase(id);
  if (c->sandbox) have_sandbox_container_ = false;
  Log()->info("container {} removed", id);
  return absl::OkStatus();
}

std::shared_ptr<OomSubscription> ContainerManager::SubscribeOom() {
  auto sub = std::make_shared<OomSubscription>();
  absl::MutexLock lock(&mu_);
  if (sandbox_ == SandboxState::kDestroyed || stopping_) {
    absl::MutexLock sub_lock(&sub->mu);
    sub->closed = true;
  }
  oom_subs_.push_back(sub);
  return sub;
}

void ContainerManager::UnsubscribeOom(const std::shared_ptr<OomSubscription>& sub) {
  absl::MutexLock lock(&mu_);
  std::erase(oom_subs_, sub);
}

void ContainerManager::PollOomOnce() {
  std::vector<std::shared_ptr<Container>> containers;
  {
    absl::MutexLock lock(&mu_);
    if (oom_subs_.empty() && containers_.empty()) return;
    for (const auto& [id, c] : containers_) containers.push_back(c);
  }
  for (const auto& c : containers) {
    absl::StatusOr<uint64_t> count = ReadOomKillCount(c->cgroup_dir);
    if (!count.ok()) continue;
    uint64_t fresh = 0;
    {
      absl::MutexLock lock(&c->mu);
      if (*count > c->oom_kills_seen) fresh = *count - c->oom_kills_seen;
      c->oom_kills_seen = std::max(c->oom_kills_seen, *count);
    }
    if (fresh == 0) continue;
    Log()->warn("container {}: {} OOM kill(s)", c->id, fresh);
    absl::MutexLock lock(&mu_);
    for (auto& sub : oom_subs_) {
      absl::MutexLock sub_lock(&sub->mu);
      for (uint64_t i = 0; i < fresh && sub->events.size() < 4096; ++i) sub->events.push_back(c->id);
    }
  }
}

void ContainerManager::OomLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&stop), kOomPollInterval);
      if (stopping_) return;
    }
    PollOomOnce();
  }
}

}  // namespace cloak::agent
