// Test helpers for the transport suites: a tiny fake AgentService, a server
// that only serves fds handed to it, a round trip of the agent API over a
// channel, and an open-fd counter for leak checks.
#ifndef CLOAK_TESTS_TRANSPORT_FAKE_AGENT_H_
#define CLOAK_TESTS_TRANSPORT_FAKE_AGENT_H_

#include <dirent.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cloak/agent/v1/agent.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "gtest/gtest.h"

namespace cloak::transport::testing {

namespace agentpb = ::cloak::agent::v1;

inline constexpr int kOutputChunks = 5;

// Health says serving; GetGuestDetails returns fixed values; ReadOutput
// sends kOutputChunks chunks "<container_id>:<i>\n", except for container
// "block", where it waits until the call is cancelled (host gone).
class FakeAgentService final : public agentpb::AgentService::Service {
 public:
  grpc::Status Health(grpc::ServerContext*, const agentpb::HealthRequest*,
                      agentpb::HealthResponse* response) override {
    ++health_calls;
    response->set_serving(true);
    return grpc::Status::OK;
  }

  grpc::Status GetGuestDetails(grpc::ServerContext*, const agentpb::GetGuestDetailsRequest*,
                               agentpb::GetGuestDetailsResponse* response) override {
    response->set_agent_version("fake-agent 0.1.0");
    response->set_kernel_release("6.12.0-test");
    response->set_tee("none");
    response->add_features("guest-pull");
    response->add_features("ocicrypt");
    response->set_memory_bytes(512ull << 20);
    response->set_vcpus(2);
    return grpc::Status::OK;
  }

  grpc::Status ReadOutput(grpc::ServerContext* context, const agentpb::ReadOutputRequest* request,
                          grpc::ServerWriter<agentpb::OutputChunk>* writer) override {
    if (request->container_id() == "block") {
      block_started.Notify();
      while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(10));
      block_cancelled.Notify();
      return grpc::Status::CANCELLED;
    }
    for (int i = 0; i < kOutputChunks; ++i) {
      agentpb::OutputChunk chunk;
      chunk.set_data(absl::StrCat(request->container_id(), ":", i, "\n"));
      if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
    }
    return grpc::Status::OK;
  }

  std::atomic<int> health_calls{0};
  absl::Notification block_started;
  absl::Notification block_cancelled;
};

// A started server with no listening ports: connections come from listeners.
struct TestServer {
  FakeAgentService service;
  std::unique_ptr<grpc::Server> server;

  static std::unique_ptr<TestServer> Start() {
    auto s = std::make_unique<TestServer>();
    grpc::ServerBuilder builder;
    builder.RegisterService(&s->service);
    s->server = builder.BuildAndStart();
    return s;
  }
  void Shutdown() {
    if (!server) return;
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server->Wait();
    server.reset();
  }
  ~TestServer() { Shutdown(); }
};

inline std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

// Health, GetGuestDetails and a streamed ReadOutput over `channel`.
inline void ExpectAgentRoundTrip(const std::shared_ptr<grpc::Channel>& channel,
                                 const std::string& container = "c1") {
  ASSERT_NE(channel, nullptr);
  auto stub = agentpb::AgentService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    agentpb::HealthResponse resp;
    grpc::Status s = stub->Health(&ctx, agentpb::HealthRequest(), &resp);
    ASSERT_TRUE(s.ok()) << "Health: " << s.error_code() << " " << s.error_message();
    EXPECT_TRUE(resp.serving());
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    agentpb::GetGuestDetailsResponse resp;
    grpc::Status s = stub->GetGuestDetails(&ctx, agentpb::GetGuestDetailsRequest(), &resp);
    ASSERT_TRUE(s.ok()) << "GetGuestDetails: " << s.error_message();
    EXPECT_EQ(resp.agent_version(), "fake-agent 0.1.0");
    EXPECT_EQ(resp.tee(), "none");
    EXPECT_EQ(resp.vcpus(), 2u);
    ASSERT_EQ(resp.features_size(), 2);
    EXPECT_EQ(resp.features(1), "ocicrypt");
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    agentpb::ReadOutputRequest req;
    req.set_container_id(container);
    req.set_stream(agentpb::STREAM_KIND_STDOUT);
    auto reader = stub->ReadOutput(&ctx, req);
    std::vector<std::string> got;
    agentpb::OutputChunk chunk;
    while (reader->Read(&chunk)) got.push_back(chunk.data());
    grpc::Status s = reader->Finish();
    ASSERT_TRUE(s.ok()) << "ReadOutput: " << s.error_message();
    ASSERT_EQ(got.size(), static_cast<size_t>(kOutputChunks));
    for (int i = 0; i < kOutputChunks; ++i) {
      EXPECT_EQ(got[i], absl::StrCat(container, ":", i, "\n"));
    }
  }
}

// Open fds of this process.
inline int CountOpenFds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the DIR's own fd
}

// Waits up to `timeout` for CountOpenFds() to drop to `want` (gRPC closes
// transport fds asynchronously); returns the last count.
inline int WaitForFdCount(int want, absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  int n = CountOpenFds();
  while (n > want && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    n = CountOpenFds();
  }
  return n;
}

}  // namespace cloak::transport::testing

#endif  // CLOAK_TESTS_TRANSPORT_FAKE_AGENT_H_
