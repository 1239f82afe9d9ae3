#include "cli/cri/websocket.h"

#include <netdb.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace cloak::cri {
namespace {

constexpr char kGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
// Largest handshake answer we read before giving up on it.
constexpr size_t kMaxHandshake = 16 * 1024;

std::string Base64(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                                static_cast<int>(len));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::array<uint8_t, 4> RandomMask() {
  std::array<uint8_t, 4> mask{};
  if (RAND_bytes(mask.data(), static_cast<int>(mask.size())) != 1) {
    // Masking guards intermediaries against cache poisoning, not secrecy;
    // a fixed fallback still yields a valid frame.
    mask = {0x5a, 0xc3, 0x19, 0x7e};
  }
  return mask;
}

bool IsControl(WsOpcode op) { return static_cast<uint8_t>(op) >= 0x8; }

bool HeaderHasToken(absl::string_view value, absl::string_view token) {
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(part), token)) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<WsUrl> ParseWsUrl(absl::string_view url) {
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "ws://") || absl::ConsumePrefix(&rest, "http://")) {
  } else if (absl::StartsWith(url, "https://") || absl::StartsWith(url, "wss://")) {
    return absl::UnimplementedError(absl::StrCat(
        "stream URL ", url, " needs TLS, which this client does not speak (containerd serves "
        "plain HTTP unless enable_tls_streaming is set in its CRI config)"));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("stream URL ", url, " is not ws:// or http://"));
  }
  WsUrl out;
  const size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  out.path = slash == absl::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.empty()) return absl::InvalidArgumentError(absl::StrCat("stream URL ", url, " has no host"));
  if (absl::StartsWith(authority, "[")) {  // [v6]:port
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("stream URL ", url, ": bad IPv6 host"));
    }
    out.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty() && !absl::ConsumePrefix(&authority, ":")) {
      return absl::InvalidArgumentError(absl::StrCat("stream URL ", url, ": bad port"));
    }
  } else {
    const size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    authority = colon == absl::string_view::npos ? "" : authority.substr(colon + 1);
  }
  if (!authority.empty() &&
      (!absl::SimpleAtoi(authority, &out.port) || out.port <= 0 || out.port > 65535)) {
    return absl::InvalidArgumentError(absl::StrCat("stream URL ", url, ": bad port"));
  }
  return out;
}

std::string WebSocketAccept(absl::string_view key) {
  const std::string joined = absl::StrCat(key, kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(joined.data()), joined.size(), digest);
  return Base64(digest, sizeof(digest));
}

std::string NewWebSocketKey() {
  unsigned char nonce[16];
  if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
    // The key only proves the server speaks WebSocket; it is no secret.
    const uint64_t t = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
    for (size_t i = 0; i < sizeof(nonce); ++i) nonce[i] = static_cast<unsigned char>(t >> (i % 8));
  }
  return Base64(nonce, sizeof(nonce));
}

std::string BuildHandshakeRequest(const WsUrl& url, absl::string_view key,
                                  const std::vector<std::string>& protocols) {
  const bool v6 = absl::StrContains(url.host, ':');
  std::string req = absl::StrCat("GET ", url.path, " HTTP/1.1\r\nHost: ", v6 ? "[" : "", url.host,
                                 v6 ? "]" : "", ":", url.port,
                                 "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 "Sec-WebSocket-Key: ",
                                 key, "\r\nSec-WebSocket-Version: 13\r\n");
  if (!protocols.empty()) {
    absl::StrAppend(&req, "Sec-WebSocket-Protocol: ", absl::StrJoin(protocols, ", "), "\r\n");
  }
  absl::StrAppend(&req, "\r\n");
  return req;
}

absl::StatusOr<std::string> CheckHandshakeResponse(absl::string_view head, absl::string_view key,
                                                   const std::vector<std::string>& protocols) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n", absl::SkipEmpty());
  if (lines.empty()) return absl::UnavailableError("stream server sent an empty handshake answer");
  std::vector<absl::string_view> status = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  if (status.size() < 2 || !absl::StartsWith(status[0], "HTTP/1.")) {
    return absl::UnavailableError(
        absl::StrCat("stream server answered with no HTTP status line: \"", lines[0], "\""));
  }
  if (status[1] != "101") {
    // 404: the URL's one-time token was used or has expired (containerd
    // keeps it for stream_idle_timeout); 400: e.g. no subprotocol in common.
    return absl::FailedPreconditionError(absl::StrCat(
        "stream server refused the WebSocket upgrade: \"", lines[0],
        "\" (a stream URL is single-use and expires: ask for a new one with Exec/Attach)"));
  }
  std::string upgrade, connection, accept, protocol;
  bool has_protocol = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) continue;
    const std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
    const std::string value(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    if (name == "upgrade") upgrade = value;
    if (name == "connection") connection = value;
    if (name == "sec-websocket-accept") accept = value;
    if (name == "sec-websocket-protocol") {
      protocol = value;
      has_protocol = true;
    }
  }
  if (!absl::EqualsIgnoreCase(upgrade, "websocket") || !HeaderHasToken(connection, "upgrade")) {
    return absl::UnavailableError("stream server's 101 answer lacks Upgrade: websocket / "
                                  "Connection: Upgrade");
  }
  if (accept != WebSocketAccept(key)) {
    return absl::UnavailableError(absl::StrCat("stream server's Sec-WebSocket-Accept \"", accept,
                                               "\" does not match the key sent"));
  }
  if (protocols.empty()) return std::string();
  if (!has_protocol || std::find(protocols.begin(), protocols.end(), protocol) == protocols.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stream server chose subprotocol \"", protocol, "\", not one of ",
        absl::StrJoin(protocols, ", "), " (is it a Kubernetes remotecommand server?)"));
  }
  return protocol;
}

