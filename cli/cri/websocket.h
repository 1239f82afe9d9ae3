// A small WebSocket client (RFC 6455, client side) for the CRI streaming
// server that containerd's Exec and Attach answers point at.
//
// Pure parts, unit-tested on their own: the opening handshake (request, and
// the check of the server's 101 answer: Upgrade, Connection,
// Sec-WebSocket-Accept = base64(SHA-1(key + GUID)), the chosen subprotocol),
// frame encoding (client frames are always masked) and WsReader, which turns
// received bytes into whole messages (fragments joined) and control frames.
// WebSocket is the thin shell over a TCP socket: plain ws:// or http:// only
// (the CRI streaming server speaks plain HTTP unless it was configured with
// TLS; this client refuses https).
#ifndef CLOAK_CLI_CRI_WEBSOCKET_H_
#define CLOAK_CLI_CRI_WEBSOCKET_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/fd.h"

namespace cloak::cri {

// Largest message this client accepts (a CRI stream carries stdout chunks of
// a few KiB; a peer announcing more is broken or hostile).
inline constexpr size_t kMaxWebSocketMessage = 16 * 1024 * 1024;

struct WsUrl {
  std::string host;  // as written (name or address)
  int port = 80;
  std::string path;  // with query, "/" at least
};

// Parses ws://host[:port]/path or http://host[:port]/path (the form containerd
// returns). https:// and wss:// are refused: no TLS in this client.
absl::StatusOr<WsUrl> ParseWsUrl(absl::string_view url);

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), RFC 6455 §4.2.2.
std::string WebSocketAccept(absl::string_view key);
// A fresh Sec-WebSocket-Key: 16 random bytes, base64.
std::string NewWebSocketKey();

std::string BuildHandshakeRequest(const WsUrl& url, absl::string_view key,
                                  const std::vector<std::string>& protocols);
// Checks the server's answer (status line and headers, up to the blank line)
// and returns the subprotocol it chose ("" if none was asked for).
absl::StatusOr<std::string> CheckHandshakeResponse(absl::string_view head, absl::string_view key,
                                                   const std::vector<std::string>& protocols);

enum class WsOpcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// One frame, FIN set, payload masked with `mask` (masked = client to server).
std::string EncodeWsFrame(WsOpcode opcode, absl::string_view payload,
                          const std::optional<std::array<uint8_t, 4>>& mask);
// The payload of a close frame: status code (big-endian) and reason.
std::string CloseFramePayload(uint16_t code, absl::string_view reason);

// What WsReader yields: a whole data message, or a control frame.
struct WsEvent {
  WsOpcode opcode = WsOpcode::kBinary;  // kText/kBinary for messages
  std::string payload;
  // For kClose: the status code, if the peer sent one.
  std::optional<uint16_t> close_code;
};

// Incremental decoder. Frames from a server must not be masked (RFC 6455
// §5.1); a server-side reader (tests) sets expect_masked.
class WsReader {
 public:
  explicit WsReader(bool expect_masked = false, size_t max_message = kMaxWebSocketMessage)
      : expect_masked_(expect_masked), max_message_(max_message) {}
  void Feed(absl::string_view bytes) { buffer_.append(bytes.data(), bytes.size()); }
  // The next event, nullopt when more bytes are needed; an error for a
  // protocol violation (the connection must then be closed with 1002).
  absl::StatusOr<std::optional<WsEvent>> Next();

 private:
  bool expect_masked_;
  size_t max_message_;
  std::string buffer_;
  // A fragmented message being assembled.
  std::optional<WsOpcode> partial_opcode_;
  std::string partial_;
};

// A connected WebSocket client on a TCP socket.
class WebSocket {
 public:
  // Connects, sends the opening handshake offering `protocols` and checks the
  // answer, all within `timeout`.
  static absl::StatusOr<WebSocket> Connect(absl::string_view url,
                                           const std::vector<std::string>& protocols,
                                           absl::Duration timeout);

  WebSocket(WebSocket&&) = default;
  WebSocket& operator=(WebSocket&&) = default;

  int fd() const { return fd_.get(); }
  const std::string& protocol() const { return protocol_; }
  // Whether the peer closed (close frame or end of stream).
  bool closed() const { return closed_; }
  std::optional<uint16_t> close_code() const { return close_code_; }

  // Sends one masked frame holding `payload`.
  absl::Status Send(WsOpcode opcode, absl::string_view payload);
  // Reads what the socket has (call when it is readable, or it blocks) and
  // returns the data messages now complete. Pings are answered with pongs;
  // a close frame is answered once and sets closed().
  absl::StatusOr<std::vector<WsEvent>> ReadAvailable();
  // Starts the closing handshake (idempotent).
  absl::Status Close(uint16_t code = 1000, absl::string_view reason = "");

 private:
  WebSocket(UniqueFd fd, std::string protocol) : fd_(std::move(fd)), protocol_(std::move(protocol)) {}
  absl::Status WriteAll(absl::string_view bytes);

  UniqueFd fd_;
  std::string protocol_;
  WsReader reader_;
  bool closed_ = false;
  bool close_sent_ = false;
  std::optional<uint16_t> close_code_;
};

}  // namespace cloak::cri

#endif  // CLOAK_CLI_CRI_WEBSOCKET_H_
