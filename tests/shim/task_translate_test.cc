// shim/task_translate: containerd task API <-> agent API translation.
#include "shim/task_translate.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "containerd/task/v2/shim.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/proto/cgroups_metrics.pb.h"
#include "shim/proto/runtime_options.pb.h"

namespace cloak::shim {
namespace {

using ::testing::HasSubstr;

TEST(TranslateTest, ExecProcessJson) {
  google::protobuf::Any any;
  any.set_type_url("types.containerd.io/opencontainers/runtime-spec/1/Process");
  any.set_value(R"({"args":["sh","-c","true"],"cwd":"/"})");
  auto json = ExecProcessJson(any);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, any.value());

  struct Case {
    std::string type_url, value, want;
  };
  for (const Case& c : std::vector<Case>{
           {"types.containerd.io/opencontainers/runtime-spec/1/Spec", "{}", "want"},
           {std::string(kProcessSpecTypeUrl), "[1]", "not a JSON object"},
           {std::string(kProcessSpecTypeUrl), R"({"args":[]})", "args is empty"},
           {std::string(kProcessSpecTypeUrl), R"({"args":[1]})", "strings"},
       }) {
    any.set_type_url(c.type_url);
    any.set_value(c.value);
    auto r = ExecProcessJson(any);
    ASSERT_FALSE(r.ok()) << c.value;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr(c.want));
  }
}

TEST(TranslateTest, LinuxResources) {
  google::protobuf::Any any;
  any.set_type_url(std::string(kLinuxResourcesTypeUrl));
  any.set_value(R"({"memory":{"limit":1048576}})");
  EXPECT_TRUE(LinuxResourcesJson(any).ok());
  any.set_type_url("x");
  EXPECT_FALSE(LinuxResourcesJson(any).ok());
}

TEST(TranslateTest, AgentStdio) {
  auto s = AgentStdio(false, "", "/o", "/e");
  EXPECT_FALSE(s.stdin());
  EXPECT_TRUE(s.stdout());
  EXPECT_TRUE(s.stderr());
  auto t = AgentStdio(true, "/i", "/o", "/e");
  EXPECT_TRUE(t.terminal());
  EXPECT_TRUE(t.stdin());
  EXPECT_FALSE(t.stderr());  // merged into the pty
}

TEST(TranslateTest, TimesAndExitStatus) {
  EXPECT_EQ(ExitStatusFromAgent(7), 7u);
  EXPECT_EQ(ExitStatusFromAgent(137), 137u);
  EXPECT_EQ(ExitStatusFromAgent(-1), 255u);
  const absl::Time t = absl::FromUnixNanos(-1500000000);
  EXPECT_EQ(FromTimestamp(ToTimestamp(t)), t);
  EXPECT_EQ(ToTimestamp(t).nanos(), 500000000);
}

TEST(TranslateTest, MetricsAny) {
  cloak::agent::v1::StatsContainerResponse stats;
  stats.set_cpu_usage_usec(10);
  stats.set_memory_usage_bytes(20);
  stats.set_memory_limit_bytes(30);
  stats.set_pids_current(3);
  stats.set_oom_kill_events(1);
  google::protobuf::Any any = MetricsAny(stats);
  EXPECT_EQ(any.type_url(), "io.containerd.cgroups.v2.Metrics");
  io::containerd::cgroups::v2::Metrics m;
  ASSERT_TRUE(m.ParseFromString(any.value()));
  EXPECT_EQ(m.cpu().usage_usec(), 10u);
  EXPECT_EQ(m.memory().usage(), 20u);
  EXPECT_EQ(m.memory().usage_limit(), 30u);
  EXPECT_EQ(m.pids().current(), 3u);
  EXPECT_EQ(m.memory_events().oom_kill(), 1u);
}

TEST(TranslateTest, ConfigPathFromOptions) {
  runtimeoptions::v1::Options o;
  o.set_config_path("/etc/cloak/dev.toml");
  google::protobuf::Any any;
  any.set_type_url("runtimeoptions.v1.Options");
  o.SerializeToString(any.mutable_value());
  EXPECT_EQ(*ConfigPathFromOptions(any), "/etc/cloak/dev.toml");
  any.set_type_url("containerd.runc.v1.Options");
  EXPECT_EQ(*ConfigPathFromOptions(any), "");
  EXPECT_EQ(*ConfigPathFromOptions(google::protobuf::Any()), "");
  any.set_type_url("runtimeoptions.v1.Options");
  any.set_value("\xff\xff");
  EXPECT_FALSE(ConfigPathFromOptions(any).ok());
}

TEST(TranslateTest, GuestImageReference) {
  struct Case {
    std::string in, ref, registry;
  };
  for (const Case& c : std::vector<Case>{
           {"127.0.0.1:5000/busybox:1", "10.0.2.2:5000/busybox:1", "10.0.2.2:5000"},
           {"localhost:5000/a/b@sha256:00", "10.0.2.2:5000/a/b@sha256:00", "10.0.2.2:5000"},
           {"localhost/x", "10.0.2.2/x", "10.0.2.2"},
           {"[::1]:5000/x", "10.0.2.2:5000/x", "10.0.2.2:5000"},
           {"registry.example:5000/x", "registry.example:5000/x", ""},
           {"busybox", "busybox", ""},
           {"docker.io/library/busybox:latest", "docker.io/library/busybox:latest", ""},
       }) {
    GuestImage g = GuestImageReference(c.in);
    EXPECT_EQ(g.reference, c.ref) << c.in;
    EXPECT_EQ(g.guest_loopback_registry, c.registry) << c.in;
  }
}

// cloak-snapshotter's rootfs for a guest-pulled image names the image;
// overlay and plain bind rootfs name none.
TEST(TranslateTest, GuestPullImageFromRootfs) {
  google::protobuf::RepeatedPtrField<::containerd::types::Mount> rootfs;
  EXPECT_EQ(GuestPullImageFromRootfs(rootfs), "");
  auto* overlay = rootfs.Add();
  overlay->set_type("overlay");
  overlay->add_options("lowerdir=/a:/b");
  overlay->add_options("upperdir=/c");
  EXPECT_EQ(GuestPullImageFromRootfs(rootfs), "");
  rootfs.Clear();
  auto* bind = rootfs.Add();
  bind->set_type("bind");
  bind->set_source("/var/lib/cloak-snapshotter/snapshots/7/fs");
  bind->add_options("rbind");
  bind->add_options("rw");
  bind->add_options("cloak.image=127.0.0.1:5000/app@sha256:0123");
  EXPECT_EQ(GuestPullImageFromRootfs(rootfs), "127.0.0.1:5000/app@sha256:0123");
}

}  // namespace
}  // namespace cloak::shim
