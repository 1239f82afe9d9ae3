#include "agent/agent_service.h"

#include "common/grpc_status.h"

#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/guest_details.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace cloak::agent {

namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("agent"); }

// Long waits are cut into slices so a cancelled call is noticed.
constexpr absl::Duration kWaitSlice = absl::Seconds(1);

absl::Time CallDeadline(grpc::ServerContext* ctx) {
  auto d = ctx->deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

}  // namespace

grpc::Status AgentServiceImpl::Handle(const char* rpc, const google::protobuf::Message& request,
                                      const std::function<absl::Status()>& body,
                                      const google::protobuf::Message* response) {
  PolicyDecision decision = policy_->Decide(rpc, request);
  if (!decision.allow) {
    // The reason names the rule and the field ("policy: exec denied: ...").
    std::string reason = absl::StartsWith(decision.reason, "policy: ")
                             ? decision.reason
                             : absl::StrCat("policy: ", rpc, " denied: ", decision.reason);
    Log()->warn("{} refused: {}", rpc, reason);
    return ToGrpcStatus(absl::PermissionDeniedError(reason));
  }
  absl::Status status = body();
  if (!status.ok()) {
    Log()->warn("{}: {}", rpc, status.ToString());
  } else {
    Log()->debug("{}: ok", rpc);
    policy_->Observe(rpc, request, response);
  }
  return ToGrpcStatus(status);
}

grpc::Status AgentServiceImpl::Health(grpc::ServerContext*, const v1::HealthRequest* req,
                                      v1::HealthResponse* resp) {
  return Handle("Health", *req, [&] {
    resp->set_serving(manager_->sandbox_state() != SandboxState::kDestroyed);
    return absl::OkStatus();
  });
}

grpc::Status AgentServiceImpl::GetGuestDetails(grpc::ServerContext*,
                                               const v1::GetGuestDetailsRequest* req,
                                               v1::GetGuestDetailsResponse* resp) {
  return Handle("GetGuestDetails", *req, [&] {
    resp->set_agent_version(AgentVersion());
    struct utsname u;
    if (::uname(&u) == 0) resp->set_kernel_release(u.release);
    resp->set_tee(DetectTee());
    for (const std::string& f : options_.features) resp->add_features(f);
    struct sysinfo si;
    if (::sysinfo(&si) == 0) {
      resp->set_memory_bytes(static_cast<uint64_t>(si.totalram) * si.mem_unit);
    }
    long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    resp->set_vcpus(cpus > 0 ? static_cast<uint32_t>(cpus) : 0);
    return absl::OkStatus();
  });
}

grpc::Status AgentServiceImpl::CreateSandbox(grpc::ServerContext*,
                                             const v1::CreateSandboxRequest* req,
                                             v1::CreateSandboxResponse*) {
  return Handle("CreateSandbox", *req, [&]() -> absl::Status {
    RETURN_IF_ERROR(manager_->CreateSandbox(*req));
    if (!options_.attest_at_create_sandbox) return absl::OkStatus();
    const absl::Time t = absl::Now();
    absl::Status attested = options_.attest_at_create_sandbox();
    if (!attested.ok()) {
      return Annotate(attested, "early attestation at CreateSandbox (TEE guest) failed");
    }
    Log()->info("step=sandbox-attestation took={}", absl::FormatDuration(absl::Now() - t));
    return absl::OkStatus();
  });
}

grpc::Status AgentServiceImpl::DestroySandbox(grpc::ServerContext*,
                                              const v1::DestroySandboxRequest* req,
                                              v1::DestroySandboxResponse*) {
  return Handle("DestroySandbox", *req, [&]() -> absl::Status {
    absl::Status status = manager_->DestroySandbox();
    if (req->power_off() && options_.on_power_off) {
      // Power off even if a container would not go: the VM is going away.
      options_.on_power_off();
    }
    return status;
  });
}

