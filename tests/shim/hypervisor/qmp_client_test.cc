#include "shim/hypervisor/qemu/qmp_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::shim::hypervisor {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr char kGreeting[] =
    R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": )"
    R"("Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}})";

// Plays QEMU on one end of a socketpair. The handler gets each command and
// returns the raw lines to send back ("" sends nothing).
class FakeQmpServer {
 public:
  using Handler = std::function<std::vector<std::string>(const json& command)>;

  explicit FakeQmpServer(Handler handler, std::string greeting = kGreeting)
      : handler_(std::move(handler)) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client_end_.Reset(sv[0]);
    server_end_.Reset(sv[1]);
    thread_ = std::thread([this, greeting] { Run(greeting); });
  }
  ~FakeQmpServer() {
    ::shutdown(server_end_.get(), SHUT_RDWR);
    thread_.join();
  }

  UniqueFd TakeClientEnd() { return std::move(client_end_); }
  void Send(const std::string& line) {
    std::string data = line + "\r\n";
    ASSERT_EQ(::send(server_end_.get(), data.data(), data.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(data.size()));
  }
  void CloseConnection() { ::shutdown(server_end_.get(), SHUT_RDWR); }
  std::vector<std::string> Received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

  // The usual QEMU answers; `id` echoed.
  static std::vector<std::string> Reply(const json& command, const json& ret) {
    json reply = {{"return", ret}};
    if (command.contains("id")) reply["id"] = command["id"];
    return {reply.dump()};
  }

 private:
  void Run(const std::string& greeting) {
    Send(greeting);
    std::string buffer;
    char chunk[1024];
    while (true) {
      ssize_t n = ::read(server_end_.get(), chunk, sizeof(chunk));
      if (n <= 0) return;
      buffer.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buffer.find('\n')) != std::string::npos) {
        std::string line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        json command = json::parse(line, nullptr, false);
        {
          absl::MutexLock lock(&mu_);
          received_.push_back(command.is_discarded() ? "?" : command.value("execute", "?"));
        }
        if (command.value("execute", "") == "qmp_capabilities") {
          for (const auto& out : Reply(command, json::object())) Send(out);
          continue;
        }
        for (const auto& out : handler_(command)) {
          if (!out.empty()) Send(out);
        }
      }
    }
  }

  Handler handler_;
  UniqueFd client_end_;
  UniqueFd server_end_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<std::string> received_ ABSL_GUARDED_BY(mu_);
};

absl::Time Soon() { return absl::Now() + absl::Seconds(5); }

TEST(QmpClientTest, HandshakeAndQueryStatus) {
  FakeQmpServer server([](const json& cmd) -> std::vector<std::string> {
    if (cmd["execute"] == "query-status") {
      return FakeQmpServer::Reply(cmd, {{"status", "prelaunch"}, {"running", false}});
    }
    return {};
  });
  auto client = QmpClient::FromFd(server.TakeClientEnd(), "fake", Soon());
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->qemu_version(), "7.2.22");
  auto status = (*client)->QueryStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->status, "prelaunch");
  EXPECT_FALSE(status->running);
  EXPECT_THAT(server.Received(), ::testing::ElementsAre("qmp_capabilities", "query-status"));
}

