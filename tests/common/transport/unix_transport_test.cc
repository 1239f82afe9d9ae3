// gRPC round trips of the agent API over the unix transport: UnixTransport
// (host) -> UnixListener (guest) -> AddInsecureChannelFromFd.
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/temp_dir.h"
#include "common/transport/agent_listener.h"
#include "common/transport/agent_transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/transport/fake_agent.h"

namespace cloak::transport {
namespace {

using ::cloak::transport::testing::CountOpenFds;
using ::cloak::transport::testing::ExpectAgentRoundTrip;
using ::cloak::transport::testing::TestServer;
using ::cloak::transport::testing::WaitForFdCount;
using ::testing::HasSubstr;

class UnixTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-transport-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::make_unique<TempDir>(*std::move(dir));
    path_ = dir_->Join("agent.sock");
  }

  std::unique_ptr<UnixTransport> Transport() {
    UnixTransport::Config config;
    config.path = path_;
    auto t = UnixTransport::Create(config);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *std::move(t) : nullptr;
  }

  std::unique_ptr<UnixListener> Listen() {
    UnixListener::Config config;
    config.path = path_;
    auto l = UnixListener::Create(config);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? *std::move(l) : nullptr;
  }

  std::unique_ptr<TempDir> dir_;
  std::string path_;
};

TEST_F(UnixTransportTest, RoundTrip) {
  auto server = TestServer::Start();
  auto listener = Listen();
  ASSERT_NE(listener, nullptr);
  ASSERT_TRUE(listener->Start(server->server.get()).ok());
  EXPECT_EQ(listener->Endpoint(), "unix://" + path_);

  auto channel = Transport()->Connect(absl::Seconds(5));
  ASSERT_TRUE(channel.ok()) << channel.status();
  ExpectAgentRoundTrip(*channel);
  EXPECT_EQ(server->service.health_calls.load(), 1);
  EXPECT_EQ(listener->sessions(), 1);
}

// Documents gRPC 1.51 behaviour the shim must live with: a channel made from
// an fd has no connectivity state machine, so readiness is probed by RPC.
TEST_F(UnixTransportTest, FdChannelsReportNoConnectivityState) {
  auto server = TestServer::Start();
  auto listener = Listen();
  ASSERT_TRUE(listener->Start(server->server.get()).ok());
  auto channel = Transport()->Connect(absl::Seconds(5));
  ASSERT_TRUE(channel.ok());
  ExpectAgentRoundTrip(*channel);
  EXPECT_EQ((*channel)->GetState(false), GRPC_CHANNEL_SHUTDOWN);
}

TEST_F(UnixTransportTest, ConnectRetriesWhileTheAgentStarts) {
  auto server = TestServer::Start();
  std::unique_ptr<UnixListener> listener;
  std::thread late([&] {
    absl::SleepFor(absl::Milliseconds(300));
    listener = Listen();
    if (listener) {
      ASSERT_TRUE(listener->Start(server->server.get()).ok());
    }
  });
  const absl::Time start = absl::Now();
  auto channel = Transport()->Connect(absl::Seconds(10));
  late.join();
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  ExpectAgentRoundTrip(*channel);
}

TEST_F(UnixTransportTest, ConnectTimesOutNamingTheEndpoint) {
  const absl::Time start = absl::Now();
  auto channel = Transport()->Connect(absl::Milliseconds(300));
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(channel.ok());
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(channel.status().message(), HasSubstr("unix://" + path_));
  EXPECT_THAT(channel.status().message(), HasSubstr("No such file or directory"));
  EXPECT_GE(took, absl::Milliseconds(290));
  EXPECT_LT(took, absl::Seconds(3));
}

TEST_F(UnixTransportTest, ManyClientsAtOnce) {
  auto server = TestServer::Start();
  auto listener = Listen();
  ASSERT_TRUE(listener->Start(server->server.get()).ok());
  auto transport = Transport();
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      auto channel = transport->Connect(absl::Seconds(5));
      ASSERT_TRUE(channel.ok()) << channel.status();
      ExpectAgentRoundTrip(*channel, "client" + std::to_string(i));
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(listener->sessions(), 4);
}

TEST_F(UnixTransportTest, ChannelFailsAfterTheAgentGoesAndConnectRecovers) {
  auto server = TestServer::Start();
  auto listener = Listen();
  ASSERT_TRUE(listener->Start(server->server.get()).ok());
  auto transport = Transport();
  auto channel = transport->Connect(absl::Seconds(5));
  ASSERT_TRUE(channel.ok());
  ExpectAgentRoundTrip(*channel);

  // The agent restarts: old server and listener go, new ones come.
  listener->Stop();
  server->Shutdown();
  {
    auto stub = cloak::agent::v1::AgentService::NewStub(*channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(testing::DeadlineIn(absl::Seconds(2)));
    cloak::agent::v1::HealthResponse resp;
    grpc::Status s = stub->Health(&ctx, {}, &resp);
    // An fd channel never reconnects.
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
  auto server2 = TestServer::Start();
  auto listener2 = Listen();
  ASSERT_TRUE(listener2->Start(server2->server.get()).ok());
  auto channel2 = transport->Connect(absl::Seconds(5));
  ASSERT_TRUE(channel2.ok());
  ExpectAgentRoundTrip(*channel2);
}

TEST_F(UnixTransportTest, StartTwiceAndStopTwice) {
  auto server = TestServer::Start();
  auto listener = Listen();
  ASSERT_TRUE(listener->Start(server->server.get()).ok());
  EXPECT_EQ(listener->Start(server->server.get()).code(), absl::StatusCode::kFailedPrecondition);
  listener->Stop();
  listener->Stop();
  EXPECT_FALSE(std::filesystem::exists(path_)) << "Stop() leaves the socket file";
  EXPECT_EQ(listener->Start(server->server.get()).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(UnixTransportTest, ListenerReplacesAStaleSocketButNotAFile) {
  {
    // A crashed agent leaves its socket file behind.
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ASSERT_TRUE(std::filesystem::exists(path_));
  auto server = TestServer::Start();
  auto listener = Listen();
  ASSERT_NE(listener, nullptr);
  ASSERT_TRUE(listener->Start(server->server.get()).ok());
  auto channel = Transport()->Connect(absl::Seconds(5));
  ASSERT_TRUE(channel.ok());
  ExpectAgentRoundTrip(*channel);

  std::string file = dir_->Join("plain");
  std::ofstream(file) << "x";
  UnixListener::Config config;
  config.path = file;
  auto l = UnixListener::Create(config);
  EXPECT_EQ(l.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(UnixTransportTest, TeardownLeavesNoFds) {
  auto cycle = [&] {
    auto server = TestServer::Start();
    auto listener = Listen();
    ASSERT_TRUE(listener->Start(server->server.get()).ok());
    {
      auto channel = Transport()->Connect(absl::Seconds(5));
      ASSERT_TRUE(channel.ok());
      ExpectAgentRoundTrip(*channel);
    }
    listener->Stop();
    server->Shutdown();
  };
  cycle();  // warm up gRPC's process-wide state (pollers, timers)
  // The warm-up's own fds may still be closing here (gRPC tears down
  // asynchronously), so the check is for no more fds than before.
  const int before = CountOpenFds();
  cycle();
  cycle();
  EXPECT_LE(WaitForFdCount(before), before);
}

}  // namespace
}  // namespace cloak::transport
