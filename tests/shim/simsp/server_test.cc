// SimulatedSp on socketpairs and a unix socket: good requests get signed
// reports, malformed ones an error response, and nothing brings it down.
#include "shim/simsp/server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "shim/simsp/crypto.h"
#include "common/temp_dir.h"

namespace cloak::simsp {
namespace {

using ::testing::HasSubstr;

DevChainOptions FastChain() {
  DevChainOptions options;
  options.rsa_bits = 2048;  // tests: quicker than AMD's 4096
  return options;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("simsp-srv-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(*std::move(dir));
    auto chain = GenerateDevChain(dir_->Join("chain"), FastChain());
    ASSERT_TRUE(chain.ok()) << chain.status();
    options_.measurement = std::string(48, 'M');
    options_.host_data = std::string(32, 'H');
    options_.io_timeout = absl::Milliseconds(500);
    auto sp = SimulatedSp::Create(*std::move(chain), options_);
    ASSERT_TRUE(sp.ok()) << sp.status();
    sp_ = *std::move(sp);
  }
  void Pair(UniqueFd& server, UniqueFd& client) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    server.Reset(fds[0]);
    client.Reset(fds[1]);
  }

  std::optional<TempDir> dir_;
  SimulatedSpOptions options_;
  std::unique_ptr<SimulatedSp> sp_;
};

TEST_F(ServerTest, CreateChecksSizes) {
  auto chain = LoadDevChain(dir_->Join("chain"));
  ASSERT_TRUE(chain.ok()) << chain.status();
  SimulatedSpOptions options;
  options.measurement = "short";
  EXPECT_THAT(SimulatedSp::Create(*std::move(chain), options).status().message(),
              HasSubstr("measurement must be 48 bytes"));
  chain = LoadDevChain(dir_->Join("chain"));
  options.measurement = std::string(48, 'm');
  options.host_data = "x";
  EXPECT_THAT(SimulatedSp::Create(*std::move(chain), options).status().message(),
              HasSubstr("host_data must be 32 bytes"));
}

TEST_F(ServerTest, HandleAnswersEveryInputWithAWellFormedResponse) {
  std::string rd(64, '\x42');
  auto ok = DecodeResponse(sp_->Handle(*EncodeRequest(rd)));
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->status, SpStatus::kOk);
  EXPECT_EQ(ok->report.substr(0x50, 64), rd);
  EXPECT_EQ(ok->report.substr(0x90, 48), options_.measurement);
  EXPECT_EQ(ok->report.substr(0xC0, 32), options_.host_data);
  EXPECT_EQ(ok->vcek_der, sp_->chain().vcek_der);

  for (std::string bad : {std::string(), std::string("CSQ1"), std::string(68, '\0'),
                          std::string("CSQ1") + std::string(65, 'x'), std::string(4096, '\xff')}) {
    auto r = DecodeResponse(sp_->Handle(bad));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, SpStatus::kBadRequest);
    EXPECT_TRUE(r->report.empty());
    EXPECT_FALSE(r->message.empty());
  }
  EXPECT_EQ(sp_->reports_signed(), 1u);
}

TEST_F(ServerTest, ServesSeveralRequestsOnOneConnection) {
  UniqueFd server, client;
  Pair(server, client);
  std::thread t([&] { EXPECT_TRUE(sp_->ServeConnection(server.get()).ok()); });
  std::string first_id;
  for (char c : {'a', 'b', 'c'}) {
    auto r = RequestReport(client.get(), std::string(64, c));
    if (!r.ok()) {
      ADD_FAILURE() << r.status();
      break;
    }
    EXPECT_EQ(r->report.substr(0x50, 64), std::string(64, c));
    // One launch: REPORT_ID stays the same across requests.
    if (first_id.empty()) first_id = r->report.substr(0x140, 32);
    EXPECT_EQ(r->report.substr(0x140, 32), first_id);
  }
  client.Reset();  // EOF: the server returns OK
  t.join();
  EXPECT_EQ(sp_->reports_signed(), 3u);
}

TEST_F(ServerTest, GarbageGetsAnErrorAndTheConnectionIsDropped) {
  UniqueFd server, client;
  Pair(server, client);
  absl::Status served;
  std::thread t([&] { served = sp_->ServeConnection(server.get()); });
  std::string garbage(68, 'G');
  ASSERT_EQ(::write(client.get(), garbage.data(), garbage.size()), 68);
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  auto header = ReadExactBefore(client.get(), kResponseHeaderSize, deadline);
  ASSERT_TRUE(header.ok()) << header.status();
  auto body = ReadExactBefore(client.get(), *ResponseBodySize(*header), deadline);
  ASSERT_TRUE(body.ok());
  auto r = DecodeResponse(*header + *body);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, SpStatus::kBadRequest);
  EXPECT_THAT(r->message, HasSubstr("bad magic"));
  t.join();
  // ServeConnection gave up on the stream after answering (the caller then
  // closes the connection); nothing was signed.
  EXPECT_THAT(served.message(), HasSubstr("bad magic"));
  EXPECT_EQ(sp_->reports_signed(), 0u);
}

TEST_F(ServerTest, ATruncatedOrStalledRequestEndsTheConnectionNotTheServer) {
  {
    UniqueFd server, client;
    Pair(server, client);
    absl::Status served;
    std::thread t([&] { served = sp_->ServeConnection(server.get()); });
    ASSERT_EQ(::write(client.get(), "CSQ1abc", 7), 7);
    client.Reset();
    t.join();
    EXPECT_TRUE(absl::IsDataLoss(served)) << served;
  }
  {
    UniqueFd server, client;
    Pair(server, client);
    absl::Status served;
    std::thread t([&] { served = sp_->ServeConnection(server.get()); });
    ASSERT_EQ(::write(client.get(), "CSQ1abc", 7), 7);  // and then nothing
    t.join();
    EXPECT_TRUE(absl::IsDeadlineExceeded(served)) << served;
  }
  // Still answering.
  UniqueFd server, client;
  Pair(server, client);
  std::thread t([&] { EXPECT_TRUE(sp_->ServeConnection(server.get()).ok()); });
  EXPECT_TRUE(RequestReport(client.get(), std::string(64, 'z')).ok());
  client.Reset();
  t.join();
}

TEST_F(ServerTest, UnixSocketSurvivesBadClientsAndStops) {
  std::string path = dir_->Join("sp.sock");
  ASSERT_TRUE(sp_->Listen(path).ok());
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::others_all,
            std::filesystem::perms::none);
  absl::Status served;
  std::thread t([&] { served = sp_->ServeUnixSocket(path); });

  // A request of the wrong size from the client side is refused locally.
  EXPECT_FALSE(RequestReportFromSocket(path, "short").ok());
  // A client that connects and leaves.
  { auto ignored = RequestReportFromSocket(path, std::string(64, 'q'), absl::Milliseconds(1)); }
  for (int i = 0; i < 3; ++i) {
    auto r = RequestReportFromSocket(path, std::string(64, static_cast<char>('0' + i)));
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) {
      EXPECT_EQ(r->report.size(), tee::kSnpReportSize);
    }
  }
  sp_->Stop();
  t.join();
  EXPECT_TRUE(served.ok()) << served;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(ServerTest, RefusesToReplaceAFileThatIsNotASocket) {
  std::string path = dir_->Join("plain");
  ASSERT_TRUE(WriteFileAtomic(path, "keep me").ok());
  EXPECT_TRUE(absl::IsAlreadyExists(sp_->Listen(path)));
  EXPECT_EQ(*ReadFile(path), "keep me");
}

}  // namespace
}  // namespace cloak::simsp