std::string EncodeWsFrame(WsOpcode opcode, absl::string_view payload,
                          const std::optional<std::array<uint8_t, 4>>& mask) {
  std::string out;
  out.reserve(payload.size() + 14);
  out.push_back(static_cast<char>(0x80 | static_cast<uint8_t>(opcode)));
  const uint8_t mask_bit = mask.has_value() ? 0x80 : 0;
  const uint64_t len = payload.size();
  if (len < 126) {
    out.push_back(static_cast<char>(mask_bit | len));
  } else if (len <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len & 0xFF));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(len >> shift));
  }
  if (!mask.has_value()) {
    out.append(payload.data(), payload.size());
    return out;
  }
  out.append(reinterpret_cast<const char*>(mask->data()), 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    out.push_back(static_cast<char>(static_cast<uint8_t>(payload[i]) ^ (*mask)[i % 4]));
  }
  return out;
}

std::string CloseFramePayload(uint16_t code, absl::string_view reason) {
  std::string out;
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xFF));
  out.append(reason.data(), std::min<size_t>(reason.size(), 123));
  return out;
}

absl::StatusOr<std::optional<WsEvent>> WsReader::Next() {
  while (true) {
    if (buffer_.size() < 2) return std::nullopt;
    const auto* b = reinterpret_cast<const uint8_t*>(buffer_.data());
    const bool fin = (b[0] & 0x80) != 0;
    if ((b[0] & 0x70) != 0) {
      return absl::DataLossError("WebSocket frame has reserved bits set (no extension was agreed)");
    }
    const auto opcode = static_cast<WsOpcode>(b[0] & 0x0F);
    const bool masked = (b[1] & 0x80) != 0;
    uint64_t len = b[1] & 0x7F;
    size_t header = 2;
    if (len == 126) {
      if (buffer_.size() < 4) return std::nullopt;
      len = (uint64_t{b[2]} << 8) | b[3];
      header = 4;
    } else if (len == 127) {
      if (buffer_.size() < 10) return std::nullopt;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | b[2 + i];
      header = 10;
    }
    switch (opcode) {
      case WsOpcode::kContinuation:
      case WsOpcode::kText:
      case WsOpcode::kBinary:
      case WsOpcode::kClose:
      case WsOpcode::kPing:
      case WsOpcode::kPong:
        break;
      default:
        return absl::DataLossError(
            absl::StrCat("WebSocket frame with unknown opcode ", static_cast<int>(opcode)));
    }
    if (masked != expect_masked_) {
      return absl::DataLossError(expect_masked_ ? "WebSocket client frame is not masked"
                                                : "WebSocket server frame is masked (RFC 6455 §5.1)");
    }
    if (IsControl(opcode) && (len > 125 || !fin)) {
      return absl::DataLossError("WebSocket control frame is fragmented or longer than 125 bytes");
    }
    if (len > max_message_ || partial_.size() + len > max_message_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "WebSocket message longer than ", max_message_, " bytes; refusing it"));
    }
    const size_t mask_len = masked ? 4 : 0;
    if (buffer_.size() < header + mask_len + len) return std::nullopt;
    std::string payload = buffer_.substr(header + mask_len, len);
    if (masked) {
      for (size_t i = 0; i < payload.size(); ++i) {
        payload[i] = static_cast<char>(static_cast<uint8_t>(payload[i]) ^ b[header + i % 4]);
      }
    }
    buffer_.erase(0, header + mask_len + len);

    if (IsControl(opcode)) {
      WsEvent ev{.opcode = opcode, .payload = std::move(payload), .close_code = std::nullopt};
      if (opcode == WsOpcode::kClose && ev.payload.size() >= 2) {
        ev.close_code = static_cast<uint16_t>((static_cast<uint8_t>(ev.payload[0]) << 8) |
                                              static_cast<uint8_t>(ev.payload[1]));
        ev.payload.erase(0, 2);
      } else if (opcode == WsOpcode::kClose && ev.payload.size() == 1) {
        return absl::DataLossError("WebSocket close frame with a 1-byte payload");
      }
      return ev;
    }
    if (opcode == WsOpcode::kContinuation) {
      if (!partial_opcode_.has_value()) {
        return absl::DataLossError("WebSocket continuation frame without a message to continue");
      }
      partial_ += payload;
    } else {
      if (partial_opcode_.has_value()) {
        return absl::DataLossError("WebSocket data frame inside an unfinished fragmented message");
      }
      partial_opcode_ = opcode;
      partial_ = std::move(payload);
    }
    if (fin) {
      WsEvent ev{.opcode = *partial_opcode_, .payload = std::move(partial_),
                 .close_code = std::nullopt};
      partial_opcode_.reset();
      partial_.clear();
      return ev;
    }
  }
}