TEST(QmpClientTest, StopContQuitPowerdownAndEvents) {
  FakeQmpServer* server_ptr = nullptr;
  FakeQmpServer server([&](const json& cmd) -> std::vector<std::string> {
    std::vector<std::string> out = FakeQmpServer::Reply(cmd, json::object());
    const std::string name = cmd["execute"];
    auto event = [](const std::string& e) {
      return json{{"event", e},
                  {"timestamp", {{"seconds", 1700000000}, {"microseconds", 5}}}}
          .dump();
    };
    // QEMU sends the event before the reply for stop and cont.
    if (name == "stop") out.insert(out.begin(), event("STOP"));
    if (name == "cont") out.insert(out.begin(), event("RESUME"));
    if (name == "quit") out.push_back(event("SHUTDOWN"));
    if (name == "system_powerdown") out.push_back(event("POWERDOWN"));
    (void)server_ptr;
    return out;
  });
  server_ptr = &server;
  std::atomic<int> callbacks{0};
  auto client = QmpClient::FromFd(server.TakeClientEnd(), "fake", Soon(),
                                  [&](const QmpEvent&) { ++callbacks; });
  ASSERT_TRUE(client.ok()) << client.status();
  QmpClient& qmp = **client;
  ASSERT_TRUE(qmp.Stop().ok());
  ASSERT_TRUE(qmp.Cont().ok());
  ASSERT_TRUE(qmp.SystemPowerdown().ok());
  ASSERT_TRUE(qmp.Quit().ok());
  auto shutdown = qmp.WaitForEvent("SHUTDOWN", Soon());
  ASSERT_TRUE(shutdown.ok()) << shutdown.status();
  EXPECT_EQ(shutdown->timestamp, absl::FromUnixSeconds(1700000000) + absl::Microseconds(5));
  std::deque<QmpEvent> events = qmp.TakeEvents();
  std::vector<std::string> names;
  for (const auto& e : events) names.push_back(e.name);
  EXPECT_THAT(names, ::testing::ElementsAre("STOP", "RESUME", "POWERDOWN"));
  EXPECT_EQ(callbacks.load(), 4);
}

TEST(QmpClientTest, QemuErrorBecomesStatus) {
  FakeQmpServer server([](const json& cmd) -> std::vector<std::string> {
    json reply = {
        {"error", {{"class", "CommandNotFound"}, {"desc", "The command x-nope has not been found"}}},
        {"id", cmd["id"]}};
    if (cmd["execute"] == "cont") {
      reply["error"] = {{"class", "GenericError"}, {"desc", "Resetting the VM is required"}};
    }
    return {reply.dump()};
  });
  auto client = QmpClient::FromFd(server.TakeClientEnd(), "fake", Soon());
  ASSERT_TRUE(client.ok());
  auto r = (*client)->Execute("x-nope");
  EXPECT_TRUE(absl::IsUnimplemented(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("QMP x-nope on fake failed: CommandNotFound"));
  absl::Status s = (*client)->Cont();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("Resetting the VM is required"));
  EXPECT_TRUE((*client)->Health().ok());
}

TEST(QmpClientTest, CommandTimeout) {
  FakeQmpServer server([](const json&) -> std::vector<std::string> { return {}; });
  auto client = QmpClient::FromFd(server.TakeClientEnd(), "fake", Soon());
  ASSERT_TRUE(client.ok());
  absl::Time start = absl::Now();
  auto r = (*client)->Execute("query-status", nullptr, absl::Milliseconds(200));
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("got no answer within 200ms"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  // A late reply to a timed-out command is dropped; the client stays usable.
  EXPECT_TRUE((*client)->Health().ok());
}

TEST(QmpClientTest, MalformedJsonClosesWithoutCrash) {
  FakeQmpServer server([](const json&) -> std::vector<std::string> {
    return {"{\"return\": {unquoted garbage"};
  });
  auto client = QmpClient::FromFd(server.TakeClientEnd(), "fake", Soon());
  ASSERT_TRUE(client.ok());
  auto r = (*client)->QueryStatus();
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("malformed JSON from QEMU on fake"));
  // Later commands fail at once with the same reason.
  absl::Status again = (*client)->Stop();
  EXPECT_TRUE(absl::IsDataLoss(again)) << again;
  EXPECT_FALSE((*client)->Health().ok());
}

TEST(QmpClientTest, NonObjectJsonIsMalformedToo) {
  FakeQmpServer server([](const json&) -> std::vector<std::string> { return {"[1,2,3]"}; });
  auto client = QmpClient::FromFd(server.TakeClientEnd(), "fake", Soon());
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE(absl::IsDataLoss((*client)->Stop()));
}

TEST(QmpClientTest, ReplyWithoutStatusField) {
  FakeQmpServer server([](const json& cmd) -> std::vector<std::string> {
    return FakeQmpServer::Reply(cmd, {{"nothing", 1}});
  });
  auto client = QmpClient::FromFd(server.TakeClientEnd(), "fake", Soon());
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE(absl::IsDataLoss((*client)->QueryStatus().status()));
}

