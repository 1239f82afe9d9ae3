// Test fakes for the shim: an in-process agent (the real gRPC AgentService
// over a unix socket) whose container processes are scripted by their args,
// and a Hypervisor that only pretends to run a VM.
//
// Scripted processes (the first arg of process.args):
//   echo WORDS...  writes "WORDS\n" to stdout (and "err\n" to stderr), exits 0
//   exit N         exits with status N
//   sleep          runs until signalled (exit 128+N)
//   cat            copies stdin to stdout until stdin is closed, exits 0
//   spew N         writes N bytes of 'x' to stdout, exits 0
#ifndef CLOAK_TESTS_SHIM_FAKE_AGENT_H_
#define CLOAK_TESTS_SHIM_FAKE_AGENT_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cloak/agent/v1/agent.grpc.pb.h"
#include "grpcpp/server.h"
#include "shim/hypervisor/hypervisor.h"

namespace cloak::shim::testing {

namespace agentpb = ::cloak::agent::v1;

class FakeAgentService final : public agentpb::AgentService::Service {
 public:
  struct Proc {
    std::string container_id;
    std::string exec_id;
    std::vector<std::string> args;
    uint32_t pid = 0;
    bool started = false;
    bool exited = false;
    int exit_status = 0;
    std::string out;
    std::string err;
    bool out_closed = false;
    bool err_closed = false;
    bool paused = false;
  };

  grpc::Status Health(grpc::ServerContext*, const agentpb::HealthRequest*,
                      agentpb::HealthResponse* r) override;
  grpc::Status CreateSandbox(grpc::ServerContext*, const agentpb::CreateSandboxRequest* req,
                             agentpb::CreateSandboxResponse*) override;
  grpc::Status DestroySandbox(grpc::ServerContext*, const agentpb::DestroySandboxRequest*,
                              agentpb::DestroySandboxResponse*) override;
  grpc::Status CreateContainer(grpc::ServerContext*, const agentpb::CreateContainerRequest* req,
                               agentpb::CreateContainerResponse* resp) override;
  grpc::Status StartContainer(grpc::ServerContext*, const agentpb::StartContainerRequest* req,
                              agentpb::StartContainerResponse* resp) override;
  grpc::Status RemoveContainer(grpc::ServerContext*, const agentpb::RemoveContainerRequest* req,
                               agentpb::RemoveContainerResponse*) override;
  grpc::Status ExecProcess(grpc::ServerContext*, const agentpb::ExecProcessRequest* req,
                           agentpb::ExecProcessResponse* resp) override;
  grpc::Status SignalProcess(grpc::ServerContext*, const agentpb::SignalProcessRequest* req,
                             agentpb::SignalProcessResponse*) override;
  grpc::Status WaitProcess(grpc::ServerContext* ctx, const agentpb::WaitProcessRequest* req,
                           agentpb::WaitProcessResponse* resp) override;
  grpc::Status ListProcesses(grpc::ServerContext*, const agentpb::ListProcessesRequest* req,
                             agentpb::ListProcessesResponse* resp) override;
  grpc::Status PauseContainer(grpc::ServerContext*, const agentpb::PauseContainerRequest* req,
                              agentpb::PauseContainerResponse*) override;
  grpc::Status ResumeContainer(grpc::ServerContext*, const agentpb::ResumeContainerRequest* req,
                               agentpb::ResumeContainerResponse*) override;
  grpc::Status StatsContainer(grpc::ServerContext*, const agentpb::StatsContainerRequest* req,
                              agentpb::StatsContainerResponse* resp) override;
  grpc::Status UpdateContainer(grpc::ServerContext*, const agentpb::UpdateContainerRequest* req,
                               agentpb::UpdateContainerResponse*) override;
  grpc::Status ReadOutput(grpc::ServerContext* ctx, const agentpb::ReadOutputRequest* req,
                          grpc::ServerWriter<agentpb::OutputChunk>* writer) override;
  grpc::Status WriteStdin(grpc::ServerContext*, const agentpb::WriteStdinRequest* req,
                          agentpb::WriteStdinResponse* resp) override;
  grpc::Status CloseStdin(grpc::ServerContext*, const agentpb::CloseStdinRequest* req,
                          agentpb::CloseStdinResponse*) override;
  grpc::Status ResizeTty(grpc::ServerContext*, const agentpb::ResizeTtyRequest*,
                         agentpb::ResizeTtyResponse*) override;
  grpc::Status WatchOomEvents(grpc::ServerContext* ctx, const agentpb::WatchOomEventsRequest*,
                              grpc::ServerWriter<agentpb::OomEvent>* writer) override;

