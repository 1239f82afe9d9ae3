// cloak::cri::Client against an in-process fake CRI server on a unix socket:
// requests carry what the caller gave, gRPC errors keep their code and say
// which RPC failed for what; pod/container JSON parses as crictl writes it.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "cli/cri/cli.h"
#include "cli/cri/client.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "k8s/cri/v1/api.grpc.pb.h"

namespace cloak::cri {
namespace {

namespace v1 = ::runtime::v1;
using ::testing::HasSubstr;

class FakeRuntime final : public v1::RuntimeService::Service {
 public:
  grpc::Status Version(grpc::ServerContext*, const v1::VersionRequest* req,
                       v1::VersionResponse* resp) override {
    resp->set_version(req->version());
    resp->set_runtime_name("fake");
    resp->set_runtime_api_version("v1");
    return grpc::Status::OK;
  }
  grpc::Status RunPodSandbox(grpc::ServerContext*, const v1::RunPodSandboxRequest* req,
                             v1::RunPodSandboxResponse* resp) override {
    absl::MutexLock l(&mu);
    last_run = *req;
    resp->set_pod_sandbox_id("pod-1");
    return grpc::Status::OK;
  }
  grpc::Status CreateContainer(grpc::ServerContext*, const v1::CreateContainerRequest* req,
                               v1::CreateContainerResponse* resp) override {
    absl::MutexLock l(&mu);
    last_create = *req;
    resp->set_container_id("ctr-1");
    return grpc::Status::OK;
  }
  grpc::Status ContainerStatus(grpc::ServerContext*, const v1::ContainerStatusRequest* req,
                               v1::ContainerStatusResponse*) override {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "an error occurred when try to find container \"" + req->container_id() +
                            "\": not found");
  }
  grpc::Status ExecSync(grpc::ServerContext*, const v1::ExecSyncRequest* req,
                        v1::ExecSyncResponse* resp) override {
    absl::MutexLock l(&mu);
    last_exec = *req;
    resp->set_stdout("out\n");
    resp->set_exit_code(3);
    return grpc::Status::OK;
  }
  grpc::Status ListContainers(grpc::ServerContext*, const v1::ListContainersRequest* req,
                              v1::ListContainersResponse* resp) override {
    auto* c = resp->add_containers();
    c->set_id("ctr-1");
    c->set_pod_sandbox_id(req->filter().pod_sandbox_id());
    c->set_state(v1::CONTAINER_RUNNING);
    return grpc::Status::OK;
  }

  absl::Mutex mu;
  v1::RunPodSandboxRequest last_run ABSL_GUARDED_BY(mu);
  v1::CreateContainerRequest last_create ABSL_GUARDED_BY(mu);
  v1::ExecSyncRequest last_exec ABSL_GUARDED_BY(mu);
};

class CriClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cri-", "/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    socket_ = dir_->Join("cri.sock");
    grpc::ServerBuilder b;
    b.AddListeningPort("unix://" + socket_, grpc::InsecureServerCredentials());
    b.RegisterService(&runtime_);  // ImageService left unregistered on purpose.
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    auto client = Client::Create({.endpoint = socket_, .timeout = absl::Seconds(10)});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Shutdown();
  }

  std::optional<TempDir> dir_;
  std::string socket_;
  FakeRuntime runtime_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(CriClientTest, VersionAsksForV1) {
  auto v = client_->Version();
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->version(), "v1");
  EXPECT_EQ(v->runtime_name(), "fake");
}

TEST_F(CriClientTest, RunPodSandboxSendsConfigAndHandler) {
  auto pod = ParsePodSandboxConfig(R"({
    "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
    "log_directory": "/tmp/logs",
    "annotations": {"io.cloak.x": "y"},
    "linux": {"security_context": {"namespace_options": {"network": "NODE"}}},
    "port_mappings": [{"container_port": 80}]
  })");
  ASSERT_TRUE(pod.ok()) << pod.status();
  auto id = client_->RunPodSandbox(*pod, "cloak-dev");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "pod-1");
  absl::MutexLock l(&runtime_.mu);
  EXPECT_EQ(runtime_.last_run.runtime_handler(), "cloak-dev");
  EXPECT_EQ(runtime_.last_run.config().metadata().uid(), "u1");
  EXPECT_EQ(runtime_.last_run.config().log_directory(), "/tmp/logs");
  EXPECT_EQ(runtime_.last_run.config().annotations().at("io.cloak.x"), "y");
  EXPECT_EQ(runtime_.last_run.config().linux().security_context().namespace_options().network(),
            v1::NODE);
}

