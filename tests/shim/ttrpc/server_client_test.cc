// Server and client over a unix socket in a temporary directory, plus a raw
// socket that sends what a broken or hostile peer might.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/temp_dir.h"
#include "shim/ttrpc/client.h"
#include "shim/ttrpc/frame.h"
#include "shim/ttrpc/server.h"
#include "shim/ttrpc/socket.h"
#include "shim/ttrpc/status.h"
#include "google/protobuf/wrappers.pb.h"
#include "gtest/gtest.h"
#include "ttrpc/ttrpc.pb.h"

namespace cloak::ttrpc {
namespace {

using google::protobuf::StringValue;

constexpr absl::string_view kService = "cloak.test.Echo";

CallOptions Timeout(absl::Duration d) {
  CallOptions o;
  o.timeout = d;
  return o;
}

class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("ck-ttrpc-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    path_ = dir_->Join("s.sock");
    ServerOptions options;
    options.on_connection_close = [this](uint64_t) { closed_connections_++; };
    auto server = Server::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    // Say: echoes the payload, prefixed with the namespace metadata.
    server_->RegisterMethod(kService, "Say",
                            [](const RequestContext& ctx, const std::string& payload)
                                -> absl::StatusOr<std::string> {
                              return ctx.Namespace() + payload;
                            });
    // Block: waits for release_ (or the connection closing).
    server_->RegisterMethod(kService, "Block",
                            [this](const RequestContext& ctx, const std::string&)
                                -> absl::StatusOr<std::string> {
                              {
                                absl::MutexLock lock(&mu_);
                                block_deadline_ = ctx.deadline;
                              }
                              blocked_.Notify();
                              while (!release_.WaitForNotificationWithTimeout(
                                  absl::Milliseconds(10))) {
                                if (ctx.IsCancelled()) {
                                  return absl::CancelledError("connection closed");
                                }
                              }
                              return std::string("released");
                            });
    server_->RegisterMethod(kService, "Fail",
                            [](const RequestContext&, const std::string& payload)
                                -> absl::StatusOr<std::string> {
                              return absl::NotFoundError("no such thing: " + payload);
                            });
    server_->RegisterTypedMethod<StringValue, StringValue>(
        kService, "Upper",
        [](const RequestContext&, const StringValue& in) -> absl::StatusOr<StringValue> {
          StringValue out;
          for (char c : in.value()) out.mutable_value()->push_back(static_cast<char>(std::toupper(c)));
          return out;
        });
    ASSERT_TRUE(server_->Listen(path_).ok());
  }

  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (server_) server_->Shutdown();
  }

  std::unique_ptr<Client> Connect(ClientOptions options = {}) {
    auto c = Client::Connect("unix://" + path_, std::move(options));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // A fresh connection can still make a call: the server survived.
  void ExpectServerServes() {
    auto c = Connect();
    ASSERT_NE(c, nullptr);
    auto r = c->CallRaw(kService, "Say", "still here", Timeout(absl::Seconds(5)));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, "still here");
  }

  std::unique_ptr<TempDir> dir_;
  std::string path_;
  std::unique_ptr<Server> server_;
  std::atomic<int> closed_connections_{0};
  absl::Notification blocked_;
  absl::Notification release_;
  absl::Mutex mu_;
  absl::Time block_deadline_ ABSL_GUARDED_BY(mu_);
};

using ttrpc_rpc = RpcTest;
using ttrpc_malformed = RpcTest;

// --- raw socket helpers -----------------------------------------------------

UniqueFd RawConnect(const std::string& path) {
  auto fd = ConnectUnix(path);
  EXPECT_TRUE(fd.ok()) << fd.status();
  return fd.ok() ? std::move(*fd) : UniqueFd();
}

std::string RequestBytes(absl::string_view service, absl::string_view method,
                         absl::string_view payload) {
  ::ttrpc::Request req;
  req.set_service(std::string(service));
  req.set_method(std::string(method));
  req.set_payload(std::string(payload));
  return req.SerializeAsString();
}

void SendFrame(int fd, uint32_t stream_id, uint8_t type, absl::string_view payload) {
  FrameHeader h{static_cast<uint32_t>(payload.size()), stream_id, type, 0};
  ASSERT_TRUE(SendAll(fd, EncodeHeader(h)).ok());
  ASSERT_TRUE(SendAll(fd, payload).ok());
}

