#include "shim/sandbox.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cloak/agent/v1/agent.grpc.pb.h"
#include "common/files.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "shim/bundle.h"
#include "shim/task_translate.h"
#include "spdlog/spdlog.h"

namespace cloak::shim {
namespace {

namespace agentpb = ::cloak::agent::v1;
using Stub = agentpb::AgentService::Stub;

constexpr int kConsoleTailLines = 20;
// Between answering the request that found a hung agent and stopping its VM
// (Impl::Bounded).
constexpr absl::Duration kHungReportDelay = absl::Milliseconds(200);

std::chrono::system_clock::time_point ChronoDeadline(absl::Time t) {
  if (t == absl::InfiniteFuture()) return std::chrono::system_clock::time_point::max();
  return absl::ToChronoTime(t);
}

}  // namespace

struct Sandbox::Impl {
  enum class State { kNew, kReady, kDead, kDestroyed };

  SandboxOptions options;
  std::unique_ptr<hypervisor::Hypervisor> hv;
  AgentConnector connector;
  std::shared_ptr<spdlog::logger> log = Logger("shim");

  mutable absl::Mutex mu;
  State state ABSL_GUARDED_BY(mu) = State::kNew;
  std::string dead_reason ABSL_GUARDED_BY(mu);
  std::shared_ptr<grpc::Channel> channel ABSL_GUARDED_BY(mu);
  std::shared_ptr<Stub> stub ABSL_GUARDED_BY(mu);
  std::set<grpc::ClientContext*> calls ABSL_GUARDED_BY(mu);
  std::function<void(const std::string&)> on_vm_exit;
  std::function<void(const std::string&)> on_oom;
  // The agent reported "policy-allow-all" (set once during Boot).
  std::atomic<bool> policy_allow_all{false};

  absl::Mutex threads_mu;
  std::thread monitor ABSL_GUARDED_BY(threads_mu);
  std::thread oom_watcher ABSL_GUARDED_BY(threads_mu);
  std::thread health_checker ABSL_GUARDED_BY(threads_mu);
  std::thread hang_reporter ABSL_GUARDED_BY(threads_mu);
  // The sandbox died because its agent hung (MarkHung).
  std::atomic<bool> agent_hung{false};
  std::unique_ptr<hypervisor::ConsoleLogPump> console ABSL_GUARDED_BY(threads_mu);
  std::atomic<bool> stopping{false};
  Cancellation oom_cancel;
  absl::Notification health_stop;
  std::atomic<bool> health_stop_sent{false};

  void StopHealthChecks() {
    if (!health_stop_sent.exchange(true)) health_stop.Notify();
  }

  void Step(absl::string_view step, absl::Time started) {
    log->info("sandbox={} step={} took {}", options.id, std::string(step),
              absl::FormatDuration(absl::Trunc(absl::Now() - started, absl::Milliseconds(1))));
  }

  std::string Tail() const {
    std::string tail = hv->ConsoleTail(kConsoleTailLines);
    if (tail.empty()) return " (the guest console is empty)";
    return absl::StrCat("; last lines of the guest console:\n", tail);
  }

  absl::Status FromGrpc(absl::string_view method, const grpc::Status& s) {
    if (s.ok()) return absl::OkStatus();
    {
      absl::MutexLock lock(&mu);
      if (state == State::kDead) {
        return absl::UnavailableError(absl::StrCat("agent ", method, ": the sandbox VM exited (",
                                                   dead_reason, ")"));
      }
      if (state == State::kDestroyed) {
        return absl::UnavailableError(
            absl::StrCat("agent ", method, ": the sandbox ", options.id, " was destroyed"));
      }
    }
    return FromGrpcStatus(s, absl::StrCat("agent ", method));
  }

  // Runs one RPC with a deadline, registered for cancellation.
  template <typename Fn>
  absl::Status Call(absl::string_view method, absl::Time deadline, Fn&& fn,
                    Cancellation* cancel = nullptr, bool allow_any_state = false) {
    std::shared_ptr<Stub> s;
    grpc::ClientContext ctx;
    ctx.set_deadline(ChronoDeadline(deadline));
    {
      absl::MutexLock lock(&mu);
      if (stub == nullptr || (!allow_any_state && state != State::kReady && state != State::kNew)) {
        return absl::UnavailableError(absl::StrCat(
            "agent ", method, ": sandbox ", options.id,
            state == State::kDead ? absl::StrCat(" VM exited (", dead_reason, ")")
                                  : std::string(" is not running")));
      }
      s = stub;
      calls.insert(&ctx);
    }
    if (cancel != nullptr) cancel->SetHook([&ctx] { ctx.TryCancel(); });
    grpc::Status status = fn(*s, &ctx);
    if (cancel != nullptr) cancel->ClearHook();
    {
      absl::MutexLock lock(&mu);
      calls.erase(&ctx);
    }
    if (cancel != nullptr && cancel->cancelled() && !status.ok()) {
      return absl::CancelledError(absl::StrCat("agent ", method, ": cancelled"));
    }
    return FromGrpc(method, status);
  }

