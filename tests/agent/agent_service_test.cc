// The RPC layer in-process on a unix socket: the policy decision point and
// the status codes, without crun (no container is ever made here).
#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "agent/agent_service.h"
#include "agent/container_manager.h"
#include "agent/policy.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

using ::testing::HasSubstr;

// Denies ExecProcess, allows everything else, and counts what it saw.
class DenyExecPolicy final : public PolicyEngine {
 public:
  PolicyDecision Decide(absl::string_view rpc, const google::protobuf::Message& request) override {
    ++calls;
    last_rpc = std::string(rpc);
    last_type = request.GetDescriptor()->full_name();
    if (rpc == "ExecProcess") return PolicyDecision::Deny("exec is not allowed by test policy");
    return PolicyDecision::Allow();
  }
  std::string Describe() const override { return "deny-exec (test)"; }
  std::atomic<int> calls{0};
  std::string last_rpc;
  std::string last_type;
};

class AgentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TempDir> dir = TempDir::Create("agent-svc-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    ManagerOptions options;
    options.run_dir = dir_->Join("run");
    options.cgroup_root = dir_->Join("cgroup");
    manager_ = std::make_unique<ContainerManager>(options, nullptr, nullptr, nullptr, nullptr);
    service_ = std::make_unique<AgentServiceImpl>(AgentServiceImpl::Options{}, &policy_,
                                                  manager_.get());
    std::string socket = dir_->Join("agent.sock");
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("unix:", socket), grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    auto channel = grpc::CreateChannel(absl::StrCat("unix:", socket),
                                       grpc::InsecureChannelCredentials());
    stub_ = v1::AgentService::NewStub(channel);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }
  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  DenyExecPolicy policy_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<ContainerManager> manager_;
  std::unique_ptr<AgentServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
};

TEST_F(AgentServiceTest, PolicyDenyIsPermissionDeniedWithReason) {
  v1::ExecProcessRequest req;
  req.set_container_id("c1");
  req.set_exec_id("e1");
  v1::ExecProcessResponse resp;
  grpc::Status s = stub_->ExecProcess(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("exec is not allowed by test policy"));
  EXPECT_EQ(policy_.last_rpc, "ExecProcess");
  EXPECT_EQ(policy_.last_type, "cloak.agent.v1.ExecProcessRequest");
}

TEST_F(AgentServiceTest, EveryRpcPassesThePolicy) {
  v1::HealthResponse health;
  ASSERT_TRUE(stub_->Health(Ctx().get(), {}, &health).ok());
  EXPECT_TRUE(health.serving());
  EXPECT_EQ(policy_.last_rpc, "Health");
  v1::GetAttestationStatusResponse att;
  ASSERT_TRUE(stub_->GetAttestationStatus(Ctx().get(), {}, &att).ok());
  EXPECT_EQ(att.state(), v1::GetAttestationStatusResponse::STATE_UNSPECIFIED);
  EXPECT_EQ(att.detail(), "attestation not configured");
  v1::GetGuestDetailsResponse details;
  ASSERT_TRUE(stub_->GetGuestDetails(Ctx().get(), {}, &details).ok());
  EXPECT_FALSE(details.agent_version().empty());
  EXPECT_FALSE(details.kernel_release().empty());
  EXPECT_GT(details.vcpus(), 0u);
  EXPECT_GT(details.memory_bytes(), 0u);
  // Streaming RPCs too.
  v1::ReadOutputRequest read;
  read.set_container_id("nope");
  read.set_stream(v1::STREAM_KIND_STDOUT);
  auto ctx = Ctx();
  auto reader = stub_->ReadOutput(ctx.get(), read);
  v1::OutputChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(policy_.last_rpc, "ReadOutput");
  EXPECT_EQ(policy_.calls.load(), 4);
}

TEST_F(AgentServiceTest, StatusCodes) {
  v1::StartContainerResponse start;
  v1::StartContainerRequest req;
  req.set_container_id("c1");
  // No sandbox yet.
  EXPECT_EQ(stub_->StartContainer(Ctx().get(), req, &start).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::CreateSandboxRequest sandbox;
  sandbox.set_sandbox_id("pod-1");
  sandbox.set_hostname("pod-1");
  sandbox.add_dns("nameserver 10.0.0.10");
  sandbox.set_initdata("version = \"0.1.0\"\n");
  v1::CreateSandboxResponse created;
  ASSERT_TRUE(stub_->CreateSandbox(Ctx().get(), sandbox, &created).ok());
  EXPECT_EQ(stub_->CreateSandbox(Ctx().get(), sandbox, &created).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // Unknown container: NotFound. Bad id: InvalidArgument.
  EXPECT_EQ(stub_->StartContainer(Ctx().get(), req, &start).error_code(),
            grpc::StatusCode::NOT_FOUND);
  req.set_container_id("../../etc");
  EXPECT_EQ(stub_->StartContainer(Ctx().get(), req, &start).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::WaitProcessRequest wait;
  wait.set_container_id("c1");
  wait.set_exec_id("a/b");
  v1::WaitProcessResponse waited;
  EXPECT_EQ(stub_->WaitProcess(Ctx().get(), wait, &waited).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::DestroySandboxResponse destroyed;
  ASSERT_TRUE(stub_->DestroySandbox(Ctx().get(), {}, &destroyed).ok());
  v1::HealthResponse health;
  ASSERT_TRUE(stub_->Health(Ctx().get(), {}, &health).ok());
  EXPECT_FALSE(health.serving());
}

TEST(AllowAllPolicyTest, AllowsAndSaysSo) {
  AllowAllPolicy policy;
  v1::ExecProcessRequest req;
  EXPECT_TRUE(policy.Decide("ExecProcess", req).allow);
  EXPECT_THAT(policy.Describe(), HasSubstr("ALLOW-ALL"));
}

}  // namespace
}  // namespace cloak::agent