// Reads one frame within `timeout`; NotFound-free: an error on EOF.
absl::StatusOr<Frame> ReadFrame(int fd, absl::Duration timeout = absl::Seconds(5)) {
  FrameDecoder d;
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  while (true) {
    auto f = d.Next();
    if (!f.ok()) return f.status();
    if (f->has_value()) return std::move(**f);
    absl::Status ready = WaitReadable(fd, deadline - absl::Now());
    if (!ready.ok()) return ready;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) return absl::InternalError("read failed");
    if (n == 0) return absl::OutOfRangeError("EOF");
    d.Append(absl::string_view(buf, static_cast<size_t>(n)));
  }
}

// True if the peer closes the connection within `timeout`.
bool ClosedByPeer(int fd, absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  char buf[256];
  while (WaitReadable(fd, deadline - absl::Now()).ok()) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) return true;
  }
  return false;
}

absl::Status ResponseStatus(const Frame& f) {
  ::ttrpc::Response resp;
  if (!resp.ParseFromString(f.payload)) return absl::DataLossError("bad response");
  return FromRpcStatus(resp.status());
}

// --- calls ----------------------------------------------------------------

TEST_F(ttrpc_rpc, RoundTripWithMetadata) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  CallOptions o;
  o.metadata = {{std::string(kNamespaceMetadataKey), "k8s.io"}};
  auto r = c->CallRaw(kService, "Say", "/hello", o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "k8s.io/hello");
  // Zero-length payloads in both directions.
  r = c->CallRaw(kService, "Say", "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "");
}

TEST_F(ttrpc_rpc, TypedCall) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  StringValue in;
  in.set_value("shout");
  auto r = c->Call<StringValue, StringValue>(kService, "Upper", in);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->value(), "SHOUT");
  // A payload that is not a StringValue: Internal, as the Go server says.
  auto bad = c->CallRaw(kService, "Upper", "\xff\xff\xff");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(bad.status().message(), "ttrpc: error unmarshalling payload");
}

TEST_F(ttrpc_rpc, HandlerErrorKeepsCodeAndMessage) {
  auto c = Connect();
  auto r = c->CallRaw(kService, "Fail", "abc");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "no such thing: abc");
}

TEST_F(ttrpc_rpc, UnknownServiceAndMethod) {
  auto c = Connect();
  auto r = c->CallRaw("nope.Service", "Say", "");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(r.status().message(), "service nope.Service");
  r = c->CallRaw(kService, "Nope", "");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(r.status().message(), "method Nope");
}

TEST_F(ttrpc_rpc, BlockedCallDoesNotStallOthers) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  absl::StatusOr<std::string> blocked_result;
  std::thread waiter([&] { blocked_result = c->CallRaw(kService, "Block", ""); });
  ASSERT_TRUE(blocked_.WaitForNotificationWithTimeout(absl::Seconds(5)));

  // Many calls from several threads on the same connection while Block waits.
  const absl::Time start = absl::Now();
  std::vector<std::thread> callers;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        std::string msg = std::to_string(t) + ":" + std::to_string(i);
        auto r = c->CallRaw(kService, "Say", msg, Timeout(absl::Seconds(5)));
        if (r.ok() && *r == msg) ok++;
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(ok.load(), 100);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_FALSE(release_.HasBeenNotified());

  release_.Notify();
  waiter.join();
  ASSERT_TRUE(blocked_result.ok()) << blocked_result.status();
  EXPECT_EQ(*blocked_result, "released");
}

TEST_F(ttrpc_rpc, ClientTimeoutIsDeadlineExceeded) {
  auto c = Connect();
  const absl::Time start = absl::Now();
  auto r = c->CallRaw(kService, "Block", "", Timeout(absl::Milliseconds(200)));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  {
    // The server saw the timeout as a deadline.
    absl::MutexLock lock(&mu_);
    EXPECT_NE(block_deadline_, absl::InfiniteFuture());
    EXPECT_LT(block_deadline_, absl::Now() + absl::Seconds(1));
  }
  release_.Notify();
  // The late response is dropped; the connection keeps working.
  auto again = c->CallRaw(kService, "Say", "x");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, "x");
}

