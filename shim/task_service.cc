#include "shim/task_service.h"

#include <unistd.h>

#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "containerd/events/task.pb.h"
#include "nlohmann/json.hpp"
#include "shim/stdio.h"
#include "shim/task_translate.h"
#include "spdlog/spdlog.h"

namespace cloak::shim {
namespace {

namespace agentpb = ::cloak::agent::v1;
namespace events = ::containerd::events;
namespace types = ::containerd::v1::types;
using google::protobuf::Empty;

std::shared_ptr<spdlog::logger> Log() { return Logger("shim"); }

// Annotation on the spec the agent receives: registries the guest may use
// over plain HTTP (comma separated host[:port]).

enum class ProcState { kCreated, kRunning, kPaused, kStopped };

types::Status ToApiStatus(ProcState s) {
  switch (s) {
    case ProcState::kCreated: return types::CREATED;
    case ProcState::kRunning: return types::RUNNING;
    case ProcState::kPaused: return types::PAUSED;
    case ProcState::kStopped: return types::STOPPED;
  }
  return types::UNKNOWN;
}

std::string ProcName(const std::string& container_id, const std::string& exec_id) {
  return exec_id.empty() ? absl::StrCat("container ", container_id)
                         : absl::StrCat("exec ", exec_id, " of container ", container_id);
}

}  // namespace

struct TaskService::Process {
  std::string container_id;
  std::string exec_id;  // "" for init
  std::shared_ptr<Sandbox> sandbox;
  StdioUris uris;
  std::unique_ptr<ProcessIo> io;
  std::string process_json;  // execs: the OCI process

  mutable absl::Mutex mu;
  ProcState state ABSL_GUARDED_BY(mu) = ProcState::kCreated;
  uint32_t pid ABSL_GUARDED_BY(mu) = 0;
  uint32_t exit_status ABSL_GUARDED_BY(mu) = 0;
  absl::Time exited_at ABSL_GUARDED_BY(mu) = absl::UnixEpoch();
  bool started ABSL_GUARDED_BY(mu) = false;
  absl::Notification exited;
  Cancellation wait_cancel;
  std::thread waiter;

  std::string name() const { return ProcName(container_id, exec_id); }
  // The process's id in events: exec id, or the container id for init.
  std::string event_id() const { return exec_id.empty() ? container_id : exec_id; }
  ~Process() {
    wait_cancel.Cancel();
    if (waiter.joinable()) {
      if (waiter.get_id() == std::this_thread::get_id()) {
        waiter.detach();
      } else {
        waiter.join();
      }
    }
    if (io) io->Close();
  }
};

struct TaskService::Container {
  std::string id;
  std::string bundle;
  PodInfo pod;
  std::shared_ptr<Sandbox> sandbox;
  bool owns_sandbox = false;
  std::vector<::containerd::types::Mount> rootfs;
  std::shared_ptr<Process> init;
  absl::Mutex mu;
  std::map<std::string, std::shared_ptr<Process>> execs ABSL_GUARDED_BY(mu);
};

TaskService::TaskService(TaskServiceOptions options) : options_(std::move(options)) {}

TaskService::~TaskService() { Teardown(); }

size_t TaskService::ContainerCount() const {
  absl::MutexLock lock(&mu_);
  return containers_.size();
}

void TaskService::Teardown() {
  std::map<std::string, std::shared_ptr<Sandbox>> sandboxes;
  std::map<std::string, std::shared_ptr<Container>> containers;
  {
    absl::MutexLock lock(&mu_);
    sandboxes.swap(sandboxes_);
    containers.swap(containers_);
  }
  for (auto& [id, sandbox] : sandboxes) {
    absl::Status s = sandbox->Destroy();
    if (!s.ok()) Log()->warn("sandbox={} teardown: {}", id, s.ToString());
  }
  // Processes join their waiters as they are released.
  containers.clear();
}

absl::StatusOr<std::shared_ptr<TaskService::Container>> TaskService::FindContainer(
    const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = containers_.find(id);
  if (it == containers_.end()) {
    return absl::NotFoundError(absl::StrCat("container ", id, " not created: not found in this shim"));
  }
  return it->second;
}

absl::StatusOr<std::shared_ptr<TaskService::Process>> TaskService::FindProcess(
    const std::string& id, const std::string& exec_id) const {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, FindContainer(id));
  if (exec_id.empty()) return c->init;
  absl::MutexLock lock(&c->mu);
  auto it = c->execs.find(exec_id);
  if (it == c->execs.end()) {
    return absl::NotFoundError(absl::StrCat("exec ", exec_id, " of container ", id, " not found"));
  }
  return it->second;
}

