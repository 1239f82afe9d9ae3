#include "shim/ttrpc/frame.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cloak::ttrpc {
namespace {

void PutBigEndian32(uint32_t v, char* out) {
  out[0] = static_cast<char>((v >> 24) & 0xff);
  out[1] = static_cast<char>((v >> 16) & 0xff);
  out[2] = static_cast<char>((v >> 8) & 0xff);
  out[3] = static_cast<char>(v & 0xff);
}

uint32_t GetBigEndian32(const char* in) {
  const auto* p = reinterpret_cast<const unsigned char*>(in);
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

}  // namespace

bool IsKnownMessageType(uint8_t type) {
  return type == static_cast<uint8_t>(MessageType::kRequest) ||
         type == static_cast<uint8_t>(MessageType::kResponse) ||
         type == static_cast<uint8_t>(MessageType::kData);
}

absl::Status OversizedMessageError(uint64_t length) {
  return absl::ResourceExhaustedError(absl::StrCat("message length ", length,
                                                   " exceed maximum message size of ",
                                                   kMaxMessageSize));
}

std::string EncodeHeader(const FrameHeader& header) {
  std::string out(kFrameHeaderSize, '\0');
  PutBigEndian32(header.length, out.data());
  PutBigEndian32(header.stream_id, out.data() + 4);
  out[8] = static_cast<char>(header.type);
  out[9] = static_cast<char>(header.flags);
  return out;
}

absl::StatusOr<std::string> EncodeFrame(uint32_t stream_id, MessageType type, uint8_t flags,
                                        absl::string_view payload) {
  if (payload.size() > kMaxMessageSize) return OversizedMessageError(payload.size());
  FrameHeader h{static_cast<uint32_t>(payload.size()), stream_id, static_cast<uint8_t>(type),
                flags};
  std::string out = EncodeHeader(h);
  out.append(payload.data(), payload.size());
  return out;
}

absl::StatusOr<FrameHeader> DecodeHeader(absl::string_view bytes) {
  if (bytes.size() < kFrameHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat("ttrpc: short header: got ", bytes.size(),
                                                   " of ", kFrameHeaderSize, " bytes"));
  }
  FrameHeader h;
  h.length = GetBigEndian32(bytes.data());
  h.stream_id = GetBigEndian32(bytes.data() + 4);
  h.type = static_cast<uint8_t>(bytes[8]);
  h.flags = static_cast<uint8_t>(bytes[9]);
  return h;
}

absl::Status ValidateHeader(const FrameHeader& header) {
  if (!IsKnownMessageType(header.type)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ttrpc: unknown message type ", static_cast<int>(header.type), " on stream ",
        header.stream_id));
  }
  if (header.length > kMaxMessageSize) return OversizedMessageError(header.length);
  return absl::OkStatus();
}

void FrameDecoder::Append(absl::string_view bytes) {
  if (!error_.ok()) return;
  if (skip_left_ > 0) {
    const size_t drop = static_cast<size_t>(std::min<uint64_t>(skip_left_, bytes.size()));
    skip_left_ -= drop;
    bytes.remove_prefix(drop);
  }
  buffer_.append(bytes.data(), bytes.size());
}

void FrameDecoder::Compact() {
  if (consumed_ == 0) return;
  if (consumed_ >= buffer_.size()) {
    buffer_.clear();
  } else if (consumed_ > 4096 && consumed_ * 2 > buffer_.size()) {
    buffer_.erase(0, consumed_);
  } else {
    return;
  }
  consumed_ = 0;
}

absl::StatusOr<std::optional<Frame>> FrameDecoder::Next() {
  if (!error_.ok()) return error_;
  if (!header_.has_value()) {
    if (buffered() < kFrameHeaderSize) {
      Compact();
      return std::nullopt;
    }
    absl::StatusOr<FrameHeader> h =
        DecodeHeader(absl::string_view(buffer_).substr(consumed_, kFrameHeaderSize));
    if (!h.ok()) return h.status();  // unreachable: enough bytes were checked
    if (!IsKnownMessageType(h->type)) {
      error_ = ValidateHeader(*h);
      return error_;
    }
    consumed_ += kFrameHeaderSize;
    header_ = *h;
    if (h->length > kMaxMessageSize) {
      // Drop what we already hold of the payload, and the rest as it comes.
      const size_t have = static_cast<size_t>(std::min<uint64_t>(h->length, buffered()));
      consumed_ += have;
      skip_left_ = h->length - have;
    }
  }
  const FrameHeader h = *header_;
  if (h.length > kMaxMessageSize) {
    if (skip_left_ > 0) {
      Compact();
      return std::nullopt;
    }
    header_.reset();
    Compact();
    Frame f;
    f.stream_id = h.stream_id;
    f.type = static_cast<MessageType>(h.type);
    f.flags = h.flags;
    f.oversized_length = h.length;
    return f;
  }
  if (buffered() < h.length) return std::nullopt;
  Frame f;
  f.stream_id = h.stream_id;
  f.type = static_cast<MessageType>(h.type);
  f.flags = h.flags;
  f.payload.assign(buffer_, consumed_, h.length);
  consumed_ += h.length;
  header_.reset();
  Compact();
  return f;
}

}  // namespace cloak::ttrpc
