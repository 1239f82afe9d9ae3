// Table tests of the ttrpc frame codec (docs/formats.md, "ttrpc"). Suites are named
// ttrpc_* so `ctest -R ttrpc` selects them.
#include "shim/ttrpc/frame.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cloak::ttrpc {
namespace {

std::string Bytes(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s.push_back(static_cast<char>(b));
  return s;
}

TEST(ttrpc_frame, HeaderIsBigEndian) {
  FrameHeader h{0x01020304, 0x0a0b0c0d, 2, 0x05};
  EXPECT_EQ(EncodeHeader(h), Bytes({1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 2, 5}));
}

TEST(ttrpc_frame, RoundTrips) {
  struct Case {
    uint32_t stream_id;
    MessageType type;
    uint8_t flags;
    std::string payload;
  };
  const std::vector<Case> cases = {
      {1, MessageType::kRequest, 0, "hello"},
      {3, MessageType::kResponse, 0, ""},
      {0xfffffffd, MessageType::kData, kFlagRemoteClosed | kFlagNoData, ""},
      {7, MessageType::kRequest, kFlagRemoteOpen, std::string(1000, '\0')},
      {9, MessageType::kResponse, 0, std::string(kMaxMessageSize, 'x')},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.stream_id);
    absl::StatusOr<std::string> enc = EncodeFrame(c.stream_id, c.type, c.flags, c.payload);
    ASSERT_TRUE(enc.ok()) << enc.status();
    ASSERT_EQ(enc->size(), kFrameHeaderSize + c.payload.size());
    EXPECT_EQ((*enc)[0], '\0') << "first byte is always zero (length <= 4 MiB)";
    absl::StatusOr<FrameHeader> h = DecodeHeader(*enc);
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->length, c.payload.size());
    EXPECT_EQ(h->stream_id, c.stream_id);
    EXPECT_EQ(h->type, static_cast<uint8_t>(c.type));
    EXPECT_EQ(h->flags, c.flags);
    EXPECT_TRUE(ValidateHeader(*h).ok());

    FrameDecoder d;
    d.Append(*enc);
    auto f = d.Next();
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->has_value());
    EXPECT_EQ((*f)->stream_id, c.stream_id);
    EXPECT_EQ((*f)->type, c.type);
    EXPECT_EQ((*f)->flags, c.flags);
    EXPECT_EQ((*f)->payload, c.payload);
    EXPECT_EQ((*f)->oversized_length, 0u);
    EXPECT_FALSE(d.InFrame());
  }
}

TEST(ttrpc_frame, EncodeRefusesOversizedPayload) {
  auto enc = EncodeFrame(1, MessageType::kRequest, 0, std::string(kMaxMessageSize + 1, 'x'));
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(enc.status().message(), "message length 4194305 exceed maximum message size of 4194304");
}

TEST(ttrpc_frame, ShortHeader) {
  for (size_t n : {0u, 1u, 9u}) {
    auto h = DecodeHeader(std::string(n, '\0'));
    ASSERT_FALSE(h.ok());
    EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(h.status().message().find("short header"), absl::string_view::npos);
  }
  FrameDecoder d;
  d.Append(std::string(9, '\0'));
  auto f = d.Next();
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->has_value());
  EXPECT_TRUE(d.InFrame()) << "EOF now would cut a header short";
}

TEST(ttrpc_frame, ValidateHeaderTable) {
  struct Case {
    FrameHeader header;
    absl::StatusCode code;
  };
  const std::vector<Case> cases = {
      {{0, 1, 1, 0}, absl::StatusCode::kOk},
      {{kMaxMessageSize, 1, 2, 0}, absl::StatusCode::kOk},
      {{kMaxMessageSize + 1, 1, 1, 0}, absl::StatusCode::kResourceExhausted},
      {{0xffffffff, 1, 1, 0}, absl::StatusCode::kResourceExhausted},
      {{0, 1, 0, 0}, absl::StatusCode::kInvalidArgument},
      {{0, 1, 4, 0}, absl::StatusCode::kInvalidArgument},
      {{0, 1, 0xff, 0}, absl::StatusCode::kInvalidArgument},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ValidateHeader(c.header).code(), c.code)
        << c.header.length << " type " << int{c.header.type};
  }
}

TEST(ttrpc_frame, DecoderHandlesByteAtATimeAndBackToBack) {
  std::string wire;
  for (uint32_t id = 1; id <= 9; id += 2) {
    wire += *EncodeFrame(id, MessageType::kRequest, 0, std::string(id, 'a'));
  }
  wire += *EncodeFrame(11, MessageType::kResponse, 0, "");  // zero-length payload
  FrameDecoder d;
  std::vector<Frame> frames;
  for (char c : wire) {
    d.Append(absl::string_view(&c, 1));
    while (true) {
      auto f = d.Next();
      ASSERT_TRUE(f.ok()) << f.status();
      if (!f->has_value()) break;
      frames.push_back(std::move(**f));
    }
  }
  ASSERT_EQ(frames.size(), 6u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(frames[i].stream_id, 2 * i + 1);
    EXPECT_EQ(frames[i].payload, std::string(2 * i + 1, 'a'));
  }
  EXPECT_EQ(frames[5].stream_id, 11u);
  EXPECT_EQ(frames[5].type, MessageType::kResponse);
  EXPECT_TRUE(frames[5].payload.empty());
  EXPECT_FALSE(d.InFrame());
}

TEST(ttrpc_frame, DecoderSkipsOversizedPayloadAndRecovers) {
  const uint32_t big = kMaxMessageSize + 100;
  std::string wire = EncodeHeader({big, 5, 1, 0});
  std::string junk(big, 'j');
  std::string next = *EncodeFrame(7, MessageType::kRequest, 0, "after");

  FrameDecoder d;
  d.Append(wire);
  d.Append(junk.substr(0, 1000));
  auto f = d.Next();
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->has_value());
  EXPECT_EQ(d.buffered(), 0u) << "oversized payload must not be buffered";
  // The rest of the junk and the next frame in one read.
  d.Append(junk.substr(1000) + next);
  f = d.Next();
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(f->has_value());
  EXPECT_EQ((*f)->stream_id, 5u);
  EXPECT_EQ((*f)->oversized_length, big);
  EXPECT_TRUE((*f)->payload.empty());
  f = d.Next();
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(f->has_value());
  EXPECT_EQ((*f)->stream_id, 7u);
  EXPECT_EQ((*f)->payload, "after");
}

TEST(ttrpc_frame, DecoderUnknownTypeIsSticky) {
  FrameDecoder d;
  d.Append(EncodeHeader({0, 1, 0x7f, 0}));
  auto f = d.Next();
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("unknown message type 127"), absl::string_view::npos);
  d.Append(*EncodeFrame(3, MessageType::kRequest, 0, "x"));
  EXPECT_FALSE(d.Next().ok());
}

}  // namespace
}  // namespace cloak::ttrpc