void TaskService::StartIo(const std::shared_ptr<Process>& p) {
  if (!p->io) return;
  std::shared_ptr<Sandbox> sandbox = p->sandbox;
  const std::string cid = p->container_id;
  const std::string eid = p->exec_id;
  for (StreamKind kind : {StreamKind::kStdout, StreamKind::kStderr}) {
    p->io->StartOutput(kind, [sandbox, cid, eid, kind](
                                 const std::function<bool(absl::string_view)>& sink,
                                 Cancellation& cancel) {
      return sandbox->ReadOutput(cid, eid, kind, sink, cancel);
    });
  }
  p->io->StartStdin(
      [sandbox, cid, eid](absl::string_view data) { return sandbox->WriteStdin(cid, eid, data); },
      [sandbox, cid, eid] { return sandbox->CloseStdin(cid, eid); });
}

void TaskService::StartWaiter(const std::shared_ptr<Process>& p) {
  // The thread holds a weak reference: a deleted process is not kept alive.
  p->waiter = std::thread([this, weak = std::weak_ptr<Process>(p)] {
    std::shared_ptr<Process> proc = weak.lock();
    if (proc) WaitLoop(std::move(proc));
  });
}

void TaskService::WaitLoop(std::shared_ptr<Process> p) {
  absl::StatusOr<ProcessExit> exit =
      p->sandbox->WaitProcess(p->container_id, p->exec_id, p->wait_cancel);
  ProcessExit result;
  if (exit.ok()) {
    result = *exit;
  } else {
    if (p->wait_cancel.cancelled()) return;  // process deleted / shim going away
    Log()->warn("{}: waiting for its exit failed: {}; reporting exit status {}", p->name(),
                exit.status().ToString(), kLostExitStatus);
    result = ProcessExit{kLostExitStatus, absl::Now()};
  }
  // No output lost: the streams end after the process's last byte.
  if (p->io && !p->io->WaitOutput(absl::Now() + kIoDrainTimeout)) {
    Log()->warn("{}: output still open {} after exit (a child holds it?); cut", p->name(),
                absl::FormatDuration(kIoDrainTimeout));
  }
  RecordExit(p, result.exit_status, result.exited_at);
}

void TaskService::RecordExit(const std::shared_ptr<Process>& p, uint32_t exit_status,
                             absl::Time exited_at) {
  if (p->exec_id.empty()) {
    // init's exit is the container's last: wait for its execs first.
    absl::StatusOr<std::shared_ptr<Container>> c = FindContainer(p->container_id);
    if (c.ok()) {
      std::vector<std::shared_ptr<Process>> execs;
      {
        absl::MutexLock lock(&(*c)->mu);
        for (auto& [id, e] : (*c)->execs) execs.push_back(e);
      }
      const absl::Time deadline = absl::Now() + kExecExitWait;
      for (auto& e : execs) {
        bool started;
        {
          absl::MutexLock lock(&e->mu);
          started = e->started;
        }
        if (started) e->exited.WaitForNotificationWithDeadline(deadline);
      }
    }
  }
  uint32_t pid;
  {
    absl::MutexLock lock(&p->mu);
    if (p->state == ProcState::kStopped) return;
    p->state = ProcState::kStopped;
    p->exit_status = exit_status;
    p->exited_at = exited_at;
    pid = p->pid;
  }
  events::TaskExit event;
  event.set_container_id(p->container_id);
  event.set_id(p->event_id());
  event.set_pid(pid);
  event.set_exit_status(exit_status);
  *event.mutable_exited_at() = ToTimestamp(exited_at);
  options_.events->Publish(kTopicExit, event);
  Log()->info("{} exited with status {}", p->name(), exit_status);
  p->exited.Notify();
}

absl::Status TaskService::CopyVolumes(const std::string& container_id,
                                      const std::shared_ptr<Sandbox>& sandbox,
                                      const std::string& spec_json) {
  ASSIGN_OR_RETURN(std::vector<GuestVolume> volumes, VolumesOfSpec(spec_json));
  if (volumes.empty()) return absl::OkStatus();
  std::shared_ptr<VolumeSync> sync;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<VolumeSync>& slot = volume_syncs_[sandbox->id()];
    if (slot == nullptr) {
      std::weak_ptr<Sandbox> weak = sandbox;
      slot = std::make_shared<VolumeSync>(
          sandbox->id(), [weak](const agentpb::CopyFileRequest& r) -> absl::Status {
            std::shared_ptr<Sandbox> s = weak.lock();
            if (s == nullptr || s->dead()) return absl::UnavailableError("the sandbox is gone");
            return s->CopyFile(r);
          });
    }
    sync = slot;
  }
  for (const GuestVolume& v : volumes) {
    if (v.empty_dir) {
      Log()->info("container={} volume {}: emptyDir, made in guest memory", container_id,
                  v.guest_path);
      continue;
    }
    absl::Status s = sync->Add(v);
    if (!s.ok()) {
      Log()->error("container={} volume {} from {} refused: {}", container_id, v.guest_path,
                   v.host_source, std::string(s.message()));
      return Annotate(s, absl::StrCat("volume ", v.kind, "/", v.name, " from ", v.host_source));
    }
  }
  return absl::OkStatus();
}

