// gRPC round trips over the virtio-serial path without a VM:
//
//   SerialTransport --unix socket--> FakeChardev --"port device"--> SerialPortListener
//   (host shim)                      (stands in for QEMU)           (guest agent)
//
// FakeChardev plays QEMU's `-chardev socket,server=on`: one client at a time,
// whose bytes go to the port device and back. The device is a socketpair end
// per host connection (closed when the host leaves, as a virtio port reports
// POLLHUP/EOF when the chardev client goes) or, in one test, a pty.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/temp_dir.h"
#include "common/transport/agent_listener.h"
#include "common/transport/agent_transport.h"
#include "common/transport/sockets.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/transport/fake_agent.h"

namespace cloak::transport {
namespace {

using ::cloak::transport::testing::CountOpenFds;
using ::cloak::transport::testing::DeadlineIn;
using ::cloak::transport::testing::ExpectAgentRoundTrip;
using ::cloak::transport::testing::TestServer;
using ::cloak::transport::testing::WaitForFdCount;
namespace agentpb = ::cloak::agent::v1;

bool SendAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    if (n < 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool WriteAllFd(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    if (n < 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// Copies bytes between a host client socket and the host end of the port
// until either side ends or `wake` fires.
void Relay(int client, int device, bool device_is_socket, int wake) {
  char buf[16384];
  while (true) {
    pollfd fds[3] = {{client, POLLIN, 0}, {device, POLLIN, 0}, {wake, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[2].revents) return;
    if (fds[0].revents) {
      ssize_t n = ::read(client, buf, sizeof(buf));
      if (n <= 0) return;
      bool ok = device_is_socket ? SendAll(device, buf, static_cast<size_t>(n))
                                 : WriteAllFd(device, buf, static_cast<size_t>(n));
      if (!ok) return;
    }
    if (fds[1].revents) {
      ssize_t n = ::read(device, buf, sizeof(buf));
      if (n <= 0) return;
      if (!SendAll(client, buf, static_cast<size_t>(n))) return;
    }
  }
}

// QEMU's unix-socket chardev with a socketpair per host connection as the
// virtio port: OpenPort() hands out the guest end while a host is attached.
class FakeChardev {
 public:
  explicit FakeChardev(std::string path) : path_(std::move(path)) {
    auto listen_fd = internal::ListenUnix(path_, 4);
    EXPECT_TRUE(listen_fd.ok()) << listen_fd.status();
    listen_ = *std::move(listen_fd);
    wake_ = std::make_unique<internal::WakeFd>(*internal::WakeFd::Create());
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeChardev() {
    wake_->Signal();
    thread_.join();
  }

  // The port's guest end for the host currently attached; Unavailable while
  // none is (or after it was handed out).
  absl::StatusOr<UniqueFd> OpenPort() {
    absl::MutexLock lock(&mu_);
    if (!guest_end_) return absl::UnavailableError("no host attached to the fake chardev");
    return std::move(guest_end_);
  }

  int connections() const { return connections_.load(); }

  // Cuts the current host connection from the chardev side, as when the
  // shim process dies: no HTTP/2 goodbye, the socket just goes.
  void DropHost() {
    absl::MutexLock lock(&mu_);
    if (client_fd_ >= 0) ::shutdown(client_fd_, SHUT_RDWR);
  }

 private:
  void Run() {
    while (true) {
      pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {wake_->fd(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno == EINTR) continue;
      if (fds[1].revents) return;
      UniqueFd client(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!client) continue;
      ++connections_;
      int sv[2];
      ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
      UniqueFd host_end(sv[0]);
      {
        absl::MutexLock lock(&mu_);
        guest_end_.Reset(sv[1]);
        client_fd_ = client.get();
      }
      Relay(client.get(), host_end.get(), true, wake_->fd());
      // The host left (or we stop): the port hangs up for the guest.
      absl::MutexLock lock(&mu_);
      guest_end_.Reset();
      client_fd_ = -1;
    }
  }

  const std::string path_;
  UniqueFd listen_;
  std::unique_ptr<internal::WakeFd> wake_;
  std::thread thread_;
  std::atomic<int> connections_{0};
  absl::Mutex mu_;
  UniqueFd guest_end_ ABSL_GUARDED_BY(mu_);
  int client_fd_ ABSL_GUARDED_BY(mu_) = -1;
};

class SerialBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-serial-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::make_unique<TempDir>(*std::move(dir));
    chardev_path_ = dir_->Join("agent.sock");
  }

  std::unique_ptr<SerialPortListener> GuestListener(FakeChardev& chardev) {
    SerialPortListener::Config config;
    config.poll_interval = absl::Milliseconds(20);
    config.reopen_after_hangup = true;  // a socketpair cannot un-hang-up
    auto l = SerialPortListener::CreateWithOpener([&chardev] { return chardev.OpenPort(); },
                                                  "fake-vport", config);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? *std::move(l) : nullptr;
  }

  std::unique_ptr<SerialTransport> HostTransport() {
    SerialTransport::Config config;
    config.socket_path = chardev_path_;
    auto t = SerialTransport::Create(config);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *std::move(t) : nullptr;
  }

  std::unique_ptr<TempDir> dir_;
  std::string chardev_path_;
};

TEST_F(SerialBridgeTest, RoundTrip) {
  FakeChardev chardev(chardev_path_);
  auto server = TestServer::Start();
  auto listener = GuestListener(chardev);
  ASSERT_TRUE(listener->Start(server->server.get()).ok());

  auto channel = HostTransport()->Connect(absl::Seconds(5));
  ASSERT_TRUE(channel.ok()) << channel.status();
  ExpectAgentRoundTrip(*channel);
  EXPECT_EQ(listener->sessions(), 1);
  EXPECT_EQ(listener->Endpoint(), "fake-vport");
}

TEST_F(SerialBridgeTest, LargeMessagesCrossThePump) {
  // More than the pump's 64 KiB buffers in one streamed call.
  FakeChardev chardev(chardev_path_);
  auto server = TestServer::Start();
  auto listener = GuestListener(chardev);
  ASSERT_TRUE(listener->Start(server->server.get()).ok());
  auto channel = HostTransport()->Connect(absl::Seconds(5));
  ASSERT_TRUE(channel.ok());
  ExpectAgentRoundTrip(*channel, std::string(300 * 1024, 'x'));
}

TEST_F(SerialBridgeTest, HostConnectsBeforeTheAgentServes) {
  // The shim connects as soon as QEMU runs; the agent comes up later.
  FakeChardev chardev(chardev_path_);
  auto server = TestServer::Start();
  auto channel = HostTransport()->Connect(absl::Seconds(5));
  ASSERT_TRUE(channel.ok()) << channel.status();

  grpc::Status status;
  agentpb::HealthResponse resp;
  std::thread call([&] {
    auto stub = agentpb::AgentService::NewStub(*channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    status = stub->Health(&ctx, {}, &resp);
  });
  absl::SleepFor(absl::Milliseconds(300));
  auto listener = GuestListener(chardev);
  ASSERT_TRUE(listener->Start(server->server.get()).ok());
  call.join();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(resp.serving());
}

TEST_F(SerialBridgeTest, HostReconnectsWithANewChannel) {
  FakeChardev chardev(chardev_path_);
  auto server = TestServer::Start();
  auto listener = GuestListener(chardev);
  ASSERT_TRUE(listener->Start(server->server.get()).ok());
  auto transport = HostTransport();

  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE(round);
    auto channel = transport->Connect(absl::Seconds(5));
    ASSERT_TRUE(channel.ok()) << channel.status();
    ExpectAgentRoundTrip(*channel, "round" + std::to_string(round));
    // Dropping the channel closes the socket: the shim went away.
  }
  EXPECT_EQ(chardev.connections(), 3);
  EXPECT_EQ(listener->sessions(), 3);
}

TEST_F(SerialBridgeTest, HostHangupCancelsCallsInTheStaleSession) {
  FakeChardev chardev(chardev_path_);
  auto server = TestServer::Start();
  auto listener = GuestListener(chardev);
  ASSERT_TRUE(listener->Start(server->server.get()).ok());
  auto transport = HostTransport();
  {
    auto channel = transport->Connect(absl::Seconds(5));
    ASSERT_TRUE(channel.ok());
    auto stub = agentpb::AgentService::NewStub(*channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(20)));
    agentpb::ReadOutputRequest req;
    req.set_container_id("block");
    auto reader = stub->ReadOutput(&ctx, req);
    ASSERT_TRUE(server->service.block_started.WaitForNotificationWithTimeout(absl::Seconds(5)));
    chardev.DropHost();
    // Only the port's hangup tells the guest: the call must end there...
    EXPECT_TRUE(server->service.block_cancelled.WaitForNotificationWithTimeout(absl::Seconds(5)))
        << "the guest kept serving a call of a host that hung up";
    // ...and the host's call fails rather than waiting for its deadline.
    agentpb::OutputChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
  auto channel = transport->Connect(absl::Seconds(5));
  ASSERT_TRUE(channel.ok());
  ExpectAgentRoundTrip(*channel);
  EXPECT_EQ(listener->sessions(), 2);
}

TEST_F(SerialBridgeTest, StopEndsTheSessionAndLeavesNoFds) {
  auto cycle = [&] {
    FakeChardev chardev(chardev_path_);
    auto server = TestServer::Start();
    auto listener = GuestListener(chardev);
    ASSERT_TRUE(listener->Start(server->server.get()).ok());
    auto channel = HostTransport()->Connect(absl::Seconds(5));
    ASSERT_TRUE(channel.ok());
    ExpectAgentRoundTrip(*channel);
    // Guest goes first while the host still holds its channel.
    listener->Stop();
    server->Shutdown();
    auto stub = agentpb::AgentService::NewStub(*channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(2)));
    agentpb::HealthResponse resp;
    EXPECT_FALSE(stub->Health(&ctx, {}, &resp).ok());
  };
  cycle();  // warm up gRPC's process-wide state
  // The warm-up's own fds may still be closing here (gRPC tears down
  // asynchronously; under ASan, 11 were counted here and 8 after two more
  // cycles), so the check is for no more fds than before, not as many.
  const int before = CountOpenFds();
  cycle();
  cycle();
  EXPECT_LE(WaitForFdCount(before), before);
}

TEST_F(SerialBridgeTest, StopWhileWaitingForThePort) {
  auto server = TestServer::Start();
  SerialPortListener::Config config;
  config.poll_interval = absl::Milliseconds(20);
  std::atomic<int> opens{0};
  auto listener = SerialPortListener::CreateWithOpener(
      [&opens]() -> absl::StatusOr<UniqueFd> {
        ++opens;
        return absl::NotFoundError("no port yet");
      },
      "missing-port", config);
  ASSERT_TRUE(listener.ok());
  ASSERT_TRUE((*listener)->Start(server->server.get()).ok());
  absl::SleepFor(absl::Milliseconds(150));
  const absl::Time start = absl::Now();
  (*listener)->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_GE(opens.load(), 2) << "the opener is retried";
  EXPECT_EQ((*listener)->sessions(), 0);
}

// A pty stands in for the port device with the real port's default policy:
// the device stays open across sessions (reopen_after_hangup = false).
TEST_F(SerialBridgeTest, PtyDeviceRoundTripThenHostGone) {
  int master = -1, slave = -1;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  UniqueFd master_fd(master), slave_fd(slave);
  termios tio;
  ASSERT_EQ(::tcgetattr(slave, &tio), 0);
  ::cfmakeraw(&tio);
  ASSERT_EQ(::tcsetattr(slave, TCSANOW, &tio), 0);
  char name[64];
  ASSERT_EQ(::ptsname_r(master, name, sizeof(name)), 0);
  const std::string pts(name);

  // Host side: a unix socket whose single client is relayed to the master.
  auto listen_fd = internal::ListenUnix(chardev_path_, 1);
  ASSERT_TRUE(listen_fd.ok());
  auto wake = internal::WakeFd::Create();
  ASSERT_TRUE(wake.ok());
  std::thread qemu([&] {
    pollfd p{listen_fd->get(), POLLIN, 0};
    ::poll(&p, 1, 5000);
    UniqueFd client(::accept4(listen_fd->get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (client) Relay(client.get(), master_fd.get(), false, wake->fd());
    master_fd.Reset();  // the host is gone for good: the pty hangs up
  });

  auto server = TestServer::Start();
  SerialPortListener::Config config;
  config.poll_interval = absl::Milliseconds(20);
  auto listener = SerialPortListener::CreateWithOpener(
      [pts]() -> absl::StatusOr<UniqueFd> {
        UniqueFd fd(::open(pts.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
        if (!fd) return absl::UnavailableError("open pts");
        return fd;
      },
      pts, config);
  ASSERT_TRUE(listener.ok());
  // slave_fd stays open until the end: a pty master reads EIO while no
  // slave fd is open, which would end the relay before the bridge opens it.
  ASSERT_TRUE((*listener)->Start(server->server.get()).ok());
  {
    auto channel = HostTransport()->Connect(absl::Seconds(5));
    ASSERT_TRUE(channel.ok());
    ExpectAgentRoundTrip(*channel);
  }
  qemu.join();
  // The bridge sees EIO/POLLHUP, ends the session and waits for a host that
  // never comes back; Stop() must still be prompt.
  absl::SleepFor(absl::Milliseconds(100));
  const absl::Time start = absl::Now();
  (*listener)->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ((*listener)->sessions(), 1);
}

}  // namespace
}  // namespace cloak::transport