  void CancelAllCalls() {
    absl::MutexLock lock(&mu);
    for (grpc::ClientContext* ctx : calls) ctx->TryCancel();
  }

  absl::Status Connect(absl::Time deadline) {
    absl::Duration left = deadline - absl::Now();
    if (left < absl::Milliseconds(1)) left = absl::Milliseconds(1);
    ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> ch, connector(hv->Agent(), left));
    absl::MutexLock lock(&mu);
    channel = ch;
    stub = std::shared_ptr<Stub>(agentpb::AgentService::NewStub(ch));
    return absl::OkStatus();
  }

  void MonitorLoop() {
    while (!stopping.load()) {
      absl::StatusOr<ExitInfo> exit = hv->Wait(absl::Now() + absl::Milliseconds(500));
      if (!exit.ok()) {
        if (exit.status().code() != absl::StatusCode::kDeadlineExceeded) {
          absl::SleepFor(absl::Milliseconds(500));
        }
        continue;
      }
      std::string reason = absl::StrCat("the VMM exited with status ", exit->exit_code,
                                        exit->term_signal != 0
                                            ? absl::StrCat(" (signal ", exit->term_signal, ")")
                                            : std::string());
      bool fire = false;
      {
        absl::MutexLock lock(&mu);
        if (state == State::kReady) {
          state = State::kDead;
          dead_reason = reason;
          fire = true;
        }
      }
      if (fire) {
        log->error("sandbox={} {}{}", options.id, reason, Tail());
        CancelAllCalls();
        oom_cancel.Cancel();
        if (on_vm_exit) on_vm_exit(reason);
      }
      return;
    }
  }

  // One health probe, answered within health_timeout or not.
  absl::Status Probe() {
    agentpb::HealthResponse health;
    absl::Status s = Call(
        "Health", absl::Now() + options.health_timeout,
        [&](Stub& stub_ref, grpc::ClientContext* ctx) {
          return stub_ref.Health(ctx, agentpb::HealthRequest(), &health);
        },
        nullptr, /*allow_any_state=*/true);
    if (s.ok() && !health.serving()) return absl::UnavailableError("the agent is not serving");
    return s;
  }

  // The agent did not answer `what` and a health probe within
  // health_timeout. MarkHung: a ready sandbox goes dead (false if it was not
  // ready: already dead or being destroyed). FinishHung: every call in
  // flight ends, the VM is killed and on_vm_exit runs (its tasks are
  // reported exited). DeclareHung does both.
  bool MarkHung(absl::string_view what, const absl::Status& probe) {
    const std::string reason = absl::StrCat(
        "the agent did not answer ", what, " within ", absl::FormatDuration(options.health_timeout),
        " (health probe: ", probe.message(),
        "); the guest or its VMM is hung, so the shim stopped the VM (agent.health_timeout)");
    absl::MutexLock lock(&mu);
    if (state != State::kReady) return false;
    state = State::kDead;
    dead_reason = reason;
    agent_hung.store(true);
    return true;
  }
  void FinishHung() {
    std::string reason;
    {
      absl::MutexLock lock(&mu);
      reason = dead_reason;
    }
    log->error("sandbox={} {}{}", options.id, reason, Tail());
    CancelAllCalls();
    oom_cancel.Cancel();
    StopHealthChecks();
    absl::StatusOr<ExitInfo> stopped = hv->Stop(absl::ZeroDuration());
    if (!stopped.ok()) {
      log->error("sandbox={} stop the hung VM: {}", options.id, stopped.status().ToString());
    }
    if (on_vm_exit) on_vm_exit(reason);
  }
  bool DeclareHung(absl::string_view what, const absl::Status& probe) {
    if (!MarkHung(what, probe)) return false;
    FinishHung();
    return true;
  }