void TaskService::DropVolumes(const std::string& sandbox_id) {
  std::shared_ptr<VolumeSync> sync;
  {
    absl::MutexLock lock(&mu_);
    auto it = volume_syncs_.find(sandbox_id);
    if (it == volume_syncs_.end()) return;
    sync = std::move(it->second);
    volume_syncs_.erase(it);
  }
  sync.reset();  // joins the watcher outside mu_
}

void TaskService::OnSandboxExit(const std::string& sandbox_id, const std::string& reason) {
  Log()->error("sandbox={} ended: {}; its tasks are reported exited", sandbox_id, reason);
  std::vector<std::shared_ptr<Container>> affected;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, c] : containers_) {
      if (c->pod.sandbox_id == sandbox_id) affected.push_back(c);
    }
  }
  // Running processes see their WaitProcess fail and report themselves;
  // processes never started have no waiter: report them here, execs first.
  for (auto& c : affected) {
    std::vector<std::shared_ptr<Process>> procs;
    {
      absl::MutexLock lock(&c->mu);
      for (auto& [id, e] : c->execs) procs.push_back(e);
    }
    procs.push_back(c->init);
    for (auto& p : procs) {
      bool never_started;
      {
        absl::MutexLock lock(&p->mu);
        never_started = !p->started && p->state == ProcState::kCreated;
      }
      if (never_started && !p->exec_id.empty()) {
        // An exec that never ran has no exit to report (runc's shim sends
        // none either); only its Wait must end.
        (void)FailStart(p, absl::UnavailableError(absl::StrCat("sandbox ", sandbox_id, " ended")));
      } else if (never_started) {
        if (p->io) p->io->Close();
        RecordExit(p, kLostExitStatus, absl::Now());
      }
    }
  }
}

// ---------------------------------------------------------------- RPCs --