grpc::Status AgentServiceImpl::GetAttestationStatus(grpc::ServerContext*,
                                                    const v1::GetAttestationStatusRequest* req,
                                                    v1::GetAttestationStatusResponse* resp) {
  return Handle("GetAttestationStatus", *req, [&] {
    if (options_.attestation_status) {
      options_.attestation_status(resp);
      return absl::OkStatus();
    }
    resp->set_state(v1::GetAttestationStatusResponse::STATE_UNSPECIFIED);
    resp->set_detail("attestation not configured");
    return absl::OkStatus();
  });
}

grpc::Status AgentServiceImpl::CreateContainer(grpc::ServerContext*,
                                               const v1::CreateContainerRequest* req,
                                               v1::CreateContainerResponse* resp) {
  return Handle(
      "CreateContainer", *req,
      [&]() -> absl::Status {
        std::vector<KbsFile> kbs_files;
        for (const policy::KbsFileRule& f : policy_->KbsFiles(*req)) {
          kbs_files.push_back({f.resource, f.path});
        }
        ASSIGN_OR_RETURN(*resp, manager_->CreateContainer(*req, kbs_files));
        if (!resp->image_digest().empty()) {
          // The image the guest verified, against a digest the policy pins.
          PolicyDecision d = policy_->CheckPulledImage(*req, resp->image_digest());
          if (!d.allow) {
            absl::Status removed = manager_->RemoveContainer(req->container_id(), absl::Seconds(5));
            if (!removed.ok()) Log()->warn("remove refused container: {}", removed.ToString());
            return absl::PermissionDeniedError(d.reason);
          }
        }
        return absl::OkStatus();
      },
      resp);
}

grpc::Status AgentServiceImpl::StartContainer(grpc::ServerContext*,
                                              const v1::StartContainerRequest* req,
                                              v1::StartContainerResponse* resp) {
  return Handle(
      "StartContainer", *req,
      [&]() -> absl::Status {
        ASSIGN_OR_RETURN(pid_t pid, manager_->StartContainer(req->container_id()));
        resp->set_pid(static_cast<uint32_t>(pid));
        return absl::OkStatus();
      },
      resp);
}

grpc::Status AgentServiceImpl::RemoveContainer(grpc::ServerContext*,
                                               const v1::RemoveContainerRequest* req,
                                               v1::RemoveContainerResponse*) {
  return Handle("RemoveContainer", *req, [&] {
    // Bounded: a host cannot park an RPC thread for days.
    uint32_t seconds = std::min<uint32_t>(req->timeout_seconds(), 3600);
    return manager_->RemoveContainer(req->container_id(), absl::Seconds(seconds));
  });
}

grpc::Status AgentServiceImpl::ExecProcess(grpc::ServerContext*, const v1::ExecProcessRequest* req,
                                           v1::ExecProcessResponse* resp) {
  return Handle(
      "ExecProcess", *req,
      [&]() -> absl::Status {
        ASSIGN_OR_RETURN(pid_t pid, manager_->ExecProcess(*req));
        resp->set_pid(static_cast<uint32_t>(pid));
        return absl::OkStatus();
      },
      resp);
}

grpc::Status AgentServiceImpl::SignalProcess(grpc::ServerContext*,
                                             const v1::SignalProcessRequest* req,
                                             v1::SignalProcessResponse*) {
  return Handle("SignalProcess", *req, [&] {
    return manager_->SignalProcess(req->container_id(), req->exec_id(),
                                   static_cast<int>(std::min<uint32_t>(req->signal(), 1000)),
                                   req->all());
  });
}

grpc::Status AgentServiceImpl::WaitProcess(grpc::ServerContext* ctx,
                                           const v1::WaitProcessRequest* req,
                                           v1::WaitProcessResponse* resp) {
  return Handle("WaitProcess", *req, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::shared_ptr<Process> p,
                     manager_->FindProcess(req->container_id(), req->exec_id()));
    const absl::Time deadline = CallDeadline(ctx);
    while (true) {
      if (ctx->IsCancelled()) return absl::CancelledError("WaitProcess cancelled");
      absl::Time slice = std::min(deadline, absl::Now() + kWaitSlice);
      std::optional<ExitRecord> exit = p->WaitExit(slice);
      if (exit) {
        p->MarkWaited();
        resp->set_exit_status(exit->exit_status);
        resp->set_exited_at_unix_nano(absl::ToUnixNanos(exit->time));
        return absl::OkStatus();
      }
      if (absl::Now() >= deadline) return absl::DeadlineExceededError("process still running");
    }
  }, resp);
}