TEST_F(ttrpc_rpc, UnavailableWhenServerGoesAway) {
  std::atomic<int> on_close{0};
  auto c = Connect({.on_close = [&] { on_close++; }});
  ASSERT_NE(c, nullptr);
  absl::StatusOr<std::string> pending;
  std::thread waiter([&] { pending = c->CallRaw(kService, "Block", ""); });
  ASSERT_TRUE(blocked_.WaitForNotificationWithTimeout(absl::Seconds(5)));
  server_->Shutdown();  // the Block handler sees ctx.cancelled and returns
  waiter.join();
  EXPECT_EQ(pending.status().code(), absl::StatusCode::kUnavailable) << pending.status();
  EXPECT_EQ(pending.status().message(), "ttrpc: closed");
  EXPECT_TRUE(IsClosedError(pending.status()));
  auto later = c->CallRaw(kService, "Say", "x");
  EXPECT_TRUE(IsClosedError(later.status())) << later.status();
  EXPECT_TRUE(c->IsClosed());
  EXPECT_EQ(on_close.load(), 1);
  EXPECT_FALSE(Client::Connect(path_).ok()) << "socket file removed at shutdown";
}

TEST_F(ttrpc_rpc, ConnectionCloseCallbackAndCount) {
  {
    auto c = Connect();
    ASSERT_TRUE(c->CallRaw(kService, "Say", "x").ok());
    EXPECT_EQ(server_->ConnectionCount(), 1u);
  }
  for (int i = 0; i < 500 && closed_connections_.load() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(closed_connections_.load(), 1);
  EXPECT_EQ(server_->ConnectionCount(), 0u);
}

TEST_F(ttrpc_rpc, ManyConnections) {
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(Connect());
  for (size_t i = 0; i < clients.size(); ++i) {
    auto r = clients[i]->CallRaw(kService, "Say", std::to_string(i));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, std::to_string(i));
  }
}

TEST(ttrpc_server, ServesAnInheritedListeningFd) {
  auto dir = TempDir::Create("ck-ttrpc-");
  ASSERT_TRUE(dir.ok());
  const std::string path = dir->Join("fd3.sock");
  auto listener = ListenUnix(path);
  ASSERT_TRUE(listener.ok()) << listener.status();
  auto server = Server::Create();
  ASSERT_TRUE(server.ok());
  (*server)->RegisterMethod("s", "m", [](const RequestContext&, const std::string& p)
                                          -> absl::StatusOr<std::string> { return p; });
  ASSERT_TRUE((*server)->ServeListener(std::move(*listener)).ok());
  auto c = Client::Connect(path);
  ASSERT_TRUE(c.ok()) << c.status();
  auto r = (*c)->CallRaw("s", "m", "fd");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "fd");

  // A connected (not listening) socket is refused.
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  UniqueFd keep(pair[1]);
  EXPECT_EQ((*server)->ServeListener(UniqueFd(pair[0])).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ttrpc_socket, Addresses) {
  EXPECT_EQ(*SocketPathFromAddress("unix:///run/x.sock"), "/run/x.sock");
  EXPECT_EQ(*SocketPathFromAddress("/run/x.sock"), "/run/x.sock");
  EXPECT_EQ(*SocketPathFromAddress("@abstract"), "@abstract");
  EXPECT_FALSE(SocketPathFromAddress("tcp://1.2.3.4:5").ok());
  EXPECT_FALSE(SocketPathFromAddress("unix://").ok());
  EXPECT_FALSE(SocketPathFromAddress("/" + std::string(200, 'a')).ok());
}

TEST(ttrpc_client, StreamIdsAreOddAndIncreaseByTwo) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd server_end(pair[1]);
  auto c = Client::FromFd(UniqueFd(pair[0]));
  ASSERT_TRUE(c.ok());
  std::thread caller([&] {
    for (int i = 0; i < 3; ++i) {
      auto r = (*c)->CallRaw("s", "m", "p", Timeout(absl::Seconds(1)));
      EXPECT_TRUE(r.ok()) << r.status();
    }
  });
  for (uint32_t want : {1u, 3u, 5u}) {
    auto f = ReadFrame(server_end.get());
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->stream_id, want);
    EXPECT_EQ(f->type, MessageType::kRequest);
    EXPECT_EQ(f->flags, 0);
    ::ttrpc::Request req;
    ASSERT_TRUE(req.ParseFromString(f->payload));
    EXPECT_EQ(req.service(), "s");
    EXPECT_EQ(req.method(), "m");
    EXPECT_EQ(req.timeout_nano(), 1000000000);
    ::ttrpc::Response resp;  // success without a status
    ASSERT_TRUE(SendAll(server_end.get(),
                        *EncodeFrame(f->stream_id, MessageType::kResponse, 0,
                                     resp.SerializeAsString()))
                    .ok());
  }
  caller.join();
}