absl::StatusOr<taskapi::CreateTaskResponse> TaskService::Create(
    const Ctx& ctx, const taskapi::CreateTaskRequest& req) {
  const absl::Time begin = absl::Now();
  RETURN_IF_ERROR(ttrpc::ValidateIdentifier(req.id()));
  if (!req.checkpoint().empty()) {
    return absl::UnimplementedError("restoring from a checkpoint is not supported by cloak");
  }
  ASSIGN_OR_RETURN(PodInfo pod, ReadPodInfo(req.bundle(), req.id()));
  // cloak-snapshotter's rootfs for an image only the guest has names it; the
  // annotations (CRI's image name, io.cloak.image) still come first.
  const std::string rootfs_image = GuestPullImageFromRootfs(req.rootfs());
  if (pod.image.empty()) pod.image = rootfs_image;
  const bool cri_sandbox = [&] {
    auto it = pod.annotations.find(std::string(kCriContainerType));
    return it != pod.annotations.end() && it->second == "sandbox";
  }();
  if (!cri_sandbox && pod.image.empty()) {
    // Plain `ctr run IMAGE`: containerd knows the image and its digest; the
    // guest pulls exactly that digest.
    std::string why = "no image lookup in this shim";
    if (options_.image_lookup) {
      absl::StatusOr<ContainerImage> found = options_.image_lookup(req.id());
      absl::StatusOr<std::string> pinned =
          found.ok() ? PinnedImageReference(found->name, found->digest) : found.status();
      if (pinned.ok()) {
        pod.image = *pinned;
        Log()->info("container={} image {} (containerd's record): the guest pulls {}", req.id(),
                    found->name, pod.image);
      } else {
        why = std::string(pinned.status().message());
      }
    }
    if (pod.image.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "container ", req.id(), " names no image for the guest to pull (", why,
          "): run it from an image (`ctr run IMAGE ID`) or pass --annotation ", kCloakImage,
          "=REF (under CRI, ", kCriImageName, " is set for you)"));
    }
  }
  std::string config_path;
  if (req.has_options()) {
    ASSIGN_OR_RETURN(config_path, ConfigPathFromOptions(req.options()));
  }
  ASSIGN_OR_RETURN(std::string spec_json, ReadFile(req.bundle() + "/config.json"));

  {
    absl::MutexLock lock(&mu_);
    if (containers_.count(req.id()) != 0 || creating_.count(req.id()) != 0) {
      return absl::AlreadyExistsError(absl::StrCat("container ", req.id(), " already exists"));
    }
    if (pod.is_sandbox && sandboxes_.count(pod.sandbox_id) != 0) {
      return absl::AlreadyExistsError(absl::StrCat("sandbox ", pod.sandbox_id, " already exists"));
    }
    creating_.insert(req.id());
  }
  struct Unreserve {
    TaskService* self;
    std::string id;
    ~Unreserve() {
      absl::MutexLock lock(&self->mu_);
      self->creating_.erase(id);
    }
  } unreserve{this, req.id()};

  auto c = std::make_shared<Container>();
  c->id = req.id();
  c->bundle = req.bundle();
  c->pod = pod;
  c->rootfs.assign(req.rootfs().begin(), req.rootfs().end());

  // The process's stdio first: a bad URI fails before a VM boots.
  auto p = std::make_shared<Process>();
  p->container_id = req.id();
  p->uris = StdioUris{req.stdin(), req.stdout(), req.stderr(), req.terminal()};
  ASSIGN_OR_RETURN(p->io, ProcessIo::Open(p->uris, {req.id(), options_.namespace_name}));

  if (pod.is_sandbox) {
    ASSIGN_OR_RETURN(std::unique_ptr<Sandbox> made,
                     options_.sandbox_factory(SandboxRequest{pod.sandbox_id, req.bundle(), pod,
                                                             config_path, options_.debug}));
    std::shared_ptr<Sandbox> sandbox(std::move(made));
    const std::string sid = pod.sandbox_id;
    sandbox->SetVmExitCallback(
        [this, sid](const std::string& reason) { OnSandboxExit(sid, reason); });
    sandbox->SetOomCallback([this](const std::string& container_id) {
      events::TaskOOM event;
      event.set_container_id(container_id);
      options_.events->Publish(kTopicOom, event);
    });
    RETURN_IF_ERROR(sandbox->Boot());
    if (sandbox->agent_policy_allow_all() && options_.annotate_container) {
      absl::Status marked = options_.annotate_container(req.id(), std::string(kAgentPolicyAnnotation),
                                                        std::string(kAgentPolicyAllowAll));
      if (!marked.ok()) {
        Log()->warn("sandbox={} could not mark containerd's record with {}={}: {}", sid,
                    std::string(kAgentPolicyAnnotation), std::string(kAgentPolicyAllowAll),
                    marked.ToString());
      }
    }
    c->sandbox = sandbox;
    c->owns_sandbox = true;
    absl::MutexLock lock(&mu_);
    sandboxes_[sid] = sandbox;
  } else {
    absl::MutexLock lock(&mu_);
    auto it = sandboxes_.find(pod.sandbox_id);
    if (it == sandboxes_.end()) {
      return absl::NotFoundError(absl::StrCat("sandbox ", pod.sandbox_id, " of container ",
                                              req.id(), " is not running in this shim"));
    }
    c->sandbox = it->second;
  }
  p->sandbox = c->sandbox;
  if (ctx.IsCancelled()) return AbandonCreate(c, /*created_in_guest=*/false);

  // Pod volumes reach the guest before the container that mounts them.
  if (!cri_sandbox) {
    absl::Status copied = CopyVolumes(req.id(), c->sandbox, spec_json);
    if (!copied.ok()) {
      if (c->owns_sandbox) {
        {
          absl::MutexLock lock(&mu_);
          sandboxes_.erase(pod.sandbox_id);
        }
        DropVolumes(pod.sandbox_id);
        (void)c->sandbox->Destroy();
      }
      return Annotate(copied, absl::StrCat("container ", req.id(), ": copy its volumes into the guest"));
    }
  }

  agentpb::CreateContainerRequest create;
  create.set_container_id(req.id());
  // A pod on its own network cannot reach the host's loopback: its image
  // reference is used as given.
  GuestImage image = c->sandbox->host_loopback_reachable() ? GuestImageReference(pod.image)
                                                           : GuestImage{pod.image, ""};
  create.set_oci_spec_json(spec_json);
  create.set_image(image.reference);
  *create.mutable_stdio() = AgentStdio(req.terminal(), req.stdin(), req.stdout(), req.stderr());
  create.set_sandbox_container(cri_sandbox);
  if (!rootfs_image.empty()) {
    Log()->info("container={} rootfs holds no host layers (cloak-snapshotter: guest pull of {})",
                req.id(), rootfs_image);
  }
  if (image.reference != pod.image) {
    Log()->info("container={} image {} is on the host's loopback: the guest pulls {}", req.id(),
                pod.image, image.reference);
  }
  absl::StatusOr<uint32_t> pid = c->sandbox->CreateContainer(create);
  if (!pid.ok()) {
    if (c->owns_sandbox) {
      {
        absl::MutexLock lock(&mu_);
        sandboxes_.erase(pod.sandbox_id);
      }
      DropVolumes(pod.sandbox_id);
      (void)c->sandbox->Destroy();
    }
    return Annotate(pid.status(), absl::StrCat("create container ", req.id(), " in the guest"));
  }
  {
    absl::MutexLock lock(&p->mu);
    p->pid = *pid;
  }
  c->init = p;
  if (ctx.IsCancelled()) return AbandonCreate(c, /*created_in_guest=*/true);
  StartIo(p);
  {
    absl::MutexLock lock(&mu_);
    containers_[req.id()] = c;
  }

  events::TaskCreate event;
  event.set_container_id(req.id());
  event.set_bundle(req.bundle());
  for (const auto& m : req.rootfs()) *event.add_rootfs() = m;
  event.mutable_io()->set_stdin(req.stdin());
  event.mutable_io()->set_stdout(req.stdout());
  event.mutable_io()->set_stderr(req.stderr());
  event.mutable_io()->set_terminal(req.terminal());
  event.set_pid(*pid);
  options_.events->Publish(kTopicCreate, event);
  Log()->info("sandbox={} container={} step=create-task took {}", pod.sandbox_id, req.id(),
              absl::FormatDuration(absl::Trunc(absl::Now() - begin, absl::Milliseconds(1))));
  taskapi::CreateTaskResponse response;
  response.set_pid(*pid);
  return response;
}

