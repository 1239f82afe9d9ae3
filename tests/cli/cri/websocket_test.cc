// The WebSocket client (RFC 6455 examples for the handshake and frames) and
// the remotecommand v4 stream over it, against an in-process fake server on
// 127.0.0.1.
#include "cli/cri/websocket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/cri/stream.h"
#include "common/fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::cri {
namespace {

using ::testing::HasSubstr;

std::string Bytes(std::initializer_list<int> b) {
  std::string out;
  for (int c : b) out.push_back(static_cast<char>(c));
  return out;
}

TEST(WebSocketHandshake, AcceptIsTheRfcExample) {
  // RFC 6455 §1.3.
  EXPECT_EQ(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketHandshake, KeysAreSixteenRandomBytesInBase64) {
  const std::string a = NewWebSocketKey(), b = NewWebSocketKey();
  EXPECT_EQ(a.size(), 24u);
  EXPECT_NE(a, b);
}

TEST(WebSocketHandshake, RequestCarriesUpgradeKeyVersionAndProtocols) {
  const std::string req = BuildHandshakeRequest(
      {.host = "127.0.0.1", .port = 1234, .path = "/exec/tok"}, "KEY", {"v4.channel.k8s.io"});
  EXPECT_TRUE(absl::StartsWith(req, "GET /exec/tok HTTP/1.1\r\nHost: 127.0.0.1:1234\r\n"));
  EXPECT_THAT(req, HasSubstr("Upgrade: websocket\r\nConnection: Upgrade\r\n"));
  EXPECT_THAT(req, HasSubstr("Sec-WebSocket-Key: KEY\r\nSec-WebSocket-Version: 13\r\n"));
  EXPECT_THAT(req, HasSubstr("Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"));
}

TEST(WebSocketHandshake, ChecksStatusAcceptAndProtocol) {
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  const std::string ok =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: "
      "v4.channel.k8s.io";
  auto p = CheckHandshakeResponse(ok, key, {"v4.channel.k8s.io"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, "v4.channel.k8s.io");

  std::string bad_accept = ok;
  bad_accept.replace(bad_accept.find("s3pP"), 4, "AAAA");
  EXPECT_THAT(CheckHandshakeResponse(bad_accept, key, {"v4.channel.k8s.io"}).status().message(),
              HasSubstr("does not match"));
  auto other = CheckHandshakeResponse(ok, key, {"v5.channel.k8s.io"});
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  auto refused = CheckHandshakeResponse("HTTP/1.1 404 Not Found\r\nContent-Length: 0", key, {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("404"));
}

TEST(WebSocketUrl, ParsesHttpAndWsRefusesTls) {
  auto u = ParseWsUrl("http://127.0.0.1:41234/exec/AbC");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 41234);
  EXPECT_EQ(u->path, "/exec/AbC");
  auto v6 = ParseWsUrl("ws://[::1]:80");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->path, "/");
  EXPECT_EQ(ParseWsUrl("https://h/x").status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(ParseWsUrl("ftp://h/x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseWsUrl("http://h:99999/").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WebSocketFrames, EncodesTheRfcExamples) {
  // RFC 6455 §5.7: a masked "Hello" text frame, and length encodings.
  EXPECT_EQ(EncodeWsFrame(WsOpcode::kText, "Hello", std::array<uint8_t, 4>{0x37, 0xfa, 0x21, 0x3d}),
            Bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  EXPECT_EQ(EncodeWsFrame(WsOpcode::kText, "Hello", std::nullopt),
            Bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_EQ(EncodeWsFrame(WsOpcode::kBinary, std::string(256, 'x'), std::nullopt).substr(0, 4),
            Bytes({0x82, 0x7E, 0x01, 0x00}));
  EXPECT_EQ(EncodeWsFrame(WsOpcode::kBinary, std::string(65536, 'x'), std::nullopt).substr(0, 10),
            Bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}));
}

TEST(WebSocketReader, JoinsFragmentsAroundAControlFrameFedByteByByte) {
  // "Hel" + ping("Hello") + "lo" (RFC 6455 §5.7), then a close 1000.
  const std::string wire = Bytes({0x01, 0x03, 0x48, 0x65, 0x6c}) +
                           Bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}) +
                           Bytes({0x80, 0x02, 0x6c, 0x6f}) + Bytes({0x88, 0x02, 0x03, 0xe8});
  WsReader reader;
  std::vector<WsEvent> events;
  for (char c : wire) {
    reader.Feed(std::string(1, c));
    auto ev = reader.Next();
    ASSERT_TRUE(ev.ok()) << ev.status();
    if (ev->has_value()) events.push_back(**ev);
  }
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].opcode, WsOpcode::kPing);
  EXPECT_EQ(events[0].payload, "Hello");
  EXPECT_EQ(events[1].opcode, WsOpcode::kText);
  EXPECT_EQ(events[1].payload, "Hello");
  EXPECT_EQ(events[2].opcode, WsOpcode::kClose);
  EXPECT_EQ(events[2].close_code, 1000);
}

TEST(WebSocketReader, ReadsLongLengthsAndMaskedClientFrames) {
  WsReader server_side(/*expect_masked=*/true);
  const std::string payload(70000, 'z');
  server_side.Feed(EncodeWsFrame(WsOpcode::kBinary, payload, std::array<uint8_t, 4>{1, 2, 3, 4}));
  auto ev = server_side.Next();
  ASSERT_TRUE(ev.ok() && ev->has_value()) << ev.status();
  EXPECT_EQ((*ev)->payload, payload);
}

TEST(WebSocketReader, RefusesProtocolViolations) {
  auto first_error = [](const std::string& wire, size_t max = kMaxWebSocketMessage) {
    WsReader reader(false, max);
    reader.Feed(wire);
    return reader.Next().status();
  };
  // A masked frame from a server.
  EXPECT_FALSE(
      first_error(EncodeWsFrame(WsOpcode::kText, "x", std::array<uint8_t, 4>{1, 1, 1, 1})).ok());
  // Reserved bits, unknown opcode, a fragmented ping, a stray continuation.
  EXPECT_FALSE(first_error(Bytes({0xC1, 0x00})).ok());
  EXPECT_FALSE(first_error(Bytes({0x83, 0x00})).ok());
  EXPECT_FALSE(first_error(Bytes({0x09, 0x00})).ok());
  EXPECT_FALSE(first_error(Bytes({0x80, 0x00})).ok());
  // Longer than allowed, refused from the header alone.
  EXPECT_EQ(first_error(Bytes({0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0}), 1024).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(StreamStatus, ExitCodesFromV4Status) {
  EXPECT_EQ(*ExitCodeFromStatus(R"({"metadata":{},"status":"Success"})"), 0);
  EXPECT_EQ(
      *ExitCodeFromStatus(
          R"({"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}})"),
      3);
  auto internal = ExitCodeFromStatus(
      R"({"status":"Failure","message":"container not running","reason":"InternalError"})");
  EXPECT_FALSE(internal.ok());
  EXPECT_THAT(internal.status().message(), HasSubstr("container not running"));
  EXPECT_FALSE(ExitCodeFromStatus("not json").ok());
  EXPECT_EQ(ResizeMessage(80, 24), R"({"Width":80,"Height":24})");
}

// A one-connection WebSocket server speaking like the CRI streaming server:
// accepts, answers the upgrade with v4.channel.k8s.io, then runs `script`.
class FakeStreamServer {
 public:
  using Script = std::function<void(int fd, WsReader& reader)>;
  explicit FakeStreamServer(Script script) {
    listener_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(listener_.get(), 1);
    thread_ = std::thread([this, script] {
      UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      std::string head;
      char c;
      while (head.find("\r\n\r\n") == std::string::npos && ::read(conn.get(), &c, 1) == 1)
        head += c;
      request_ = head;
      std::string key;
      for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
        if (absl::StartsWithIgnoreCase(line, "Sec-WebSocket-Key:")) {
          key = std::string(absl::StripAsciiWhitespace(line.substr(18)));
        }
      }
      (void)WriteAll(conn.get(),
                     absl::StrCat("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Accept: ",
                                  WebSocketAccept(key),
                                  "\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"));
      WsReader reader(/*expect_masked=*/true);
      script(conn.get(), reader);
    });
  }
  ~FakeStreamServer() { thread_.join(); }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_, "/exec/token"); }
  const std::string& request() const { return request_; }

  static void Send(int fd, uint8_t channel, absl::string_view data) {
    (void)WriteAll(fd, EncodeWsFrame(WsOpcode::kBinary,
                                     std::string(1, static_cast<char>(channel)) + std::string(data),
                                     std::nullopt));
  }
  // The next data message from the client (answering nothing).
  static std::string Receive(int fd, WsReader& reader) {
    while (true) {
      auto ev = reader.Next();
      if (ev.ok() && ev->has_value()) return (*ev)->payload;
      char buf[4096];
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) return "";
      reader.Feed(absl::string_view(buf, static_cast<size_t>(n)));
    }
  }

 private:
  UniqueFd listener_;
  int port_ = 0;
  std::string request_;
  std::thread thread_;
};