// --- malformed input --------------------------------------------------------

TEST_F(ttrpc_malformed, ShortHeaderThenEofClosesOnlyThatConnection) {
  auto other = Connect();  // an innocent connection that must survive
  UniqueFd fd = RawConnect(path_);
  ASSERT_TRUE(SendAll(fd.get(), std::string(5, '\0')).ok());
  ::shutdown(fd.get(), SHUT_WR);
  EXPECT_TRUE(ClosedByPeer(fd.get()));
  ExpectServerServes();
  EXPECT_TRUE(other->CallRaw(kService, "Say", "x").ok());
}

TEST_F(ttrpc_malformed, OversizedFrameGetsResourceExhaustedAndConnectionLives) {
  UniqueFd fd = RawConnect(path_);
  const uint32_t big = kMaxMessageSize + 1;
  ASSERT_TRUE(SendAll(fd.get(), EncodeHeader({big, 1, 1, 0})).ok());
  ASSERT_TRUE(SendAll(fd.get(), std::string(big, 'z')).ok());
  auto f = ReadFrame(fd.get());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->stream_id, 1u);
  EXPECT_EQ(f->type, MessageType::kResponse);
  absl::Status s = ResponseStatus(*f);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "message length 4194305 exceed maximum message size of 4194304");

  // Same connection, next stream: still served.
  SendFrame(fd.get(), 3, 1, RequestBytes(kService, "Say", "ok"));
  f = ReadFrame(fd.get());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->stream_id, 3u);
  ::ttrpc::Response resp;
  ASSERT_TRUE(resp.ParseFromString(f->payload));
  EXPECT_EQ(resp.status().code(), 0);
  EXPECT_EQ(resp.payload(), "ok");
  ExpectServerServes();
}

TEST_F(ttrpc_malformed, UnknownMessageTypeClosesConnection) {
  UniqueFd fd = RawConnect(path_);
  SendFrame(fd.get(), 1, 0x7f, "whatever");
  EXPECT_TRUE(ClosedByPeer(fd.get()));
  ExpectServerServes();
}

TEST_F(ttrpc_malformed, GarbageRequestPayloadIsInvalidArgument) {
  UniqueFd fd = RawConnect(path_);
  SendFrame(fd.get(), 1, 1, "\xff\xff\xff\xff garbage");
  auto f = ReadFrame(fd.get());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->stream_id, 1u);
  EXPECT_EQ(ResponseStatus(*f).code(), absl::StatusCode::kInvalidArgument);
  ExpectServerServes();
}

TEST_F(ttrpc_malformed, EvenAndReusedStreamIdsAreRefused) {
  UniqueFd fd = RawConnect(path_);
  SendFrame(fd.get(), 2, 1, RequestBytes(kService, "Say", "even"));
  auto f = ReadFrame(fd.get());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->stream_id, 2u);
  absl::Status s = ResponseStatus(*f);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "StreamID must be odd for client initiated streams");

  SendFrame(fd.get(), 5, 1, RequestBytes(kService, "Say", "five"));
  f = ReadFrame(fd.get());
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(ResponseStatus(*f).ok());
  SendFrame(fd.get(), 3, 1, RequestBytes(kService, "Say", "three"));
  f = ReadFrame(fd.get());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(ResponseStatus(*f).message(), "StreamID cannot be re-used and must increment");
  ExpectServerServes();
}

TEST_F(ttrpc_malformed, ResponseAndDataFramesFromClientAreIgnored) {
  UniqueFd fd = RawConnect(path_);
  SendFrame(fd.get(), 1, 2, "stray response");
  SendFrame(fd.get(), 1, 3, "stray data");
  SendFrame(fd.get(), 3, 1, RequestBytes(kService, "Say", "fine"));
  auto f = ReadFrame(fd.get());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->stream_id, 3u);
  EXPECT_TRUE(ResponseStatus(*f).ok());
}

}  // namespace
}  // namespace cloak::ttrpc