absl::Status TaskService::AbandonCreate(const std::shared_ptr<Container>& c,
                                        bool created_in_guest) {
  const std::string& sid = c->pod.sandbox_id;
  Log()->warn(
      "sandbox={} container={}: the containerd connection that asked for this task closed before "
      "it was created (containerd stopped or restarted); containerd never learns of it, so the "
      "shim undoes the create{}",
      sid, c->id, c->owns_sandbox ? " and stops the VM" : "");
  if (created_in_guest && !c->owns_sandbox && !c->sandbox->dead()) {
    absl::Status removed = c->sandbox->RemoveContainer(c->id, kRemoveTimeoutSeconds);
    if (!removed.ok() && removed.code() != absl::StatusCode::kNotFound) {
      Log()->warn("container={} remove in the guest: {}", c->id, removed.ToString());
    }
  }
  if (c->init && c->init->io) c->init->io->Close();
  if (c->owns_sandbox) {
    {
      absl::MutexLock lock(&mu_);
      sandboxes_.erase(sid);
    }
    DropVolumes(sid);
    absl::Status destroyed = c->sandbox->Destroy();
    if (!destroyed.ok()) Log()->warn("sandbox={} destroy: {}", sid, destroyed.ToString());
  }
  // Nobody will ask this shim to shut down: with nothing left it exits, and
  // containerd (restarted) sees its connection close and runs `delete`.
  bool exit_now = false;
  {
    absl::MutexLock lock(&mu_);
    const bool only_this = creating_.empty() || (creating_.size() == 1 && creating_.count(c->id));
    if (containers_.empty() && only_this && !shutdown_requested_) {
      shutdown_requested_ = true;
      exit_now = true;
    }
  }
  if (exit_now) {
    Log()->info("sandbox={}: no container left after the abandoned create; the shim exits", sid);
    if (options_.on_shutdown) options_.on_shutdown();
  }
  return absl::CancelledError(absl::StrCat("create of container ", c->id,
                                           " abandoned: containerd's connection closed before "
                                           "the answer (containerd stopped or restarted)"));
}

absl::Status TaskService::FailStart(const std::shared_ptr<Process>& p, absl::Status error) {
  // As runc's shim does: the process never ran, so its Wait returns (the
  // client waits before it starts) and its stdio ends, since containerd's
  // client drains the fifos before it returns the error. No exit event.
  if (p->io) p->io->Close();
  {
    absl::MutexLock lock(&p->mu);
    p->state = ProcState::kStopped;
    p->exit_status = kStartFailedExitStatus;
    p->exited_at = absl::Now();
  }
  if (!p->exited.HasBeenNotified()) p->exited.Notify();
  Log()->info("{} failed to start: {}", p->name(), error.ToString());
  return error;
}

absl::StatusOr<taskapi::StartResponse> TaskService::Start(const Ctx&,
                                                          const taskapi::StartRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, FindContainer(req.id()));
  ASSIGN_OR_RETURN(std::shared_ptr<Process> p, FindProcess(req.id(), req.exec_id()));
  {
    absl::MutexLock lock(&p->mu);
    if (p->state != ProcState::kCreated || p->started) {
      return absl::FailedPreconditionError(
          absl::StrCat(p->name(), " cannot be started: it was already started"));
    }
    p->started = true;
  }
  uint32_t pid = 0;
  if (req.exec_id().empty()) {
    absl::StatusOr<uint32_t> started = c->sandbox->StartContainer(req.id());
    if (!started.ok()) return FailStart(p, started.status());
    pid = *started;
  } else {
    {
      absl::MutexLock lock(&c->init->mu);
      if (c->init->state != ProcState::kRunning) {
        absl::MutexLock plock(&p->mu);
        p->started = false;
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot start exec ", req.exec_id(), ": container ", req.id(), " is not running"));
      }
    }
    agentpb::ExecProcessRequest exec;
    exec.set_container_id(req.id());
    exec.set_exec_id(req.exec_id());
    exec.set_process_json(p->process_json);
    *exec.mutable_stdio() =
        AgentStdio(p->uris.terminal, p->uris.stdin_uri, p->uris.stdout_uri, p->uris.stderr_uri);
    absl::StatusOr<uint32_t> started = c->sandbox->ExecProcess(exec);
    if (!started.ok()) return FailStart(p, started.status());
    pid = *started;
    StartIo(p);
  }
  {
    absl::MutexLock lock(&p->mu);
    p->pid = pid;
    p->state = ProcState::kRunning;
  }
  if (req.exec_id().empty()) {
    events::TaskStart event;
    event.set_container_id(req.id());
    event.set_pid(pid);
    options_.events->Publish(kTopicStart, event);
  } else {
    events::TaskExecStarted event;
    event.set_container_id(req.id());
    event.set_exec_id(req.exec_id());
    event.set_pid(pid);
    options_.events->Publish(kTopicExecStarted, event);
  }
  // After the start event, so the exit event can only follow it.
  StartWaiter(p);
  taskapi::StartResponse response;
  response.set_pid(pid);
  return response;
}