grpc::Status AgentServiceImpl::ListProcesses(grpc::ServerContext*,
                                             const v1::ListProcessesRequest* req,
                                             v1::ListProcessesResponse* resp) {
  return Handle("ListProcesses", *req, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<pid_t> pids, manager_->ListProcesses(req->container_id()));
    for (pid_t pid : pids) resp->add_pids(static_cast<uint32_t>(pid));
    return absl::OkStatus();
  });
}

grpc::Status AgentServiceImpl::PauseContainer(grpc::ServerContext*,
                                              const v1::PauseContainerRequest* req,
                                              v1::PauseContainerResponse*) {
  return Handle("PauseContainer", *req, [&] { return manager_->PauseContainer(req->container_id()); });
}

grpc::Status AgentServiceImpl::ResumeContainer(grpc::ServerContext*,
                                               const v1::ResumeContainerRequest* req,
                                               v1::ResumeContainerResponse*) {
  return Handle("ResumeContainer", *req,
                [&] { return manager_->ResumeContainer(req->container_id()); });
}

grpc::Status AgentServiceImpl::StatsContainer(grpc::ServerContext*,
                                              const v1::StatsContainerRequest* req,
                                              v1::StatsContainerResponse* resp) {
  return Handle("StatsContainer", *req, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(CgroupStats s, manager_->StatsContainer(req->container_id()));
    resp->set_cpu_usage_usec(s.cpu_usage_usec);
    resp->set_cpu_user_usec(s.cpu_user_usec);
    resp->set_cpu_system_usec(s.cpu_system_usec);
    resp->set_memory_usage_bytes(s.memory_usage_bytes);
    resp->set_memory_limit_bytes(s.memory_limit_bytes);
    resp->set_memory_anon_bytes(s.memory_anon_bytes);
    resp->set_memory_file_bytes(s.memory_file_bytes);
    resp->set_pids_current(s.pids_current);
    resp->set_pids_limit(s.pids_limit);
    resp->set_oom_events(s.oom_events);
    resp->set_oom_kill_events(s.oom_kill_events);
    return absl::OkStatus();
  });
}

grpc::Status AgentServiceImpl::UpdateContainer(grpc::ServerContext*,
                                               const v1::UpdateContainerRequest* req,
                                               v1::UpdateContainerResponse*) {
  return Handle("UpdateContainer", *req, [&] {
    return manager_->UpdateContainer(req->container_id(), req->resources_json());
  });
}

grpc::Status AgentServiceImpl::ReadOutput(grpc::ServerContext* ctx,
                                          const v1::ReadOutputRequest* req,
                                          grpc::ServerWriter<v1::OutputChunk>* writer) {
  return Handle("ReadOutput", *req, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::shared_ptr<Process> p,
                     manager_->FindProcess(req->container_id(), req->exec_id()));
    OutputBuffer* buffer = nullptr;
    switch (req->stream()) {
      case v1::STREAM_KIND_STDOUT:
        buffer = p->io()->stdout_buffer();
        break;
      case v1::STREAM_KIND_STDERR:
        if (p->io()->plan().terminal) return absl::OkStatus();  // merged into stdout
        buffer = p->io()->stderr_buffer();
        break;
      default:
        return absl::InvalidArgumentError("stream must be STDOUT or STDERR");
    }
    if (buffer == nullptr) return absl::FailedPreconditionError("that stream is not wired");
    if (!buffer->AcquireReader()) {
      return absl::FailedPreconditionError("that stream is already being read");
    }
    absl::Cleanup release = [buffer] { buffer->ReleaseReader(); };
    const absl::Time deadline = CallDeadline(ctx);
    v1::OutputChunk chunk;
    while (true) {
      if (ctx->IsCancelled()) return absl::CancelledError("ReadOutput cancelled");
      if (absl::Now() >= deadline) return absl::DeadlineExceededError("ReadOutput deadline");
      switch (buffer->Read(kMaxOutputChunk, kWaitSlice, chunk.mutable_data())) {
        case OutputBuffer::ReadResult::kData:
          if (!writer->Write(chunk)) return absl::UnavailableError("reader went away");
          break;
        case OutputBuffer::ReadResult::kEof:
          return absl::OkStatus();
        case OutputBuffer::ReadResult::kTimeout:
          break;
      }
    }
  });
}

