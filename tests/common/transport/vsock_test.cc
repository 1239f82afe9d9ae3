// AF_VSOCK transport. The live round trip needs a host where vsock works
// end to end (vhost-vsock for guests, vsock_loopback for CID 1); it skips
// itself, saying why, everywhere else. These machines have no
// /dev/vhost-vsock (docs/formats.md, "Agent channel"), so expect a skip here.
#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/transport/agent_listener.h"
#include "common/transport/agent_transport.h"
#include "common/transport/sockets.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/transport/fake_agent.h"
#include "tests/util/skip.h"

namespace cloak::transport {
namespace {

using ::cloak::transport::testing::ExpectAgentRoundTrip;
using ::cloak::transport::testing::TestServer;
using ::testing::HasSubstr;

// A port unlikely to clash with a running agent (1024) or another test.
uint32_t TestPort() { return 20000 + static_cast<uint32_t>(::getpid() % 20000); }

// Empty if vsock can carry a loopback connection here, else why not.
std::string WhyNoVsock() {
  if (::access("/dev/vhost-vsock", F_OK) != 0) {
    return "no /dev/vhost-vsock on this host (kernel without CONFIG_VHOST_VSOCK): "
           "the agent channel is virtio-serial here";
  }
  if (absl::Status s = internal::VsockAvailable(); !s.ok()) {
    return absl::StrCat("AF_VSOCK unusable: ", s.message());
  }
  auto listen_fd = internal::ListenVsock(VMADDR_CID_ANY, TestPort() + 1, 1);
  if (!listen_fd.ok())
    return absl::StrCat("cannot listen on vsock: ", listen_fd.status().message());
  int err = 0;
  auto fd = internal::ConnectVsock(VMADDR_CID_LOCAL, TestPort() + 1, absl::Seconds(1), &err);
  if (!fd.ok()) {
    return absl::StrCat("connect to the loopback CID 1 failed (vsock_loopback not loaded?): ",
                        fd.status().message());
  }
  return "";
}

TEST(VsockTransportTest, LoopbackRoundTrip) {
  if (std::string why = WhyNoVsock(); !why.empty()) CLOAK_SKIP_ALLOWED_ON_CI() << why;
  auto server = TestServer::Start();
  VsockListener::Config lconfig;
  lconfig.port = TestPort();
  auto listener = VsockListener::Create(lconfig);
  ASSERT_TRUE(listener.ok()) << listener.status();
  EXPECT_EQ((*listener)->Endpoint(), absl::StrCat("vsock://-1:", TestPort()));
  ASSERT_TRUE((*listener)->Start(server->server.get()).ok());

  VsockTransport::Config tconfig;
  tconfig.cid = VMADDR_CID_LOCAL;
  tconfig.port = TestPort();
  auto transport = VsockTransport::Create(tconfig);
  ASSERT_TRUE(transport.ok());
  auto channel = (*transport)->Connect(absl::Seconds(5));
  ASSERT_TRUE(channel.ok()) << channel.status();
  ExpectAgentRoundTrip(*channel);
  (*listener)->Stop();
}

// Runs everywhere: connecting to a guest that does not exist fails within
// the deadline and names the endpoint, whatever the host's vsock support.
TEST(VsockTransportTest, ConnectToAbsentGuestFailsNamingTheEndpoint) {
  VsockTransport::Config config;
  config.cid = 4000000;  // no such guest
  config.port = kAgentVsockPort;
  config.options.attempt_timeout = absl::Milliseconds(100);
  auto transport = VsockTransport::Create(config);
  ASSERT_TRUE(transport.ok());
  EXPECT_EQ((*transport)->Endpoint(), "vsock://4000000:1024");
  const absl::Time start = absl::Now();
  auto channel = (*transport)->Connect(absl::Milliseconds(400));
  ASSERT_FALSE(channel.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_THAT(channel.status().message(), HasSubstr("vsock://4000000:1024"));
}

}  // namespace
}  // namespace cloak::transport