absl::StatusOr<taskapi::DeleteResponse> TaskService::Delete(const Ctx&,
                                                            const taskapi::DeleteRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, FindContainer(req.id()));
  ASSIGN_OR_RETURN(std::shared_ptr<Process> p, FindProcess(req.id(), req.exec_id()));
  taskapi::DeleteResponse response;
  {
    absl::MutexLock lock(&p->mu);
    if (p->state == ProcState::kRunning || p->state == ProcState::kPaused) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot delete a running process: ", p->name(), " is still running"));
    }
    response.set_pid(p->pid);
    response.set_exit_status(p->exit_status);
    *response.mutable_exited_at() =
        ToTimestamp(p->state == ProcState::kStopped ? p->exited_at : absl::Now());
  }
  if (!req.exec_id().empty()) {
    {
      absl::MutexLock lock(&c->mu);
      c->execs.erase(req.exec_id());
    }
    p->wait_cancel.Cancel();
    if (p->io) p->io->Close();
    return response;
  }

  // init: the container goes; with it the sandbox if it is the pod's.
  if (!c->sandbox->dead()) {
    absl::Status removed = c->sandbox->RemoveContainer(req.id(), kRemoveTimeoutSeconds);
    if (!removed.ok() && removed.code() != absl::StatusCode::kNotFound) {
      Log()->warn("container={} remove in the guest: {}", req.id(), removed.ToString());
    }
  }
  p->wait_cancel.Cancel();
  if (p->io) p->io->Close();
  std::vector<std::shared_ptr<Process>> execs;
  {
    absl::MutexLock lock(&c->mu);
    for (auto& [id, e] : c->execs) execs.push_back(e);
    c->execs.clear();
  }
  for (auto& e : execs) {
    e->wait_cancel.Cancel();
    if (e->io) e->io->Close();
  }
  if (c->owns_sandbox) {
    {
      absl::MutexLock lock(&mu_);
      sandboxes_.erase(c->pod.sandbox_id);
    }
    DropVolumes(c->pod.sandbox_id);
    absl::Status destroyed = c->sandbox->Destroy();
    if (!destroyed.ok()) {
      Log()->warn("sandbox={} destroy: {}", c->pod.sandbox_id, destroyed.ToString());
    }
  }
  {
    absl::MutexLock lock(&mu_);
    containers_.erase(req.id());
  }
  events::TaskDelete event;
  event.set_container_id(req.id());
  event.set_pid(response.pid());
  event.set_exit_status(response.exit_status());
  *event.mutable_exited_at() = response.exited_at();
  options_.events->Publish(kTopicDelete, event);
  return response;
}

absl::StatusOr<taskapi::StateResponse> TaskService::State(const Ctx&,
                                                          const taskapi::StateRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, FindContainer(req.id()));
  ASSIGN_OR_RETURN(std::shared_ptr<Process> p, FindProcess(req.id(), req.exec_id()));
  taskapi::StateResponse response;
  response.set_id(req.id());
  response.set_exec_id(req.exec_id());
  response.set_bundle(c->bundle);
  response.set_stdin(p->uris.stdin_uri);
  response.set_stdout(p->uris.stdout_uri);
  response.set_stderr(p->uris.stderr_uri);
  response.set_terminal(p->uris.terminal);
  absl::MutexLock lock(&p->mu);
  response.set_pid(p->pid);
  response.set_status(ToApiStatus(p->state));
  if (p->state == ProcState::kStopped) {
    response.set_exit_status(p->exit_status);
    *response.mutable_exited_at() = ToTimestamp(p->exited_at);
  }
  return response;
}

absl::StatusOr<taskapi::PidsResponse> TaskService::Pids(const Ctx&,
                                                        const taskapi::PidsRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, FindContainer(req.id()));
  ASSIGN_OR_RETURN(std::vector<uint32_t> pids, c->sandbox->ListProcesses(req.id()));
  taskapi::PidsResponse response;
  for (uint32_t pid : pids) response.add_processes()->set_pid(pid);
  return response;
}

absl::StatusOr<Empty> TaskService::Pause(const Ctx&, const taskapi::PauseRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, FindContainer(req.id()));
  {
    absl::MutexLock lock(&c->init->mu);
    if (c->init->state != ProcState::kRunning) {
      return absl::FailedPreconditionError(
          absl::StrCat("container ", req.id(), " is not running: cannot pause it"));
    }
  }
  RETURN_IF_ERROR(c->sandbox->PauseContainer(req.id()));
  {
    absl::MutexLock lock(&c->init->mu);
    if (c->init->state == ProcState::kRunning) c->init->state = ProcState::kPaused;
  }
  events::TaskPaused event;
  event.set_container_id(req.id());
  options_.events->Publish(kTopicPaused, event);
  return Empty();
}

