#include "tests/shim/fake_agent.h"

#include <unistd.h>

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "nlohmann/json.hpp"

namespace cloak::shim::testing {
namespace {

std::vector<std::string> ArgsOf(const std::string& process_json) {
  nlohmann::json j = nlohmann::json::parse(process_json, nullptr, false);
  std::vector<std::string> out;
  if (j.is_discarded()) return out;
  const nlohmann::json* args = nullptr;
  if (j.contains("process") && j["process"].contains("args")) {
    args = &j["process"]["args"];
  } else if (j.contains("args")) {
    args = &j["args"];
  }
  if (args != nullptr && args->is_array()) {
    for (const auto& a : *args) {
      if (a.is_string()) out.push_back(a.get<std::string>());
    }
  }
  return out;
}

grpc::Status NotFound(const std::string& what) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND, what + " not found");
}

}  // namespace

grpc::Status FakeAgentService::HangIfHung(grpc::ServerContext* ctx) const {
  if (!hung_.load()) return grpc::Status::OK;
  while (!ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(10));
  return grpc::Status::CANCELLED;
}

grpc::Status FakeAgentService::Health(grpc::ServerContext* ctx, const agentpb::HealthRequest*,
                                      agentpb::HealthResponse* r) {
  if (grpc::Status s = HangIfHung(ctx); !s.ok()) return s;
  r->set_serving(true);
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::CreateSandbox(grpc::ServerContext*,
                                             const agentpb::CreateSandboxRequest* req,
                                             agentpb::CreateSandboxResponse*) {
  absl::MutexLock l(&mu_);
  ++sandboxes_created_;
  sandbox_annotations_ = {req->annotations().begin(), req->annotations().end()};
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::DestroySandbox(grpc::ServerContext* ctx,
                                              const agentpb::DestroySandboxRequest*,
                                              agentpb::DestroySandboxResponse*) {
  if (grpc::Status s = HangIfHung(ctx); !s.ok()) return s;
  KillAll(137);
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::CreateContainer(grpc::ServerContext*,
                                               const agentpb::CreateContainerRequest* req,
                                               agentpb::CreateContainerResponse* resp) {
  absl::MutexLock l(&mu_);
  if (req->image() == "missing:latest") {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "image missing:latest: manifest unknown");
  }
  Proc p;
  p.container_id = req->container_id();
  p.args = ArgsOf(req->oci_spec_json());
  p.pid = next_pid_++;
  p.out_closed = !req->stdio().stdout();
  p.err_closed = !req->stdio().stderr();
  images_.push_back(req->image());
  specs_[req->container_id()] = req->oci_spec_json();
  procs_[Key(req->container_id(), "")] = p;
  resp->set_pid(p.pid);
  resp->set_image_digest("sha256:fake");
  return grpc::Status::OK;
}

void FakeAgentService::Exit(Proc& p, int status) {
  if (p.exited) return;
  p.exited = true;
  p.exit_status = status;
  p.out_closed = true;
  p.err_closed = true;
}

void FakeAgentService::RunScript(Proc& p) {
  const std::string cmd = p.args.empty() ? "" : p.args[0];
  if (cmd == "echo") {
    std::vector<std::string> words(p.args.begin() + 1, p.args.end());
    p.out += absl::StrJoin(words, " ") + "\n";
    p.err += "err\n";
    Exit(p, 0);
  } else if (cmd == "exit") {
    int n = 0;
    if (p.args.size() > 1) (void)absl::SimpleAtoi(p.args[1], &n);
    Exit(p, n);
  } else if (cmd == "spew") {
    size_t n = 0;
    if (p.args.size() > 1) (void)absl::SimpleAtoi(p.args[1], &n);
    p.out += std::string(n, 'x');
    Exit(p, 0);
  }
  // sleep, cat: run until signalled / stdin closed.
}

grpc::Status FakeAgentService::StartContainer(grpc::ServerContext*,
                                              const agentpb::StartContainerRequest* req,
                                              agentpb::StartContainerResponse* resp) {
  absl::MutexLock l(&mu_);
  auto it = procs_.find(Key(req->container_id(), ""));
  if (it == procs_.end()) return NotFound("container " + req->container_id());
  it->second.started = true;
  RunScript(it->second);
  resp->set_pid(it->second.pid);
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::RemoveContainer(grpc::ServerContext* ctx,
                                               const agentpb::RemoveContainerRequest* req,
                                               agentpb::RemoveContainerResponse*) {
  if (grpc::Status s = HangIfHung(ctx); !s.ok()) return s;
  absl::MutexLock l(&mu_);
  for (auto it = procs_.begin(); it != procs_.end();) {
    if (it->second.container_id == req->container_id()) {
      Exit(it->second, 137);
      it = procs_.erase(it);
    } else {
      ++it;
    }
  }
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::ExecProcess(grpc::ServerContext*,
                                           const agentpb::ExecProcessRequest* req,
                                           agentpb::ExecProcessResponse* resp) {
  absl::MutexLock l(&mu_);
  if (procs_.count(Key(req->container_id(), "")) == 0) {
    return NotFound("container " + req->container_id());
  }
  Proc p;
  p.container_id = req->container_id();
  p.exec_id = req->exec_id();
  p.args = ArgsOf(req->process_json());
  p.pid = next_pid_++;
  p.started = true;
  p.out_closed = !req->stdio().stdout();
  p.err_closed = !req->stdio().stderr();
  RunScript(p);
  resp->set_pid(p.pid);
  procs_[Key(req->container_id(), req->exec_id())] = p;
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::SignalProcess(grpc::ServerContext* ctx,
                                             const agentpb::SignalProcessRequest* req,
                                             agentpb::SignalProcessResponse*) {
  if (grpc::Status s = HangIfHung(ctx); !s.ok()) return s;
  absl::MutexLock l(&mu_);
  auto it = procs_.find(Key(req->container_id(), req->exec_id()));
  if (it == procs_.end()) return NotFound("process");
  if (it->second.exited) return NotFound("process already finished:");
  Exit(it->second, 128 + static_cast<int>(req->signal()));
  if (req->all()) {
    for (auto& [k, p] : procs_) {
      if (p.container_id == req->container_id()) Exit(p, 128 + static_cast<int>(req->signal()));
    }
  }
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::WaitProcess(grpc::ServerContext* ctx,
                                           const agentpb::WaitProcessRequest* req,
                                           agentpb::WaitProcessResponse* resp) {
  const std::string key = Key(req->container_id(), req->exec_id());
  while (true) {
    {
      absl::MutexLock l(&mu_);
      auto it = procs_.find(key);
      if (it == procs_.end()) return NotFound("process");
      if (it->second.exited) {
        resp->set_exit_status(it->second.exit_status);
        resp->set_exited_at_unix_nano(absl::ToUnixNanos(absl::Now()));
        return grpc::Status::OK;
      }
    }
    if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

grpc::Status FakeAgentService::ListProcesses(grpc::ServerContext*,
                                             const agentpb::ListProcessesRequest* req,
                                             agentpb::ListProcessesResponse* resp) {
  absl::MutexLock l(&mu_);
  for (auto& [k, p] : procs_) {
    if (p.container_id == req->container_id() && p.started && !p.exited) resp->add_pids(p.pid);
  }
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::PauseContainer(grpc::ServerContext*,
                                              const agentpb::PauseContainerRequest* req,
                                              agentpb::PauseContainerResponse*) {
  absl::MutexLock l(&mu_);
  auto it = procs_.find(Key(req->container_id(), ""));
  if (it == procs_.end()) return NotFound("container");
  it->second.paused = true;
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::ResumeContainer(grpc::ServerContext*,
                                               const agentpb::ResumeContainerRequest* req,
                                               agentpb::ResumeContainerResponse*) {
  absl::MutexLock l(&mu_);
  auto it = procs_.find(Key(req->container_id(), ""));
  if (it == procs_.end()) return NotFound("container");
  it->second.paused = false;
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::StatsContainer(grpc::ServerContext*,
                                              const agentpb::StatsContainerRequest*,
                                              agentpb::StatsContainerResponse* resp) {
  resp->set_cpu_usage_usec(1234);
  resp->set_memory_usage_bytes(4096);
  resp->set_pids_current(2);
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::UpdateContainer(grpc::ServerContext*,
                                               const agentpb::UpdateContainerRequest*,
                                               agentpb::UpdateContainerResponse*) {
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::ReadOutput(grpc::ServerContext* ctx,
                                          const agentpb::ReadOutputRequest* req,
                                          grpc::ServerWriter<agentpb::OutputChunk>* writer) {
  const std::string key = Key(req->container_id(), req->exec_id());
  const bool out = req->stream() == agentpb::STREAM_KIND_STDOUT;
  while (!ctx->IsCancelled()) {
    std::string data;
    bool closed;
    {
      absl::MutexLock l(&mu_);
      auto it = procs_.find(key);
      if (it == procs_.end()) return grpc::Status::OK;
      std::string& buf = out ? it->second.out : it->second.err;
      data.swap(buf);
      closed = out ? it->second.out_closed : it->second.err_closed;
    }
    for (size_t off = 0; off < data.size(); off += 65536) {
      agentpb::OutputChunk chunk;
      chunk.set_data(data.substr(off, 65536));
      if (!writer->Write(chunk)) return grpc::Status::CANCELLED;
    }
    if (closed && data.empty()) return grpc::Status::OK;
    if (data.empty()) absl::SleepFor(absl::Milliseconds(5));
  }
  return grpc::Status::CANCELLED;
}

grpc::Status FakeAgentService::WriteStdin(grpc::ServerContext*,
                                          const agentpb::WriteStdinRequest* req,
                                          agentpb::WriteStdinResponse* resp) {
  absl::MutexLock l(&mu_);
  auto it = procs_.find(Key(req->container_id(), req->exec_id()));
  if (it == procs_.end()) return NotFound("process");
  if (!it->second.args.empty() && it->second.args[0] == "cat") it->second.out += req->data();
  resp->set_written(static_cast<uint32_t>(req->data().size()));
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::CloseStdin(grpc::ServerContext*,
                                          const agentpb::CloseStdinRequest* req,
                                          agentpb::CloseStdinResponse*) {
  absl::MutexLock l(&mu_);
  auto it = procs_.find(Key(req->container_id(), req->exec_id()));
  if (it == procs_.end()) return NotFound("process");
  if (!it->second.args.empty() && it->second.args[0] == "cat") Exit(it->second, 0);
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::ResizeTty(grpc::ServerContext*, const agentpb::ResizeTtyRequest*,
                                         agentpb::ResizeTtyResponse*) {
  return grpc::Status::OK;
}

grpc::Status FakeAgentService::WatchOomEvents(grpc::ServerContext* ctx,
                                              const agentpb::WatchOomEventsRequest*,
                                              grpc::ServerWriter<agentpb::OomEvent>* writer) {
  while (!ctx->IsCancelled()) {
    std::vector<std::string> pending;
    {
      absl::MutexLock l(&mu_);
      pending.swap(ooms_);
    }
    for (const std::string& id : pending) {
      agentpb::OomEvent e;
      e.set_container_id(id);
      if (!writer->Write(e)) return grpc::Status::CANCELLED;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return grpc::Status::CANCELLED;
}

void FakeAgentService::InjectOom(const std::string& container_id) {
  absl::MutexLock l(&mu_);
  ooms_.push_back(container_id);
}

void FakeAgentService::KillAll(int status) {
  absl::MutexLock l(&mu_);
  for (auto& [k, p] : procs_) Exit(p, status);
}

std::vector<std::string> FakeAgentService::CreatedImages() {
  absl::MutexLock l(&mu_);
  return images_;
}

std::map<std::string, std::string> FakeAgentService::SandboxAnnotations() {
  absl::MutexLock l(&mu_);
  return sandbox_annotations_;
}

std::string FakeAgentService::LastSpec(const std::string& container_id) {
  absl::MutexLock l(&mu_);
  return specs_[container_id];
}

FakeAgentServer::FakeAgentServer(std::string socket_path) : socket_path_(std::move(socket_path)) {
  ::unlink(socket_path_.c_str());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path_, grpc::InsecureServerCredentials());
  builder.RegisterService(&service_);
  server_ = builder.BuildAndStart();
}

FakeAgentServer::~FakeAgentServer() { Shutdown(); }

void FakeAgentServer::Shutdown() {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
  server_.reset();
}

absl::Status FakeHypervisor::Start(absl::Time) {
  if (fail_start_) return absl::FailedPreconditionError("fake: tee=snp needs QEMU >= 9.1");
  absl::MutexLock l(&mu_);
  running_ = true;
  absl::MutexLock s(&shared_->mu);
  ++shared_->starts;
  return absl::OkStatus();
}

absl::StatusOr<ExitInfo> FakeHypervisor::Stop(absl::Duration) {
  absl::MutexLock l(&mu_);
  if (running_ && !exited_) {
    exited_ = true;
    exit_code_ = 0;
    absl::MutexLock s(&shared_->mu);
    ++shared_->stops;
  }
  running_ = false;
  return ExitInfo{exit_code_, 0};
}

absl::StatusOr<ExitInfo> FakeHypervisor::Wait(absl::Time deadline) {
  while (true) {
    {
      absl::MutexLock l(&mu_);
      if (!exited_ && running_) {
        absl::MutexLock s(&shared_->mu);
        if (shared_->crashed) {
          exited_ = true;
          running_ = false;
          exit_code_ = 137;
        }
      }
      if (exited_) return ExitInfo{exit_code_, exit_code_ == 137 ? 9 : 0};
    }
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("fake VM still running");
    absl::SleepFor(absl::Milliseconds(10));
  }
}

pid_t FakeHypervisor::Pid() const {
  absl::MutexLock l(&mu_);
  return running_ ? 4242 : -1;
}

absl::StatusOr<hypervisor::VmStatus> FakeHypervisor::Status(absl::Time) {
  hypervisor::VmStatus st;
  absl::MutexLock l(&mu_);
  st.state = exited_ ? hypervisor::VmState::kExited
                     : (running_ ? hypervisor::VmState::kRunning : hypervisor::VmState::kCreated);
  return st;
}

transport::AgentAddress FakeHypervisor::Agent() const {
  transport::AgentAddress a;
  a.kind = transport::AgentAddress::Kind::kSerial;
  a.path = agent_socket_;
  return a;
}

void FakeHypervisor::Crash() {
  absl::MutexLock s(&shared_->mu);
  shared_->crashed = true;
}

}  // namespace cloak::shim::testing