  // Test controls.
  void InjectOom(const std::string& container_id);
  // Makes every process exit with `status` (as if the VM's agent died).
  void KillAll(int status);
  // From now on Health, SignalProcess, RemoveContainer and DestroySandbox
  // never answer (they block until the caller gives up), and no process
  // exits: a hung guest (SIGSTOP of its VMM).
  void Hang() { hung_.store(true); }
  std::vector<std::string> CreatedImages();
  std::map<std::string, std::string> SandboxAnnotations();
  std::string LastSpec(const std::string& container_id);
  int sandboxes_created() {
    absl::MutexLock l(&mu_);
    return sandboxes_created_;
  }

 private:
  static std::string Key(const std::string& c, const std::string& e) { return c + "/" + e; }
  // While hung_: blocks until the caller cancels or its deadline passes.
  grpc::Status HangIfHung(grpc::ServerContext* ctx) const;
  // Runs the script of a process that just started (mu_ held).
  void RunScript(Proc& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Exit(Proc& p, int status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::map<std::string, Proc> procs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> specs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> images_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> sandbox_annotations_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> ooms_ ABSL_GUARDED_BY(mu_);
  int sandboxes_created_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> hung_{false};
  uint32_t next_pid_ ABSL_GUARDED_BY(mu_) = 100;
};

// The fake agent served on a unix socket.
class FakeAgentServer {
 public:
  explicit FakeAgentServer(std::string socket_path);
  ~FakeAgentServer();
  FakeAgentService& service() { return service_; }
  const std::string& socket_path() const { return socket_path_; }
  void Shutdown();

 private:
  std::string socket_path_;
  FakeAgentService service_;
  std::unique_ptr<grpc::Server> server_;
};

// A VM that is a promise: Start "boots" at once, Wait blocks until Stop or
// Crash. Agent() points at the fake agent's socket (serial channel).
class FakeHypervisor final : public hypervisor::Hypervisor {
 public:
  struct Shared {
    absl::Mutex mu;
    bool crashed = false;
    int starts = 0;
    int stops = 0;
    absl::Notification crash;
  };
  FakeHypervisor(std::string agent_socket, std::shared_ptr<Shared> shared, bool fail_start = false)
      : agent_socket_(std::move(agent_socket)), shared_(std::move(shared)), fail_start_(fail_start) {}

  void SetEventCallback(hypervisor::VmEventCallback) override {}
  absl::Status Start(absl::Time) override;
  absl::StatusOr<ExitInfo> Stop(absl::Duration) override;
  absl::StatusOr<ExitInfo> Wait(absl::Time deadline) override;
  absl::Status Pause(absl::Time) override { return absl::OkStatus(); }
  absl::Status Resume(absl::Time) override { return absl::OkStatus(); }
  pid_t Pid() const override;
  absl::StatusOr<hypervisor::VmStatus> Status(absl::Time) override;
  std::string ConsoleTail(int) const override { return "fake console: kernel booted\n"; }
  transport::AgentAddress Agent() const override;
  std::vector<std::string> CommandLine() const override { return {"fake-vmm"}; }

  // Simulates kill -9 of the VMM.
  void Crash();

 private:
  const std::string agent_socket_;
  std::shared_ptr<Shared> shared_;
  const bool fail_start_;
  mutable absl::Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool exited_ ABSL_GUARDED_BY(mu_) = false;
  int exit_code_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cloak::shim::testing

#endif  // CLOAK_TESTS_SHIM_FAKE_AGENT_H_