absl::StatusOr<Empty> TaskService::Resume(const Ctx&, const taskapi::ResumeRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, FindContainer(req.id()));
  {
    absl::MutexLock lock(&c->init->mu);
    if (c->init->state != ProcState::kPaused) {
      return absl::FailedPreconditionError(
          absl::StrCat("container ", req.id(), " is not paused: cannot resume it"));
    }
  }
  RETURN_IF_ERROR(c->sandbox->ResumeContainer(req.id()));
  {
    absl::MutexLock lock(&c->init->mu);
    if (c->init->state == ProcState::kPaused) c->init->state = ProcState::kRunning;
  }
  events::TaskResumed event;
  event.set_container_id(req.id());
  options_.events->Publish(kTopicResumed, event);
  return Empty();
}

absl::StatusOr<Empty> TaskService::Checkpoint(const Ctx&, const taskapi::CheckpointTaskRequest&) {
  return absl::UnimplementedError("checkpoint is not supported by cloak: the guest's memory is confidential");
}

absl::StatusOr<Empty> TaskService::Kill(const Ctx&, const taskapi::KillRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, FindContainer(req.id()));
  ASSIGN_OR_RETURN(std::shared_ptr<Process> p, FindProcess(req.id(), req.exec_id()));
  {
    absl::MutexLock lock(&p->mu);
    if (p->state == ProcState::kStopped) {
      return absl::NotFoundError(absl::StrCat("process already finished: ", p->name()));
    }
  }
  if (c->sandbox->dead()) {
    return absl::NotFoundError(absl::StrCat("process already finished: the VM of ", p->name(),
                                            " is gone"));
  }
  absl::Status signalled =
      c->sandbox->SignalProcess(req.id(), req.exec_id(), req.signal(), req.all());
  if (!signalled.ok() && c->sandbox->dead()) {
    // The agent hung and the shim stopped the VM (or the VM ended while the
    // signal was on its way): the process is gone with it, which is what
    // the kill asked for; its exit is reported by its waiter.
    Log()->warn("{}: signal {} not delivered by the agent, but the process ended with its VM: {}",
                p->name(), req.signal(), c->sandbox->dead_reason());
    return Empty();
  }
  RETURN_IF_ERROR(signalled);
  return Empty();
}

absl::StatusOr<Empty> TaskService::Exec(const Ctx&, const taskapi::ExecProcessRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, FindContainer(req.id()));
  RETURN_IF_ERROR(ttrpc::ValidateIdentifier(req.exec_id()));
  {
    absl::MutexLock lock(&c->init->mu);
    if (c->init->state == ProcState::kStopped) {
      return absl::FailedPreconditionError(
          absl::StrCat("container ", req.id(), " has stopped: cannot exec in it"));
    }
  }
  ASSIGN_OR_RETURN(std::string process_json, ExecProcessJson(req.spec()));
  auto p = std::make_shared<Process>();
  p->container_id = req.id();
  p->exec_id = req.exec_id();
  p->sandbox = c->sandbox;
  p->process_json = std::move(process_json);
  p->uris = StdioUris{req.stdin(), req.stdout(), req.stderr(), req.terminal()};
  {
    absl::MutexLock lock(&c->mu);
    if (c->execs.count(req.exec_id()) != 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("exec ", req.exec_id(), " already exists in container ", req.id()));
    }
  }
  ASSIGN_OR_RETURN(p->io, ProcessIo::Open(p->uris, {req.id(), options_.namespace_name}));
  {
    absl::MutexLock lock(&c->mu);
    if (!c->execs.emplace(req.exec_id(), p).second) {
      return absl::AlreadyExistsError(
          absl::StrCat("exec ", req.exec_id(), " already exists in container ", req.id()));
    }
  }
  events::TaskExecAdded event;
  event.set_container_id(req.id());
  event.set_exec_id(req.exec_id());
  options_.events->Publish(kTopicExecAdded, event);
  return Empty();
}

absl::StatusOr<Empty> TaskService::ResizePty(const Ctx&, const taskapi::ResizePtyRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Process> p, FindProcess(req.id(), req.exec_id()));
  RETURN_IF_ERROR(p->sandbox->ResizeTty(req.id(), req.exec_id(), req.width(), req.height()));
  return Empty();
}

absl::StatusOr<Empty> TaskService::CloseIO(const Ctx&, const taskapi::CloseIORequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Process> p, FindProcess(req.id(), req.exec_id()));
  if (req.stdin() && p->io) p->io->CloseStdin();
  return Empty();
}

absl::StatusOr<Empty> TaskService::Update(const Ctx&, const taskapi::UpdateTaskRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, FindContainer(req.id()));
  if (!req.has_resources()) return Empty();
  ASSIGN_OR_RETURN(std::string resources, LinuxResourcesJson(req.resources()));
  RETURN_IF_ERROR(c->sandbox->UpdateContainer(req.id(), resources));
  return Empty();
}

