// The gRPC face of the agent: cloak.agent.v1.AgentService. Each method
// first puts the request to the PolicyEngine (a deny becomes
// PermissionDenied with the policy's reason), then calls the
// ContainerManager; absl codes map 1:1 to gRPC codes.
#ifndef CLOAK_AGENT_AGENT_SERVICE_H_
#define CLOAK_AGENT_AGENT_SERVICE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/container_manager.h"
#include "agent/policy.h"
#include "cloak/agent/v1/agent.grpc.pb.h"

namespace cloak::agent {

class AgentServiceImpl final : public v1::AgentService::Service {
 public:
  struct Options {
    // Features announced in GetGuestDetails.
    std::vector<std::string> features;
    // Called after a successful DestroySandbox with power_off (the caller
    // powers the VM off once the answer is out).
    std::function<void()> on_power_off;
    // Fills GetAttestationStatus (agent/attest); unset: "not configured".
    std::function<void(v1::GetAttestationStatusResponse*)> attestation_status;
    // Early attestation (docs/attestation.md): run after the sandbox was
    // created; an error (the key broker's refusal) fails CreateSandbox.
    // Unset: attestation stays lazy (first encrypted layer).
    std::function<absl::Status()> attest_at_create_sandbox;
  };
  AgentServiceImpl(Options options, PolicyEngine* policy, ContainerManager* manager)
      : options_(std::move(options)), policy_(policy), manager_(manager) {}

  grpc::Status Health(grpc::ServerContext*, const v1::HealthRequest*, v1::HealthResponse*) override;
  grpc::Status GetGuestDetails(grpc::ServerContext*, const v1::GetGuestDetailsRequest*,
                               v1::GetGuestDetailsResponse*) override;
  grpc::Status CreateSandbox(grpc::ServerContext*, const v1::CreateSandboxRequest*,
                             v1::CreateSandboxResponse*) override;
  grpc::Status DestroySandbox(grpc::ServerContext*, const v1::DestroySandboxRequest*,
                              v1::DestroySandboxResponse*) override;
  grpc::Status GetAttestationStatus(grpc::ServerContext*, const v1::GetAttestationStatusRequest*,
                                    v1::GetAttestationStatusResponse*) override;
  grpc::Status CreateContainer(grpc::ServerContext*, const v1::CreateContainerRequest*,
                               v1::CreateContainerResponse*) override;
  grpc::Status StartContainer(grpc::ServerContext*, const v1::StartContainerRequest*,
                              v1::StartContainerResponse*) override;
  grpc::Status RemoveContainer(grpc::ServerContext*, const v1::RemoveContainerRequest*,
                               v1::RemoveContainerResponse*) override;
  grpc::Status ExecProcess(grpc::ServerContext*, const v1::ExecProcessRequest*,
                           v1::ExecProcessResponse*) override;
  grpc::Status SignalProcess(grpc::ServerContext*, const v1::SignalProcessRequest*,
                             v1::SignalProcessResponse*) override;
  grpc::Status WaitProcess(grpc::ServerContext*, const v1::WaitProcessRequest*,
                           v1::WaitProcessResponse*) override;
  grpc::Status ListProcesses(grpc::ServerContext*, const v1::ListProcessesRequest*,
                             v1::ListProcessesResponse*) override;
  grpc::Status PauseContainer(grpc::ServerContext*, const v1::PauseContainerRequest*,
                              v1::PauseContainerResponse*) override;
  grpc::Status ResumeContainer(grpc::ServerContext*, const v1::ResumeContainerRequest*,
                               v1::ResumeContainerResponse*) override;
  grpc::Status StatsContainer(grpc::ServerContext*, const v1::StatsContainerRequest*,
                              v1::StatsContainerResponse*) override;
  grpc::Status UpdateContainer(grpc::ServerContext*, const v1::UpdateContainerRequest*,
                               v1::UpdateContainerResponse*) override;
  grpc::Status ReadOutput(grpc::ServerContext*, const v1::ReadOutputRequest*,
                          grpc::ServerWriter<v1::OutputChunk>*) override;
  grpc::Status WriteStdin(grpc::ServerContext*, const v1::WriteStdinRequest*,
                          v1::WriteStdinResponse*) override;
  grpc::Status CloseStdin(grpc::ServerContext*, const v1::CloseStdinRequest*,
                          v1::CloseStdinResponse*) override;
  grpc::Status ResizeTty(grpc::ServerContext*, const v1::ResizeTtyRequest*,
                         v1::ResizeTtyResponse*) override;
  grpc::Status WatchOomEvents(grpc::ServerContext*, const v1::WatchOomEventsRequest*,
                              grpc::ServerWriter<v1::OomEvent>*) override;
  grpc::Status SetPolicy(grpc::ServerContext*, const v1::SetPolicyRequest*,
                         v1::SetPolicyResponse*) override;
  grpc::Status CopyFile(grpc::ServerContext*, const v1::CopyFileRequest*,
                        v1::CopyFileResponse*) override;

 private:
  // Policy first, then `body`; logs failures. A call that succeeded is
  // shown to the policy with its response (stateful rules, docs/policy.md).
  grpc::Status Handle(const char* rpc, const google::protobuf::Message& request,
                      const std::function<absl::Status()>& body,
                      const google::protobuf::Message* response = nullptr);

  const Options options_;
  PolicyEngine* const policy_;
  ContainerManager* const manager_;
};

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_AGENT_SERVICE_H_