absl::StatusOr<WebSocket> WebSocket::Connect(absl::string_view url,
                                             const std::vector<std::string>& protocols,
                                             absl::Duration timeout) {
  ASSIGN_OR_RETURN(WsUrl parsed, ParseWsUrl(url));
  const absl::Time deadline = absl::Now() + timeout;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(parsed.port);
  if (int rc = ::getaddrinfo(parsed.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("resolve stream server ", parsed.host, ": ", ::gai_strerror(rc)));
  }
  UniqueFd fd;
  int last_errno = 0;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    UniqueFd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!s) continue;
    if (::connect(s.get(), ai->ai_addr, ai->ai_addrlen) == 0) {
      fd = std::move(s);
      break;
    }
    last_errno = errno;
  }
  ::freeaddrinfo(res);
  if (!fd) {
    return ErrnoError(last_errno, "connect to stream server ", parsed.host, ":", parsed.port,
                      " (is containerd's stream_server_address reachable from here?)");
  }

  const std::string key = NewWebSocketKey();
  RETURN_IF_ERROR(cloak::WriteAll(fd.get(), BuildHandshakeRequest(parsed, key, protocols)));
  std::string head;
  size_t end = std::string::npos;
  while ((end = head.find("\r\n\r\n")) == std::string::npos) {
    if (head.size() > kMaxHandshake) {
      return absl::UnavailableError("stream server's handshake answer is too long");
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat("no WebSocket handshake answer from ", url, " within ",
                       absl::FormatDuration(timeout)));
    }
    RETURN_IF_ERROR(WaitReadable(fd.get(), left));
    char buf[4096];
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "read WebSocket handshake from ", url);
    if (n == 0) {
      return absl::UnavailableError(
          absl::StrCat("stream server closed the connection during the handshake: ", head));
    }
    head.append(buf, static_cast<size_t>(n));
  }
  ASSIGN_OR_RETURN(std::string protocol,
                   CheckHandshakeResponse(absl::string_view(head).substr(0, end), key, protocols));
  WebSocket ws(std::move(fd), std::move(protocol));
  ws.reader_.Feed(absl::string_view(head).substr(end + 4));  // frames sent right after 101
  return ws;
}

absl::Status WebSocket::WriteAll(absl::string_view bytes) {
  // send() with MSG_NOSIGNAL: a peer that went away is an error, not SIGPIPE.
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "write to WebSocket");
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status WebSocket::Send(WsOpcode opcode, absl::string_view payload) {
  if (close_sent_) return absl::FailedPreconditionError("WebSocket is closing; nothing more to send");
  return WriteAll(EncodeWsFrame(opcode, payload, RandomMask()));
}

absl::Status WebSocket::Close(uint16_t code, absl::string_view reason) {
  if (close_sent_) return absl::OkStatus();
  close_sent_ = true;
  return WriteAll(EncodeWsFrame(WsOpcode::kClose, CloseFramePayload(code, reason), RandomMask()));
}

absl::StatusOr<std::vector<WsEvent>> WebSocket::ReadAvailable() {
  std::vector<WsEvent> out;
  if (!closed_) {
    char buf[16384];
    ssize_t n;
    do {
      n = ::read(fd_.get(), buf, sizeof(buf));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return ErrnoError(errno, "read from WebSocket");
    if (n == 0) closed_ = true;  // end of stream without a close frame
    reader_.Feed(absl::string_view(buf, static_cast<size_t>(n > 0 ? n : 0)));
  }
  while (true) {
    auto ev = reader_.Next();
    if (!ev.ok()) {
      (void)Close(1002, "protocol error");
      closed_ = true;
      return ev.status();
    }
    if (!ev->has_value()) break;
    WsEvent& e = **ev;
    switch (e.opcode) {
      case WsOpcode::kPing:
        if (!close_sent_) RETURN_IF_ERROR(WriteAll(EncodeWsFrame(WsOpcode::kPong, e.payload, RandomMask())));
        break;
      case WsOpcode::kPong:
        break;
      case WsOpcode::kClose:
        close_code_ = e.close_code;
        // Echo the status code, as RFC 6455 §5.5.1 asks.
        (void)Close(e.close_code.value_or(1000));
        closed_ = true;
        break;
      default:
        out.push_back(std::move(e));
    }
    if (closed_ && e.opcode == WsOpcode::kClose) break;
  }
  return out;
}

}  // namespace cloak::cri