grpc::Status AgentServiceImpl::WriteStdin(grpc::ServerContext* ctx,
                                          const v1::WriteStdinRequest* req,
                                          v1::WriteStdinResponse* resp) {
  return Handle("WriteStdin", *req, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::shared_ptr<Process> p,
                     manager_->FindProcess(req->container_id(), req->exec_id()));
    absl::Time deadline = std::min(CallDeadline(ctx), absl::Now() + absl::Seconds(30));
    ASSIGN_OR_RETURN(size_t written, p->io()->WriteStdin(req->data(), deadline));
    resp->set_written(static_cast<uint32_t>(written));
    return absl::OkStatus();
  });
}

grpc::Status AgentServiceImpl::CloseStdin(grpc::ServerContext*, const v1::CloseStdinRequest* req,
                                          v1::CloseStdinResponse*) {
  return Handle("CloseStdin", *req, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::shared_ptr<Process> p,
                     manager_->FindProcess(req->container_id(), req->exec_id()));
    return p->io()->CloseStdin();
  });
}

grpc::Status AgentServiceImpl::ResizeTty(grpc::ServerContext*, const v1::ResizeTtyRequest* req,
                                         v1::ResizeTtyResponse*) {
  return Handle("ResizeTty", *req, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::shared_ptr<Process> p,
                     manager_->FindProcess(req->container_id(), req->exec_id()));
    return p->io()->Resize(req->width(), req->height());
  });
}

grpc::Status AgentServiceImpl::WatchOomEvents(grpc::ServerContext* ctx,
                                              const v1::WatchOomEventsRequest* req,
                                              grpc::ServerWriter<v1::OomEvent>* writer) {
  return Handle("WatchOomEvents", *req, [&]() -> absl::Status {
    std::shared_ptr<OomSubscription> sub = manager_->SubscribeOom();
    absl::Cleanup unsubscribe = [&] { manager_->UnsubscribeOom(sub); };
    const absl::Time deadline = CallDeadline(ctx);
    while (true) {
      if (ctx->IsCancelled()) return absl::CancelledError("WatchOomEvents cancelled");
      if (absl::Now() >= deadline) return absl::DeadlineExceededError("WatchOomEvents deadline");
      std::vector<std::string> events;
      bool closed = false;
      {
        absl::MutexLock lock(&sub->mu);
        auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sub->mu) {
          return !sub->events.empty() || sub->closed;
        };
        sub->mu.AwaitWithTimeout(absl::Condition(&ready), kWaitSlice);
        events.assign(sub->events.begin(), sub->events.end());
        sub->events.clear();
        closed = sub->closed;
      }
      for (const std::string& id : events) {
        v1::OomEvent event;
        event.set_container_id(id);
        if (!writer->Write(event)) return absl::UnavailableError("watcher went away");
      }
      if (closed) return absl::OkStatus();
    }
  });
}

grpc::Status AgentServiceImpl::SetPolicy(grpc::ServerContext*, const v1::SetPolicyRequest* req,
                                         v1::SetPolicyResponse*) {
  return Handle("SetPolicy", *req, [&] { return policy_->Replace(req->policy()); });
}

grpc::Status AgentServiceImpl::CopyFile(grpc::ServerContext*, const v1::CopyFileRequest* req,
                                        v1::CopyFileResponse*) {
  return Handle("CopyFile", *req, [&] { return manager_->CopyFile(*req); });
}

}  // namespace cloak::agent
