#include "common/transport/address.h"

#include <string>

#include "absl/status/status.h"
#include "common/transport/agent_transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::transport {
namespace {

using ::testing::HasSubstr;

TEST(AgentAddressTest, ParsesVsock) {
  auto a = ParseAgentAddress("vsock://3:1024");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->kind, AgentAddress::Kind::kVsock);
  EXPECT_EQ(a->cid, 3u);
  EXPECT_EQ(a->port, 1024u);
  EXPECT_EQ(a->ToString(), "vsock://3:1024");
}

TEST(AgentAddressTest, ParsesVsockExtremes) {
  auto a = ParseAgentAddress("vsock://4294967294:4294967294");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->cid, 4294967294u);
  EXPECT_EQ(a->port, 4294967294u);
  auto loopback = ParseAgentAddress("vsock://1:0");
  ASSERT_TRUE(loopback.ok()) << loopback.status();
  EXPECT_EQ(loopback->cid, 1u);
}

TEST(AgentAddressTest, ParsesSerialAndUnix) {
  auto s = ParseAgentAddress("serial:///run/cloak/sb-1/agent.sock");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kind, AgentAddress::Kind::kSerial);
  EXPECT_EQ(s->path, "/run/cloak/sb-1/agent.sock");
  EXPECT_EQ(s->ToString(), "serial:///run/cloak/sb-1/agent.sock");

  auto u = ParseAgentAddress("unix:///tmp/agent.sock");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->kind, AgentAddress::Kind::kUnix);
  EXPECT_EQ(u->path, "/tmp/agent.sock");
}

TEST(AgentAddressTest, RoundTripsThroughToString) {
  for (const char* text : {"vsock://3:1024", "vsock://0:1", "serial:///a", "unix:///x/y z"}) {
    auto a = ParseAgentAddress(text);
    ASSERT_TRUE(a.ok()) << text << ": " << a.status();
    EXPECT_EQ(a->ToString(), text);
    auto again = ParseAgentAddress(a->ToString());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *a);
  }
}

TEST(AgentAddressTest, LongestPathFits) {
  std::string path = "/" + std::string(kMaxUnixPathLength - 1, 'p');
  EXPECT_TRUE(ParseAgentAddress("unix://" + path).ok());
  EXPECT_FALSE(ParseAgentAddress("unix://" + path + "p").ok());
}

struct BadCase {
  std::string input;
  std::string why;  // substring of the error message
};

class AgentAddressErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(AgentAddressErrorTest, IsInvalidArgumentWithReason) {
  auto a = ParseAgentAddress(GetParam().input);
  ASSERT_FALSE(a.ok()) << GetParam().input << " parsed";
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(a.status().message(), HasSubstr(GetParam().why));
  EXPECT_THAT(a.status().message(), HasSubstr("invalid agent address"));
}

INSTANTIATE_TEST_SUITE_P(
    Table, AgentAddressErrorTest,
    ::testing::Values(
        BadCase{"", "unknown scheme"}, BadCase{"tcp://1.2.3.4:1024", "unknown scheme"},
        BadCase{"VSOCK://3:1024", "unknown scheme"}, BadCase{"/run/agent.sock", "unknown scheme"},
        BadCase{"vsock://3", "expected vsock://<cid>:<port>"},
        BadCase{"vsock://:1024", "the CID \"\""}, BadCase{"vsock://x:1024", "the CID \"x\""},
        BadCase{"vsock://-1:1024", "the CID \"-1\""}, BadCase{"vsock://+3:1024", "the CID \"+3\""},
        BadCase{"vsock://4294967296:1024", "below 2^32"},
        BadCase{"vsock://4294967295:1024", "VMADDR_CID_ANY"},
        BadCase{"vsock://3:", "the port \"\""}, BadCase{"vsock://3:10 24", "the port \"10 24\""},
        BadCase{"vsock://3:1024:5", "the port \"1024:5\""},
        BadCase{"vsock://3:4294967295", "VMADDR_PORT_ANY"},
        BadCase{"vsock://3:0x400", "the port \"0x400\""}, BadCase{"serial://", "empty"},
        BadCase{"serial://relative/agent.sock", "must be absolute"}, BadCase{"unix://", "empty"},
        BadCase{"unix://agent.sock", "must be absolute"},
        BadCase{std::string("unix:///a\0b", 11), "NUL"},
        BadCase{"unix:///" + std::string(200, 'x'), "at most 107"}));

TEST(CreateTransportTest, PicksTheTransportTheAddressNames) {
  auto v = CreateTransport("vsock://7:1024");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->Endpoint(), "vsock://7:1024");
  EXPECT_NE(dynamic_cast<VsockTransport*>(v->get()), nullptr);

  auto s = CreateTransport("serial:///run/x/agent.sock");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->Endpoint(), "serial:///run/x/agent.sock");
  EXPECT_NE(dynamic_cast<SerialTransport*>(s->get()), nullptr);

  auto u = CreateTransport("unix:///run/x/a.sock");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_NE(dynamic_cast<UnixTransport*>(u->get()), nullptr);
}

TEST(CreateTransportTest, RejectsBadAddresses) {
  EXPECT_EQ(CreateTransport("http://x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      VsockTransport::Create({.cid = 0xFFFFFFFFu, .port = 1024, .options = {}}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SerialTransport::Create({.socket_path = "rel", .options = {}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(UnixTransport::Create({.path = "", .options = {}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cloak::transport