struct Pipe {
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read_end.Reset(fds[0]);
    write_end.Reset(fds[1]);
  }
  std::string Drain() {
    write_end.Reset();
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(read_end.get(), buf, sizeof(buf))) > 0)
      out.append(buf, static_cast<size_t>(n));
    return out;
  }
  UniqueFd read_end, write_end;
};

TEST(Stream, ExecForwardsStdinDemultiplexesOutputAndReturnsTheExitCode) {
  std::string got_stdin, got_resize;
  FakeStreamServer server([&](int fd, WsReader& reader) {
    FakeStreamServer::Send(fd, kStdoutChannel,
                           "");  // an empty opening message, as some servers send
    got_resize = FakeStreamServer::Receive(fd, reader);
    got_stdin = FakeStreamServer::Receive(fd, reader);
    // A ping the client must answer, split stdout, stderr, then the status.
    (void)WriteAll(fd, EncodeWsFrame(WsOpcode::kPing, "p", std::nullopt));
    const std::string pong = FakeStreamServer::Receive(fd, reader);
    (void)pong;
    (void)WriteAll(fd, Bytes({0x02, 0x05, kStdoutChannel}) + "got " + Bytes({0x80, 0x05}) +
                           got_stdin.substr(1));
    FakeStreamServer::Send(fd, kStderrChannel, "warn\n");
    FakeStreamServer::Send(
        fd, kErrorChannel,
        R"({"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}})");
    (void)WriteAll(fd, EncodeWsFrame(WsOpcode::kClose, CloseFramePayload(1000, ""), std::nullopt));
  });
  Pipe in, out, err;
  ASSERT_EQ(::write(in.write_end.get(), "ping\n", 5), 5);
  StreamIo io{.stdin_fd = in.read_end.get(),
              .stdout_fd = out.write_end.get(),
              .stderr_fd = err.write_end.get(),
              .cols = 80,
              .rows = 24};
  auto code = RunStream(server.url(), io);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 3);
  EXPECT_EQ(out.Drain(), "got ping\n");
  EXPECT_EQ(err.Drain(), "warn\n");
  EXPECT_EQ(got_resize, std::string(1, kResizeChannel) + R"({"Width":80,"Height":24})");
  EXPECT_EQ(got_stdin, std::string(1, kStdinChannel) + "ping\n");
  EXPECT_THAT(server.request(), HasSubstr("Sec-WebSocket-Protocol: v4.channel.k8s.io"));
}