TEST_F(CriClientTest, RunPodSandboxWithoutNameIsRefusedLocally) {
  auto id = client_->RunPodSandbox(v1::PodSandboxConfig(), "cloak-dev");
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(id.status().message(), HasSubstr("metadata.name"));
}

TEST_F(CriClientTest, CreateContainerSendsPodAndConfig) {
  auto ctr = ParseContainerConfig(R"({
    "metadata": {"name": "c"}, "image": {"image": "127.0.0.1:5000/busybox:e2e"},
    "command": ["sh", "-c", "echo hi"], "logPath": "c/0.log"
  })");
  ASSERT_TRUE(ctr.ok()) << ctr.status();
  v1::PodSandboxConfig pod;
  pod.mutable_metadata()->set_name("p");
  auto id = client_->CreateContainer("pod-1", *ctr, pod);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "ctr-1");
  absl::MutexLock l(&runtime_.mu);
  EXPECT_EQ(runtime_.last_create.pod_sandbox_id(), "pod-1");
  EXPECT_EQ(runtime_.last_create.config().log_path(), "c/0.log");
  EXPECT_EQ(runtime_.last_create.config().command_size(), 3);
  EXPECT_EQ(runtime_.last_create.sandbox_config().metadata().name(), "p");
}

TEST_F(CriClientTest, CreateContainerWithoutImageIsRefusedLocally) {
  v1::ContainerConfig ctr;
  ctr.mutable_metadata()->set_name("c");
  auto id = client_->CreateContainer("pod-1", ctr, v1::PodSandboxConfig());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(id.status().message(), HasSubstr("image"));
}

TEST_F(CriClientTest, NotFoundKeepsItsCodeAndNamesRpcAndContainer) {
  auto st = client_->ContainerStatus("nope");
  EXPECT_EQ(st.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.status().message(), HasSubstr("CRI ContainerStatus container nope"));
  EXPECT_THAT(st.status().message(), HasSubstr(socket_));
}

TEST_F(CriClientTest, ExecSyncNonZeroExitIsAResult) {
  auto r = client_->ExecSync("ctr-1", {"sh", "-c", "exit 3"}, 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code(), 3);
  EXPECT_EQ(r->stdout(), "out\n");
  absl::MutexLock l(&runtime_.mu);
  EXPECT_EQ(runtime_.last_exec.timeout(), 5);
  EXPECT_EQ(runtime_.last_exec.cmd_size(), 3);
}

TEST_F(CriClientTest, ListContainersFiltersByPod) {
  auto list = client_->ListContainers("pod-1");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].pod_sandbox_id(), "pod-1");
  EXPECT_EQ((*list)[0].state(), v1::CONTAINER_RUNNING);
}

TEST_F(CriClientTest, UnimplementedServiceSaysToCheckTheCriPlugin) {
  auto ref = client_->PullImage("busybox");
  EXPECT_EQ(ref.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(ref.status().message(), HasSubstr("CRI PullImage busybox"));
  EXPECT_THAT(ref.status().message(), HasSubstr("CRI plugin"));
}

TEST(CriClientNoServer, UnavailableNamesTheEndpoint) {
  auto client = Client::Create({.endpoint = "/nonexistent/cri.sock", .timeout = absl::Seconds(2)});
  ASSERT_TRUE(client.ok()) << client.status();
  auto v = (*client)->Version();
  EXPECT_EQ(v.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(v.status().message(), HasSubstr("unix:///nonexistent/cri.sock"));
  EXPECT_THAT(v.status().message(), HasSubstr("is containerd running"));
}

TEST(CriJson, BadJsonIsInvalidArgument) {
  auto pod = ParsePodSandboxConfig("{\"metadata\": 3}");
  EXPECT_EQ(pod.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pod.status().message(), HasSubstr("pod sandbox config"));
}

TEST(CriEndpoint, PlainPathsBecomeUnixTargets) {
  EXPECT_EQ(NormalizeEndpoint("/run/c.sock"), "unix:///run/c.sock");
  EXPECT_EQ(NormalizeEndpoint("unix:///run/c.sock"), "unix:///run/c.sock");
}

}  // namespace
}  // namespace cloak::cri
