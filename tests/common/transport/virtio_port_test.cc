#include "common/transport/virtio_port.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "common/temp_dir.h"
#include "common/transport/agent_listener.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::transport {
namespace {

using ::testing::HasSubstr;

// A fake /sys/class/virtio-ports: one dir per port, each with a `name` file.
class FakeSysfs {
 public:
  FakeSysfs() : dir_(*TempDir::Create("cloak-virtio-")) {}
  void AddPort(const std::string& dev, const std::string* name) {
    std::filesystem::create_directories(dir_.path() / dev);
    if (name != nullptr) std::ofstream(dir_.path() / dev / "name") << *name;
  }
  void AddPort(const std::string& dev, const std::string& name) { AddPort(dev, &name); }
  std::string root() const { return dir_.path().string(); }

 private:
  TempDir dir_;
};

TEST(VirtioPortTest, FindsPortByName) {
  FakeSysfs sys;
  sys.AddPort("vport0p0", nullptr);  // the console port has no name file
  sys.AddPort("vport0p1", "org.qemu.guest_agent.0\n");
  sys.AddPort("vport1p1", "cloak.agent\n");
  auto dev = FindVirtioPort(sys.root(), "cloak.agent");
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(*dev, "vport1p1");
}

TEST(VirtioPortTest, NameWithoutNewlineAndEmptyNames) {
  FakeSysfs sys;
  sys.AddPort("vport0p1", "");
  sys.AddPort("vport0p2", "cloak.agent");
  auto dev = FindVirtioPort(sys.root(), "cloak.agent");
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(*dev, "vport0p2");
}

TEST(VirtioPortTest, FirstInSortedOrderWinsOnDuplicates) {
  FakeSysfs sys;
  sys.AddPort("vport2p1", "cloak.agent\n");
  sys.AddPort("vport0p3", "cloak.agent\n");
  EXPECT_EQ(*FindVirtioPort(sys.root(), "cloak.agent"), "vport0p3");
}

TEST(VirtioPortTest, NoSuchPortListsWhatExists) {
  FakeSysfs sys;
  sys.AddPort("vport0p1", "org.qemu.guest_agent.0\n");
  auto dev = FindVirtioPort(sys.root(), "cloak.agent");
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(dev.status().message(), HasSubstr("no virtio-serial port named \"cloak.agent\""));
  EXPECT_THAT(dev.status().message(), HasSubstr("vport0p1=org.qemu.guest_agent.0"));
}

TEST(VirtioPortTest, PrefixIsNotAMatch) {
  FakeSysfs sys;
  sys.AddPort("vport0p1", "cloak.agent.log\n");
  EXPECT_EQ(FindVirtioPort(sys.root(), "cloak.agent").status().code(), absl::StatusCode::kNotFound);
}

TEST(VirtioPortTest, MissingRootIsNotFound) {
  auto dev = FindVirtioPort("/nonexistent/virtio-ports", "cloak.agent");
  EXPECT_EQ(dev.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(dev.status().message(), HasSubstr("/nonexistent/virtio-ports"));
}

TEST(VirtioPortTest, EmptyNameIsInvalid) {
  FakeSysfs sys;
  EXPECT_EQ(FindVirtioPort(sys.root(), "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SerialPortListenerTest, CreateResolvesTheDeviceUnderDevRoot) {
  FakeSysfs sys;
  sys.AddPort("vport3p1", "cloak.agent\n");
  SerialPortListener::Config config;
  config.sysfs_root = sys.root();
  config.dev_root = "/fake/dev";
  auto listener = SerialPortListener::Create(config);
  ASSERT_TRUE(listener.ok()) << listener.status();
  EXPECT_EQ((*listener)->Endpoint(), "/fake/dev/vport3p1");
  EXPECT_EQ((*listener)->sessions(), 0);
}

TEST(SerialPortListenerTest, CreateFailsWithoutThePort) {
  FakeSysfs sys;
  SerialPortListener::Config config;
  config.sysfs_root = sys.root();
  auto listener = SerialPortListener::Create(config);
  EXPECT_EQ(listener.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cloak::transport