TEST(QmpClientTest, BadGreetingFailsHandshake) {
  FakeQmpServer server([](const json&) -> std::vector<std::string> { return {}; },
                       "this is not json");
  auto client = QmpClient::FromFd(server.TakeClientEnd(), "fake", Soon());
  EXPECT_TRUE(absl::IsDataLoss(client.status())) << client.status();
  EXPECT_THAT(client.status().message(), HasSubstr("not a QMP greeting"));
}

TEST(QmpClientTest, SilentPeerHandshakeTimesOut) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd peer(sv[1]);
  auto client = QmpClient::FromFd(UniqueFd(sv[0]), "silent", absl::Now() + absl::Milliseconds(200));
  EXPECT_TRUE(absl::IsDeadlineExceeded(client.status())) << client.status();
}

TEST(QmpClientTest, ConnectionLossFailsPendingAndQuitCountsAsDone) {
  FakeQmpServer* self = nullptr;
  FakeQmpServer server([&](const json& cmd) -> std::vector<std::string> {
    if (cmd["execute"] == "quit" || cmd["execute"] == "query-status") self->CloseConnection();
    return {};
  });
  self = &server;
  auto client = QmpClient::FromFd(server.TakeClientEnd(), "fake", Soon());
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE((*client)->Quit().ok());
  absl::Status s = (*client)->QueryStatus().status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("closed by QEMU"));
}

TEST(QmpClientTest, OversizedMessageIsRejected) {
  FakeQmpServer server([](const json&) -> std::vector<std::string> {
    return {std::string(kMaxQmpMessageBytes + 10, 'x')};
  });
  auto client = QmpClient::FromFd(server.TakeClientEnd(), "fake", Soon());
  ASSERT_TRUE(client.ok());
  absl::Status s = (*client)->Stop(absl::Seconds(10));
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
}

TEST(QmpClientTest, ConcurrentCommandsGetTheirOwnReplies) {
  FakeQmpServer server([](const json& cmd) -> std::vector<std::string> {
    return FakeQmpServer::Reply(cmd, {{"echo", cmd["arguments"]["n"]}});
  });
  auto client = QmpClient::FromFd(server.TakeClientEnd(), "fake", Soon());
  ASSERT_TRUE(client.ok());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        int n = t * 100 + i;
        auto r = (*client)->Execute("echo", {{"n", n}});
        if (r.ok() && (*r)["echo"] == n) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 100);
}

TEST(QmpClientTest, ConnectRetriesUntilSocketAppears) {
  auto dir = TempDir::Create("cloak-qmp-");
  ASSERT_TRUE(dir.ok());
  const std::string path = dir->Join("qmp.sock");
  std::thread late_server([path] {
    absl::SleepFor(absl::Milliseconds(150));
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(::listen(listener.get(), 1), 0);
    UniqueFd conn(::accept(listener.get(), nullptr, nullptr));
    std::string greeting = std::string(kGreeting) + "\r\n";
    ::send(conn.get(), greeting.data(), greeting.size(), MSG_NOSIGNAL);
    char buf[256];
    ssize_t n = ::read(conn.get(), buf, sizeof(buf));
    ASSERT_GT(n, 0);
    const std::string reply = "{\"return\": {}, \"id\": 0}\r\n";
    ::send(conn.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
    // Hold the connection until the client goes away.
    (void)::read(conn.get(), buf, sizeof(buf));
  });
  auto client = QmpClient::Connect(path, Soon());
  ASSERT_TRUE(client.ok()) << client.status();
  client->reset();
  late_server.join();
}

TEST(QmpClientTest, ConnectGivesUpAtDeadlineOrWhenToldTo) {
  auto dir = TempDir::Create("cloak-qmp-");
  ASSERT_TRUE(dir.ok());
  auto r = QmpClient::Connect(dir->Join("absent.sock"), absl::Now() + absl::Milliseconds(100));
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("absent.sock"));
  r = QmpClient::Connect(dir->Join("absent.sock"), Soon(), nullptr,
                         [] { return absl::InternalError("QEMU exited"); });
  EXPECT_TRUE(absl::IsInternal(r.status())) << r.status();
}

}  // namespace
}  // namespace cloak::shim::hypervisor