TEST(Stream, AttachClosesAtStdinEndAndReturnsZeroWithoutStatus) {
  std::string close_payload;
  FakeStreamServer server([&](int fd, WsReader& reader) {
    std::string data = FakeStreamServer::Receive(fd, reader);
    FakeStreamServer::Send(fd, kStdoutChannel, data.substr(1));
    // The client closes once its stdin ends; answer the close.
    while (true) {
      auto ev = reader.Next();
      if (ev.ok() && ev->has_value() && (*ev)->opcode == WsOpcode::kClose) break;
      char buf[256];
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) return;
      reader.Feed(absl::string_view(buf, static_cast<size_t>(n)));
    }
    (void)WriteAll(fd, EncodeWsFrame(WsOpcode::kClose, CloseFramePayload(1000, ""), std::nullopt));
  });
  Pipe in, out;
  ASSERT_EQ(::write(in.write_end.get(), "echo-me\n", 8), 8);
  in.write_end.Reset();  // stdin ends after one line
  StreamIo io{
      .stdin_fd = in.read_end.get(), .stdout_fd = out.write_end.get(), .close_on_stdin_eof = true};
  auto code = RunStream(server.url(), io);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(out.Drain(), "echo-me\n");
}

TEST(Stream, RefusedUpgradeSaysTheUrlIsSingleUse) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len);
  ::listen(listener.get(), 1);
  std::thread t([&] {
    UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    char buf[2048];
    (void)::read(conn.get(), buf, sizeof(buf));
    (void)WriteAll(conn.get(), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  });
  auto code =
      RunStream(absl::StrCat("http://127.0.0.1:", ntohs(a.sin_port), "/exec/x"), StreamIo{});
  t.join();
  EXPECT_EQ(code.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(code.status().message(), HasSubstr("single-use"));
}

}  // namespace
}  // namespace cloak::cri