absl::StatusOr<taskapi::WaitResponse> TaskService::Wait(const Ctx& ctx,
                                                        const taskapi::WaitRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Process> p, FindProcess(req.id(), req.exec_id()));
  while (!p->exited.WaitForNotificationWithDeadline(
      std::min(ctx.deadline, absl::Now() + absl::Milliseconds(200)))) {
    if (ctx.IsCancelled()) return absl::CancelledError("wait cancelled: the client went away");
    if (absl::Now() >= ctx.deadline) {
      return absl::DeadlineExceededError(absl::StrCat(p->name(), " still running"));
    }
  }
  taskapi::WaitResponse response;
  absl::MutexLock lock(&p->mu);
  response.set_exit_status(p->exit_status);
  *response.mutable_exited_at() = ToTimestamp(p->exited_at);
  return response;
}

absl::StatusOr<taskapi::StatsResponse> TaskService::Stats(const Ctx&,
                                                          const taskapi::StatsRequest& req) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, FindContainer(req.id()));
  ASSIGN_OR_RETURN(agentpb::StatsContainerResponse stats, c->sandbox->StatsContainer(req.id()));
  taskapi::StatsResponse response;
  *response.mutable_stats() = MetricsAny(stats);
  return response;
}

absl::StatusOr<taskapi::ConnectResponse> TaskService::Connect(const Ctx&,
                                                              const taskapi::ConnectRequest& req) {
  taskapi::ConnectResponse response;
  response.set_shim_pid(static_cast<uint32_t>(::getpid()));
  response.set_version(VersionString());
  absl::StatusOr<std::shared_ptr<Container>> c = FindContainer(req.id());
  if (c.ok() && (*c)->init) {
    absl::MutexLock lock(&(*c)->init->mu);
    response.set_task_pid((*c)->init->pid);
  }
  return response;
}

absl::StatusOr<Empty> TaskService::Shutdown(const Ctx&, const taskapi::ShutdownRequest& req) {
  bool exit_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (!containers_.empty() || !creating_.empty()) {
      Log()->info("shutdown ({}) ignored: {} container(s) still held", req.id(),
                  containers_.size() + creating_.size());
      return Empty();
    }
    if (!shutdown_requested_) {
      shutdown_requested_ = true;
      exit_now = true;
    }
  }
  if (exit_now && options_.on_shutdown) options_.on_shutdown();
  return Empty();
}

void TaskService::Register(ttrpc::Server& server) {
#define CLOAK_REGISTER_TASK_METHOD(Method, Req, Resp)                                      \
  server.RegisterTypedMethod<Req, Resp>(                                                   \
      kTaskService, #Method,                                                               \
      [this](const Ctx& ctx, const Req& req) -> absl::StatusOr<Resp> {                     \
        absl::StatusOr<Resp> r = Method(ctx, req);                                          \
        if (!r.ok()) Log()->info("{} {}: {}", #Method, req.id(), r.status().ToString());   \
        return r;                                                                           \
      })
  CLOAK_REGISTER_TASK_METHOD(State, taskapi::StateRequest, taskapi::StateResponse);
  CLOAK_REGISTER_TASK_METHOD(Create, taskapi::CreateTaskRequest, taskapi::CreateTaskResponse);
  CLOAK_REGISTER_TASK_METHOD(Start, taskapi::StartRequest, taskapi::StartResponse);
  CLOAK_REGISTER_TASK_METHOD(Delete, taskapi::DeleteRequest, taskapi::DeleteResponse);
  CLOAK_REGISTER_TASK_METHOD(Pids, taskapi::PidsRequest, taskapi::PidsResponse);
  CLOAK_REGISTER_TASK_METHOD(Pause, taskapi::PauseRequest, Empty);
  CLOAK_REGISTER_TASK_METHOD(Resume, taskapi::ResumeRequest, Empty);
  CLOAK_REGISTER_TASK_METHOD(Checkpoint, taskapi::CheckpointTaskRequest, Empty);
  CLOAK_REGISTER_TASK_METHOD(Kill, taskapi::KillRequest, Empty);
  CLOAK_REGISTER_TASK_METHOD(Exec, taskapi::ExecProcessRequest, Empty);
  CLOAK_REGISTER_TASK_METHOD(ResizePty, taskapi::ResizePtyRequest, Empty);
  CLOAK_REGISTER_TASK_METHOD(CloseIO, taskapi::CloseIORequest, Empty);
  CLOAK_REGISTER_TASK_METHOD(Update, taskapi::UpdateTaskRequest, Empty);
  CLOAK_REGISTER_TASK_METHOD(Wait, taskapi::WaitRequest, taskapi::WaitResponse);
  CLOAK_REGISTER_TASK_METHOD(Stats, taskapi::StatsRequest, taskapi::StatsResponse);
  CLOAK_REGISTER_TASK_METHOD(Connect, taskapi::ConnectRequest, taskapi::ConnectResponse);
  CLOAK_REGISTER_TASK_METHOD(Shutdown, taskapi::ShutdownRequest, Empty);
#undef CLOAK_REGISTER_TASK_METHOD
}

}  // namespace cloak::shim
