// ttrpc framing (containerd/ttrpc channel.go, PROTOCOL.md): a 10-byte header
//
//   bytes 0-3  payload length, uint32 big-endian (header excluded)
//   bytes 4-7  stream id, uint32 big-endian
//   byte  8    message type (1 Request, 2 Response, 3 Data)
//   byte  9    flags
//
// followed by at most kMaxMessageSize payload bytes. Pure functions plus an
// incremental decoder that a reader feeds with whatever bytes it received.
#ifndef CLOAK_SHIM_TTRPC_FRAME_H_
#define CLOAK_SHIM_TTRPC_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::ttrpc {

inline constexpr size_t kFrameHeaderSize = 10;
// 4 MiB, the Go implementation's messageLengthMax.
inline constexpr uint32_t kMaxMessageSize = 4u << 20;

enum class MessageType : uint8_t {
  kRequest = 0x01,   // starts a stream
  kResponse = 0x02,  // final answer, ends a stream
  kData = 0x03,      // stream data (ttrpc >= 1.2; unused by unary RPCs)
};

// Frame flags. A unary Request and every Response carry 0.
inline constexpr uint8_t kFlagRemoteClosed = 0x01;
inline constexpr uint8_t kFlagRemoteOpen = 0x02;
inline constexpr uint8_t kFlagNoData = 0x04;

// True for the message types this implementation knows (1, 2, 3).
bool IsKnownMessageType(uint8_t type);

struct FrameHeader {
  uint32_t length = 0;
  uint32_t stream_id = 0;
  uint8_t type = 0;  // raw byte; see MessageType
  uint8_t flags = 0;

  friend bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

struct Frame {
  uint32_t stream_id = 0;
  MessageType type = MessageType::kRequest;
  uint8_t flags = 0;
  std::string payload;
  // Non-zero when the peer announced a payload longer than kMaxMessageSize:
  // the announced length. The payload was read and dropped (`payload` is
  // empty); the receiver answers ResourceExhausted (OversizedMessageError).
  uint32_t oversized_length = 0;
};

// The 10 header bytes for `header`.
std::string EncodeHeader(const FrameHeader& header);

// Header plus payload. ResourceExhausted (OversizedMessageError) when the
// payload is longer than kMaxMessageSize: a sender never sends one.
absl::StatusOr<std::string> EncodeFrame(uint32_t stream_id, MessageType type, uint8_t flags,
                                        absl::string_view payload);

// Parses the first kFrameHeaderSize bytes of `bytes` without judging the
// values. InvalidArgument ("short header") if fewer bytes are given.
absl::StatusOr<FrameHeader> DecodeHeader(absl::string_view bytes);

// Judges a decoded header: InvalidArgument for an unknown message type,
// ResourceExhausted (OversizedMessageError) for a length over the maximum.
absl::Status ValidateHeader(const FrameHeader& header);

// ResourceExhausted "message length N exceed maximum message size of 4194304",
// the text containerd's ttrpc uses.
absl::Status OversizedMessageError(uint64_t length);

// Incremental decoder: Append() what was read, then call Next() until it
// yields std::nullopt (more bytes needed).
//
// An oversized frame does not make the stream unusable: its payload is
// skipped as it arrives (never buffered) and Next() then yields a Frame with
// oversized_length set. An unknown message type is an error from which the
// decoder does not recover (the connection should be dropped).
class FrameDecoder {
 public:
  void Append(absl::string_view bytes);
  absl::StatusOr<std::optional<Frame>> Next();

  // Bytes held (partial header or payload), excluding skipped bytes.
  size_t buffered() const { return buffer_.size() - consumed_; }
  // True when a frame has started but is not complete: EOF now means the
  // peer cut a frame short.
  bool InFrame() const { return buffered() > 0 || header_.has_value(); }

 private:
  void Compact();

  std::string buffer_;
  size_t consumed_ = 0;
  std::optional<FrameHeader> header_;  // parsed header of the current frame
  uint64_t skip_left_ = 0;             // oversized payload bytes still to drop
  absl::Status error_;                 // sticky after an unrecoverable error
};

}  // namespace cloak::ttrpc

#endif  // CLOAK_SHIM_TTRPC_FRAME_H_