  // Runs `call` (one agent RPC made through Call with the given
  // cancellation) on its own thread. While it has not returned, the agent
  // is probed every health_timeout; when a probe fails too, the agent is
  // hung: the call is cancelled, the sandbox marked dead and *hung set, and
  // Unavailable returned at once. The rest (stopping the VM, reporting the
  // tasks' exits) runs kHungReportDelay later on its own thread, so that
  // the request that found the hang (a Kill) is answered before the exits
  // are published: containerd closes a task's connection when CRI deletes
  // the exited task, which would cut that answer off. A slow agent that
  // still answers probes is waited for until the call's own deadline.
  absl::Status Bounded(absl::string_view method,
                       const std::function<absl::Status(Cancellation*)>& call, bool* hung) {
    *hung = false;
    absl::Status result;
    absl::Notification done;
    Cancellation own;
    std::thread worker([&] {
      result = call(&own);
      done.Notify();
    });
    absl::Status probe;
    while (!done.WaitForNotificationWithTimeout(options.health_timeout)) {
      probe = Probe();
      if (done.HasBeenNotified()) break;
      if (probe.ok()) continue;
      if (probe.code() != absl::StatusCode::kDeadlineExceeded &&
          probe.code() != absl::StatusCode::kUnavailable) {
        continue;
      }
      *hung = true;
      own.Cancel();
      break;
    }
    worker.join();
    if (!*hung) return result;
    if (MarkHung(absl::StrCat(method, " nor a health probe"), probe)) {
      absl::MutexLock lock(&threads_mu);
      hang_reporter = std::thread([this] {
        absl::SleepFor(kHungReportDelay);
        FinishHung();
      });
    }
    return FromGrpc(method, grpc::Status(grpc::StatusCode::UNAVAILABLE, "no answer"));
  }

  // After boot: a probe every health_interval until the sandbox ends.
  void HealthLoop() {
    while (!health_stop.WaitForNotificationWithTimeout(options.health_interval)) {
      {
        absl::MutexLock lock(&mu);
        if (state != State::kReady) return;
      }
      absl::Status probe = Probe();
      if (probe.ok() || stopping.load()) continue;
      if (probe.code() == absl::StatusCode::kDeadlineExceeded ||
          probe.code() == absl::StatusCode::kUnavailable) {
        DeclareHung("a periodic health probe", probe);
        return;
      }
      log->warn("sandbox={} health probe: {}", options.id, probe.ToString());
    }
  }

  void OomLoop() {
    while (!oom_cancel.cancelled()) {
      absl::Status s = Call(
          "WatchOomEvents", absl::InfiniteFuture(),
          [&](Stub& stub_ref, grpc::ClientContext* ctx) {
            auto reader = stub_ref.WatchOomEvents(ctx, agentpb::WatchOomEventsRequest());
            agentpb::OomEvent event;
            while (reader->Read(&event)) {
              log->warn("sandbox={} container={} OOM kill in the guest", options.id,
                        event.container_id());
              if (on_oom) on_oom(event.container_id());
            }
            return reader->Finish();
          },
          &oom_cancel);
      if (oom_cancel.cancelled()) return;
      if (s.code() == absl::StatusCode::kUnimplemented || s.code() == absl::StatusCode::kUnavailable) {
        log->info("sandbox={} OOM watch ended: {}", options.id, s.ToString());
        return;
      }
      absl::SleepFor(absl::Seconds(1));
    }
  }
};

Sandbox::Sandbox(SandboxOptions options, std::unique_ptr<hypervisor::Hypervisor> hypervisor,
                 AgentConnector connector)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->hv = std::move(hypervisor);
  impl_->connector = std::move(connector);
}

Sandbox::~Sandbox() { (void)Destroy(); }

const std::string& Sandbox::id() const { return impl_->options.id; }
bool Sandbox::host_loopback_reachable() const { return impl_->options.host_loopback_reachable; }
bool Sandbox::agent_policy_allow_all() const { return impl_->policy_allow_all; }
pid_t Sandbox::VmmPid() const { return impl_->hv->Pid(); }

void Sandbox::SetVmExitCallback(std::function<void(const std::string&)> callback) {
  impl_->on_vm_exit = std::move(callback);
}
void Sandbox::SetOomCallback(std::function<void(const std::string&)> callback) {
  impl_->on_oom = std::move(callback);
}

absl::Status StateDirError(const std::string& id, const std::string& dir,
                           const absl::Status& cause) {
  const std::string parent = std::filesystem::path(dir).parent_path().string();
  if (absl::IsResourceExhausted(cause)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "sandbox ", id, ": the state directory ", parent,
        " (runtime.state_dir) is full (ENOSPC): ", cause.message(),
        "; free space on its file system (df ", parent,
        ") or set runtime.state_dir to a directory with room, then retry"));
  }
  return Annotate(cause, absl::StrCat("sandbox ", id, ": write its state in ", dir,
                                      " (runtime.state_dir)"));
}

absl::Status MakeStateDir(const std::string& id, const std::string& dir) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return StateDirError(id, dir, ErrnoError(ec.value(), "create ", dir));
  }
  ::chmod(dir.c_str(), 0700);
  absl::Status written = WriteFileAtomic(dir + "/shim.pid", absl::StrCat(::getpid()), 0644);
  if (!written.ok()) {
    // Nothing half-made stays behind: the directory goes if this made it.
    if (!existed) std::filesystem::remove_all(dir, ec);
    return StateDirError(id, dir, Annotate(written, absl::StrCat("write ", dir, "/shim.pid")));
  }
  return absl::OkStatus();
}

absl::Status Sandbox::Boot() {
  Impl& d = *impl_;
  const absl::Time begin = absl::Now();
  const absl::Time deadline = begin + d.options.boot_timeout;
  auto fail = [&](absl::Status status) {
    d.log->error("sandbox={} boot failed after {}: {}", d.options.id,
                 absl::FormatDuration(absl::Trunc(absl::Now() - begin, absl::Milliseconds(1))),
                 status.ToString());
    (void)Destroy();
    return status;
  };
  {
    absl::MutexLock lock(&d.mu);
    if (d.state != Impl::State::kNew) {
      return absl::FailedPreconditionError(absl::StrCat("sandbox ", d.options.id, " already booted"));
    }
  }
  if (!d.options.state_dir.empty()) {
    if (absl::Status made = MakeStateDir(d.options.id, d.options.state_dir); !made.ok()) {
      d.log->error("sandbox={} boot failed: {}", d.options.id, made.ToString());
      return made;
    }
  }
  d.hv->SetEventCallback([log = d.log, id = d.options.id](const hypervisor::VmEvent& e) {
    log->info("sandbox={} vm event {} {}", id, e.name, e.data_json);
  });

  absl::Time t = absl::Now();
  if (absl::Status s = d.hv->Start(deadline); !s.ok()) {
    return fail(Annotate(s, absl::StrCat("start the VM of sandbox ", d.options.id)));
  }
  if (!d.options.state_dir.empty()) {
    // `delete` finds a VM its shim left by this file: no VM runs without it.
    absl::Status written =
        WriteFileAtomic(d.options.state_dir + "/vmm.pid", absl::StrCat(d.hv->Pid()), 0644);
    if (!written.ok()) {
      return fail(StateDirError(d.options.id, d.options.state_dir,
                                Annotate(written, absl::StrCat("write ", d.options.state_dir,
                                                               "/vmm.pid"))));
    }
  }
  if (!d.options.console_log_path.empty()) {
    // The guest's lines in the shim's log: the agent's (spdlog lines of
    // component cloak-agent, agent/main.cc) at info, the kernel's at debug.
    auto guest = Logger("guest");
    auto pump = std::make_unique<hypervisor::ConsoleLogPump>(
        d.options.console_log_path, d.options.console_log_max_bytes,
        [guest, id = d.options.id](absl::string_view line) {
          if (absl::StrContains(line, " cloak-agent")) {
            guest->info("sandbox={} {}", id, std::string(line));
          } else {
            guest->debug("sandbox={} console: {}", id, std::string(line));
          }
        });
    absl::MutexLock lock(&d.threads_mu);
    d.console = std::move(pump);
  }
  d.Step("vm-start", t);

  t = absl::Now();
  if (absl::Status s = d.Connect(deadline); !s.ok()) {
    return fail(Annotate(s, absl::StrCat("connect to the agent of sandbox ", d.options.id)));
  }
  d.Step("agent-connect", t);

  t = absl::Now();
  absl::Status last = absl::DeadlineExceededError("no answer yet");
  bool healthy = false;
  while (absl::Now() < deadline) {
    if (d.hv->Wait(absl::Now()).ok()) {
      return fail(absl::AbortedError(absl::StrCat("the VM of sandbox ", d.options.id,
                                                  " exited while booting", d.Tail())));
    }
    const absl::Time attempt = std::min(deadline, absl::Now() + kHealthAttemptTimeout);
    agentpb::HealthResponse health;
    last = d.Call("Health", attempt, [&](Stub& stub, grpc::ClientContext* ctx) {
      return stub.Health(ctx, agentpb::HealthRequest(), &health);
    });
    if (last.ok() && health.serving()) {
      healthy = true;
      break;
    }
    if (last.ok()) last = absl::UnavailableError("the agent is not serving yet");
    if (last.code() == absl::StatusCode::kUnavailable) {
      // A direct (fd) channel never reconnects: make a new one.
      absl::SleepFor(absl::Milliseconds(100));
      if (absl::Status s = d.Connect(deadline); !s.ok()) last = s;
    }
  }
  if (!healthy) {
    return fail(absl::DeadlineExceededError(absl::StrCat(
        "the agent of sandbox ", d.options.id, " did not answer within ",
        absl::FormatDuration(d.options.boot_timeout), " of the VM's start (last error: ",
        last.message(), ")", d.Tail())));
  }
  d.Step("agent-ready", t);

  t = absl::Now();
  agentpb::CreateSandboxRequest create;
  create.set_sandbox_id(d.options.id);
  create.set_hostname(d.options.hostname);
  for (const auto& [k, v] : d.options.annotations) (*create.mutable_annotations())[k] = v;
  for (const GuestInterface& g : d.options.interfaces) {
    agentpb::NetworkInterface* iface = create.add_interfaces();
    iface->set_name(g.name);
    iface->set_mac(g.mac);
    iface->set_mtu(g.mtu);
    for (const GuestAddress& ga : g.addresses) {
      agentpb::IpAddress* a = iface->add_addresses();
      a->set_address(ga.address);
      a->set_prefix_length(ga.prefix_length);
    }
  }
  for (const GuestRoute& r : d.options.routes) {
    agentpb::Route* route = create.add_routes();
    route->set_destination(r.destination);
    route->set_gateway(r.gateway);
    route->set_device(r.device);
  }
  for (const std::string& line : d.options.dns) create.add_dns(line);
  create.set_initdata(d.options.initdata);
  agentpb::CreateSandboxResponse created;
  absl::Status s = d.Call("CreateSandbox", absl::Now() + d.options.request_timeout,
                          [&](Stub& stub, grpc::ClientContext* ctx) {
                            return stub.CreateSandbox(ctx, create, &created);
                          });
  if (!s.ok()) return fail(s);
  d.Step("create-sandbox", t);

  // What the agent enforces: an allow-all agent (a runtime class that opted
  // out of the policy) is said loudly, here and by the caller.
  agentpb::GetGuestDetailsResponse details;
  absl::Status got = d.Call("GetGuestDetails", absl::Now() + d.options.request_timeout,
                            [&](Stub& stub, grpc::ClientContext* ctx) {
                              return stub.GetGuestDetails(ctx, agentpb::GetGuestDetailsRequest(),
                                                          &details);
                            });
  if (got.ok()) {
    for (const std::string& f : details.features()) {
      if (f == "policy-allow-all") d.policy_allow_all = true;
    }
    d.log->info("sandbox={} agent {} kernel {} tee={} policy={}", d.options.id,
                details.agent_version(), details.kernel_release(), details.tee(),
                d.policy_allow_all ? "ALLOW-ALL" : "enforced");
    if (d.policy_allow_all) {
      d.log->warn("sandbox={} agent policy ALLOW-ALL (runtime class config agent.allow_all_policy): "
                  "the host may exec into, read and write every container of this pod",
                  d.options.id);
    }
  } else {
    d.log->info("sandbox={} GetGuestDetails: {} (the agent's policy may refuse it)", d.options.id,
                got.ToString());
  }

  {
    absl::MutexLock lock(&d.mu);
    d.state = Impl::State::kReady;
  }
  {
    absl::MutexLock lock(&d.threads_mu);
    d.monitor = std::thread([&d] { d.MonitorLoop(); });
    d.oom_watcher = std::thread([&d] { d.OomLoop(); });
    d.health_checker = std::thread([&d] { d.HealthLoop(); });
  }
  d.Step("boot-total", begin);
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> Sandbox::CreateContainer(const agentpb::CreateContainerRequest& request) {
  agentpb::CreateContainerResponse response;
  const absl::Time t = absl::Now();
  RETURN_IF_ERROR(impl_->Call(
      "CreateContainer", absl::Now() + impl_->options.pull_timeout + impl_->options.request_timeout,
      [&](Stub& stub, grpc::ClientContext* ctx) {
        return stub.CreateContainer(ctx, request, &response);
      }));
  impl_->log->info("sandbox={} container={} step=create (pull + create) took {} image={} digest={}",
                   impl_->options.id, request.container_id(),
                   absl::FormatDuration(absl::Trunc(absl::Now() - t, absl::Milliseconds(1))),
                   request.image(), response.image_digest());
  return response.pid();
}

absl::Status Sandbox::CopyFile(const agentpb::CopyFileRequest& request) {
  agentpb::CopyFileResponse response;
  return impl_->Call("CopyFile", absl::Now() + impl_->options.request_timeout,
                     [&](Stub& stub, grpc::ClientContext* ctx) {
                       return stub.CopyFile(ctx, request, &response);
                     });
}

absl::StatusOr<uint32_t> Sandbox::StartContainer(const std::string& container_id) {
  agentpb::StartContainerRequest request;
  request.set_container_id(container_id);
  agentpb::StartContainerResponse response;
  const absl::Time t = absl::Now();
  RETURN_IF_ERROR(impl_->Call("StartContainer", absl::Now() + impl_->options.request_timeout,
                              [&](Stub& stub, grpc::ClientContext* ctx) {
                                return stub.StartContainer(ctx, request, &response);
                              }));
  impl_->log->info("sandbox={} container={} step=start took {}", impl_->options.id, container_id,
                   absl::FormatDuration(absl::Trunc(absl::Now() - t, absl::Milliseconds(1))));
  return response.pid();
}

absl::StatusOr<uint32_t> Sandbox::ExecProcess(const agentpb::ExecProcessRequest& request) {
  agentpb::ExecProcessResponse response;
  RETURN_IF_ERROR(impl_->Call("ExecProcess", absl::Now() + impl_->options.request_timeout,
                              [&](Stub& stub, grpc::ClientContext* ctx) {
                                return stub.ExecProcess(ctx, request, &response);
                              }));
  return response.pid();
}

absl::Status Sandbox::SignalProcess(const std::string& container_id, const std::string& exec_id,
                                    uint32_t signal, bool all) {
  agentpb::SignalProcessRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  request.set_signal(signal);
  request.set_all(all);
  agentpb::SignalProcessResponse response;
  bool hung = false;
  return impl_->Bounded(
      "SignalProcess",
      [&](Cancellation* cancel) {
        return impl_->Call(
            "SignalProcess", absl::Now() + impl_->options.request_timeout,
            [&](Stub& stub, grpc::ClientContext* ctx) {
              return stub.SignalProcess(ctx, request, &response);
            },
            cancel);
      },
      &hung);
}

absl::StatusOr<ProcessExit> Sandbox::WaitProcess(const std::string& container_id,
                                                 const std::string& exec_id, Cancellation& cancel) {
  agentpb::WaitProcessRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  while (true) {
    agentpb::WaitProcessResponse response;
    absl::Status s = impl_->Call(
        "WaitProcess", absl::Now() + kWaitSlice,
        [&](Stub& stub, grpc::ClientContext* ctx) { return stub.WaitProcess(ctx, request, &response); },
        &cancel);
    if (s.ok()) {
      // The exit time is the host's: the guest's wall clock is set once at
      // boot from the emulated RTC (whole seconds) and nothing syncs it, so
      // its stamps run behind containerd's clock (seen under CRI: an exit
      // stamped before the container's created_at). WaitProcess answers as
      // the process ends, so the host's time now is the exit time to within
      // the agent round trip.
      return ProcessExit{.exit_status = ExitStatusFromAgent(response.exit_status()),
                         .exited_at = absl::Now()};
    }
    // A long wait is renewed while the agent answers; anything else ends it.
    if (s.code() != absl::StatusCode::kDeadlineExceeded || cancel.cancelled()) return s;
    if (absl::Status probe = impl_->Probe(); !probe.ok()) {
      impl_->DeclareHung("a health probe after a WaitProcess slice", probe);
      return impl_->FromGrpc("WaitProcess", grpc::Status(grpc::StatusCode::UNAVAILABLE, ""));
    }
  }
}

absl::Status Sandbox::ReadOutput(const std::string& container_id, const std::string& exec_id,
                                 StreamKind stream,
                                 const std::function<bool(absl::string_view)>& sink,
                                 Cancellation& cancel) {
  agentpb::ReadOutputRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  request.set_stream(stream == StreamKind::kStdout ? agentpb::STREAM_KIND_STDOUT
                                                   : agentpb::STREAM_KIND_STDERR);
  // The stream lives as long as the process: no deadline, cancelled instead.
  return impl_->Call(
      "ReadOutput", absl::InfiniteFuture(),
      [&](Stub& stub, grpc::ClientContext* ctx) {
        auto reader = stub.ReadOutput(ctx, request);
        agentpb::OutputChunk chunk;
        while (reader->Read(&chunk)) {
          if (!sink(chunk.data())) {
            ctx->TryCancel();
            break;
          }
        }
        return reader->Finish();
      },
      &cancel);
}

absl::Status Sandbox::WriteStdin(const std::string& container_id, const std::string& exec_id,
                                 absl::string_view data) {
  agentpb::WriteStdinRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  request.set_data(std::string(data));
  agentpb::WriteStdinResponse response;
  return impl_->Call("WriteStdin", absl::Now() + impl_->options.request_timeout,
                     [&](Stub& stub, grpc::ClientContext* ctx) {
                       return stub.WriteStdin(ctx, request, &response);
                     });
}

absl::Status Sandbox::CloseStdin(const std::string& container_id, const std::string& exec_id) {
  agentpb::CloseStdinRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  agentpb::CloseStdinResponse response;
  return impl_->Call("CloseStdin", absl::Now() + impl_->options.request_timeout,
                     [&](Stub& stub, grpc::ClientContext* ctx) {
                       return stub.CloseStdin(ctx, request, &response);
                     });
}

absl::Status Sandbox::ResizeTty(const std::string& container_id, const std::string& exec_id,
                                uint32_t width, uint32_t height) {
  agentpb::ResizeTtyRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  request.set_width(width);
  request.set_height(height);
  agentpb::ResizeTtyResponse response;
  return impl_->Call("ResizeTty", absl::Now() + impl_->options.request_timeout,
                     [&](Stub& stub, grpc::ClientContext* ctx) {
                       return stub.ResizeTty(ctx, request, &response);
                     });
}

absl::StatusOr<std::vector<uint32_t>> Sandbox::ListProcesses(const std::string& container_id) {
  agentpb::ListProcessesRequest request;
  request.set_container_id(container_id);
  agentpb::ListProcessesResponse response;
  RETURN_IF_ERROR(impl_->Call("ListProcesses", absl::Now() + impl_->options.request_timeout,
                              [&](Stub& stub, grpc::ClientContext* ctx) {
                                return stub.ListProcesses(ctx, request, &response);
                              }));
  return std::vector<uint32_t>(response.pids().begin(), response.pids().end());
}

absl::Status Sandbox::PauseContainer(const std::string& container_id) {
  agentpb::PauseContainerRequest request;
  request.set_container_id(container_id);
  agentpb::PauseContainerResponse response;
  return impl_->Call("PauseContainer", absl::Now() + impl_->options.request_timeout,
                     [&](Stub& stub, grpc::ClientContext* ctx) {
                       return stub.PauseContainer(ctx, request, &response);
                     });
}

absl::Status Sandbox::ResumeContainer(const std::string& container_id) {
  agentpb::ResumeContainerRequest request;
  request.set_container_id(container_id);
  agentpb::ResumeContainerResponse response;
  return impl_->Call("ResumeContainer", absl::Now() + impl_->options.request_timeout,
                     [&](Stub& stub, grpc::ClientContext* ctx) {
                       return stub.ResumeContainer(ctx, request, &response);
                     });
}

absl::StatusOr<agentpb::StatsContainerResponse> Sandbox::StatsContainer(
    const std::string& container_id) {
  agentpb::StatsContainerRequest request;
  request.set_container_id(container_id);
  agentpb::StatsContainerResponse response;
  RETURN_IF_ERROR(impl_->Call("StatsContainer", absl::Now() + impl_->options.request_timeout,
                              [&](Stub& stub, grpc::ClientContext* ctx) {
                                return stub.StatsContainer(ctx, request, &response);
                              }));
  return response;
}

absl::Status Sandbox::UpdateContainer(const std::string& container_id,
                                      const std::string& resources_json) {
  agentpb::UpdateContainerRequest request;
  request.set_container_id(container_id);
  request.set_resources_json(resources_json);
  agentpb::UpdateContainerResponse response;
  return impl_->Call("UpdateContainer", absl::Now() + impl_->options.request_timeout,
                     [&](Stub& stub, grpc::ClientContext* ctx) {
                       return stub.UpdateContainer(ctx, request, &response);
                     });
}

absl::Status Sandbox::RemoveContainer(const std::string& container_id, uint32_t timeout_seconds) {
  agentpb::RemoveContainerRequest request;
  request.set_container_id(container_id);
  request.set_timeout_seconds(timeout_seconds);
  agentpb::RemoveContainerResponse response;
  bool hung = false;
  return impl_->Bounded(
      "RemoveContainer",
      [&](Cancellation* cancel) {
        return impl_->Call(
            "RemoveContainer",
            absl::Now() + impl_->options.request_timeout + absl::Seconds(timeout_seconds),
            [&](Stub& stub, grpc::ClientContext* ctx) {
              return stub.RemoveContainer(ctx, request, &response);
            },
            cancel);
      },
      &hung);
}

absl::Status Sandbox::Destroy() {
  Impl& d = *impl_;
  bool was_ready = false;
  bool started = false;
  {
    absl::MutexLock lock(&d.mu);
    if (d.state == Impl::State::kDestroyed) return absl::OkStatus();
    was_ready = d.state == Impl::State::kReady;
    started = d.stub != nullptr || d.state != Impl::State::kNew;
    d.state = Impl::State::kDestroyed;
  }
  const absl::Time t = absl::Now();
  d.stopping.store(true);
  d.oom_cancel.Cancel();
  d.StopHealthChecks();
  bool hung = false;
  if (was_ready) {
    agentpb::DestroySandboxRequest request;
    request.set_power_off(true);
    agentpb::DestroySandboxResponse response;
    absl::Status s = d.Bounded(
        "DestroySandbox",
        [&](Cancellation* cancel) {
          return d.Call(
              "DestroySandbox", absl::Now() + kDestroySandboxTimeout,
              [&](Stub& stub, grpc::ClientContext* ctx) {
                return stub.DestroySandbox(ctx, request, &response);
              },
              cancel, /*allow_any_state=*/true);
        },
        &hung);
    if (hung) {
      d.log->error("sandbox={} the agent answered neither DestroySandbox nor a health probe "
                   "within {}: the VM is killed{}",
                   d.options.id, absl::FormatDuration(d.options.health_timeout), d.Tail());
    } else if (!s.ok()) {
      d.log->warn("sandbox={} DestroySandbox: {}", d.options.id, s.ToString());
    }
  }
  absl::Status result = absl::OkStatus();
  if (started || d.hv->Pid() > 0) {
    absl::StatusOr<ExitInfo> exit =
        d.hv->Stop(hung || d.agent_hung.load() ? absl::ZeroDuration() : kVmStopGrace);
    if (!exit.ok()) {
      result = Annotate(exit.status(), absl::StrCat("stop the VM of sandbox ", d.options.id));
    }
  }
  d.CancelAllCalls();
  std::thread monitor, oom, health, hang;
  {
    absl::MutexLock lock(&d.threads_mu);
    monitor.swap(d.monitor);
    oom.swap(d.oom_watcher);
    health.swap(d.health_checker);
    hang.swap(d.hang_reporter);
  }
  for (std::thread* th : {&monitor, &oom, &health, &hang}) {
    if (!th->joinable()) continue;
    if (th->get_id() == std::this_thread::get_id()) {
      th->detach();
    } else {
      th->join();
    }
  }
  std::unique_ptr<hypervisor::ConsoleLogPump> console;
  {
    absl::MutexLock lock(&d.threads_mu);
    console.swap(d.console);
  }
  if (console) console->Stop();  // the VM's last lines reach the log
  {
    absl::MutexLock lock(&d.mu);
    d.stub.reset();
    d.channel.reset();
  }
  if (!d.options.state_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(d.options.state_dir, ec);
  }
  d.Step("destroy", t);
  return result;
}

bool Sandbox::dead() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->state == Impl::State::kDead || impl_->state == Impl::State::kDestroyed;
}

std::string Sandbox::dead_reason() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->dead_reason;
}

std::string Sandbox::ConsoleTail(int lines) const { return impl_->hv->ConsoleTail(lines); }

}  // namespace cloak::shim
