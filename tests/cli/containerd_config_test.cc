// cloak containerd-config: merging into and removing from containerd
// configs, as pure text-to-text functions.
#include "cli/cloak/containerd_config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A containerd 1.6 config as a distribution would ship it, with a runc
// runtime and a global snapshotter setting.
constexpr char kStock[] = R"(version = 2
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
)";

ContainerdConfigOptions Options(int minor) {
  ContainerdConfigOptions o;
  o.version = {1, minor};
  return o;
}

TEST(ContainerdConfigTest, AddsRuntimesSnapshotterAndAnnotationsOn16) {
  auto out = AddCloakToContainerdConfig(kStock, Options(6));
  ASSERT_TRUE(out.ok()) << out.status();
  for (const char* want : {
           "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.cloak-dev]\n"
           "pod_annotations = [ \"io.cloak.*\" ]\nruntime_type = \"io.containerd.cloak.v2\"\n",
           "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.cloak-snp.options]\n"
           "ConfigPath = \"/etc/cloak/cloak-snp.toml\"",
           "runtimes.cloak-tdx]",
           "[proxy_plugins.cloak]\naddress = \"/run/cloak-snapshotter/snapshotter.sock\"\n"
           "type = \"snapshot\"",
           "disable_snapshot_annotations = false",
           "snapshotter = \"cloak\"",
           // What was there stays.
           "SystemdCgroup = true", "sandbox_image = \"registry.k8s.io/pause:3.9\"",
           "default_runtime_name = \"runc\""}) {
    EXPECT_THAT(*out, HasSubstr(want));
  }
  EXPECT_THAT(*out, Not(HasSubstr("snapshotter = \"overlayfs\"")));
}

TEST(ContainerdConfigTest, BindsTheSnapshotterPerHandlerOn17) {
  auto out = AddCloakToContainerdConfig(kStock, Options(7));
  ASSERT_TRUE(out.ok()) << out.status();
  // The global snapshotter is left alone; each cloak runtime names its own.
  EXPECT_THAT(*out, HasSubstr("snapshotter = \"overlayfs\""));
  EXPECT_THAT(*out, HasSubstr("runtimes.cloak-dev]\npod_annotations = [ \"io.cloak.*\" ]\n"
                              "runtime_type = \"io.containerd.cloak.v2\"\nsnapshotter = \"cloak\"\n"));
}

TEST(ContainerdConfigTest, NoSnapshotterAddsOnlyRuntimes) {
  ContainerdConfigOptions o = Options(6);
  o.snapshotter_address.clear();
  o.handlers = {"cloak-dev"};
  o.shim_config_dir = "/opt/x/etc/";
  auto out = AddCloakToContainerdConfig(kStock, o);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, HasSubstr("ConfigPath = \"/opt/x/etc/cloak-dev.toml\""));
  EXPECT_THAT(*out, Not(HasSubstr("proxy_plugins")));
  EXPECT_THAT(*out, Not(HasSubstr("disable_snapshot_annotations")));
  EXPECT_THAT(*out, Not(HasSubstr("cloak-snp")));
  EXPECT_THAT(*out, HasSubstr("snapshotter = \"overlayfs\""));
}

TEST(ContainerdConfigTest, IsIdempotent) {
  for (int minor : {6, 7}) {
    auto once = AddCloakToContainerdConfig(kStock, Options(minor));
    ASSERT_TRUE(once.ok()) << once.status();
    auto twice = AddCloakToContainerdConfig(*once, Options(minor));
    ASSERT_TRUE(twice.ok()) << twice.status();
    EXPECT_EQ(*once, *twice);
  }
}

TEST(ContainerdConfigTest, RemoveRestoresWhatWasChanged) {
  for (int minor : {6, 7}) {
    auto added = AddCloakToContainerdConfig(kStock, Options(minor));
    ASSERT_TRUE(added.ok()) << added.status();
    auto removed = RemoveCloakFromContainerdConfig(*added);
    ASSERT_TRUE(removed.ok()) << removed.status();
    // The same document as the original, reformatted: adding nothing to it
    // and removing gives the canonical form of kStock.
    ContainerdConfigOptions none = Options(minor);
    EXPECT_THAT(*removed, Not(HasSubstr("cloak")));
    EXPECT_THAT(*removed, HasSubstr("snapshotter = \"overlayfs\""));
    EXPECT_THAT(*removed, Not(HasSubstr("disable_snapshot_annotations")));
    EXPECT_THAT(*removed, HasSubstr("SystemdCgroup = true"));
    // Removing twice changes nothing more.
    auto again = RemoveCloakFromContainerdConfig(*removed);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *removed);
  }
}

TEST(ContainerdConfigTest, RemoveRestoresAnExistingFalseOrTrueValue) {
  const std::string text = std::string(kStock) +
                           "[plugins.\"io.containerd.grpc.v1.cri\".containerd.x]\n";
  std::string with_true = R"(version = 2
[plugins."io.containerd.grpc.v1.cri".containerd]
disable_snapshot_annotations = true
)";
  auto added = AddCloakToContainerdConfig(with_true, Options(7));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(*added, HasSubstr("disable_snapshot_annotations = false"));
  auto removed = RemoveCloakFromContainerdConfig(*added);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed,
            "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n"
            "disable_snapshot_annotations = true\n");
  (void)text;
}

TEST(ContainerdConfigTest, KeepsTheDefaultRuncRuntimeWhenTheFileListsNone) {
  // containerd replaces its built-in runtimes (runc) with the file's map.
  const std::string bare = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n"
                           "sandbox_image = \"pause:1\"\n";
  auto added = AddCloakToContainerdConfig(bare, Options(6));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(*added, HasSubstr("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n"
                                "runtime_type = \"io.containerd.runc.v2\""));
  auto removed = RemoveCloakFromContainerdConfig(*added);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed, Not(HasSubstr("runtimes")));
  // Another default runtime, or runc already there: nothing added.
  const std::string other = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n"
                            "default_runtime_name = \"crun\"\n";
  added = AddCloakToContainerdConfig(other, Options(6));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(*added, Not(HasSubstr("runtimes.runc]")));
  added = AddCloakToContainerdConfig(kStock, Options(6));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(*added, HasSubstr("SystemdCgroup = true"));
}

TEST(ContainerdConfigTest, Version3ForContainerd2) {
  // containerd 2.x's default layout: CRI split into runtime and images.
  const std::string v3 = R"(version = 3
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  disable_snapshot_annotations = true
[plugins.'io.containerd.cri.v1.runtime'.containerd]
  default_runtime_name = 'runc'
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'
)";
  ContainerdConfigOptions o;
  o.version = {2, 0};
  o.handlers = {"cloak-dev"};
  auto added = AddCloakToContainerdConfig(v3, o);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(*added,
              HasSubstr("[plugins.\"io.containerd.cri.v1.images\"]\ndisable_snapshot_annotations = "
                        "false\nsnapshotter = \"overlayfs\"\n"));
  EXPECT_THAT(*added, HasSubstr("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes."
                                "cloak-dev]\npod_annotations = [ \"io.cloak.*\" ]\n"
                                "runtime_type = \"io.containerd.cloak.v2\"\nsnapshotter = \"cloak\"\n"));
  EXPECT_THAT(*added, Not(HasSubstr("io.containerd.grpc.v1.cri")));
  auto again = AddCloakToContainerdConfig(*added, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *added);
  auto removed = RemoveCloakFromContainerdConfig(*added);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed, HasSubstr("disable_snapshot_annotations = true"));
  EXPECT_THAT(*removed, Not(HasSubstr("cloak")));

  auto fresh = AddCloakToContainerdConfig("", o);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_THAT(*fresh, HasSubstr("version = 3\n"));
  EXPECT_THAT(*fresh, HasSubstr("io.containerd.cri.v1.runtime\".containerd.runtimes.runc]"));
}

TEST(ContainerdConfigTest, EmptyConfigGetsVersion2AndRemoveEmptiesIt) {
  auto added = AddCloakToContainerdConfig("", Options(6));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(*added, HasSubstr("version = 2\n"));
  auto removed = RemoveCloakFromContainerdConfig(*added);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, "\n");
}

TEST(ContainerdConfigTest, AdoptsAHandWrittenCloakRuntimeAndPutsItBack) {
  const std::string hand = R"(version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cloak-dev]
runtime_type = "io.containerd.cloak.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cloak-dev.options]
ConfigPath = "/root/my.toml"
)";
  auto added = AddCloakToContainerdConfig(hand, Options(6));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(*added, HasSubstr("ConfigPath = \"/etc/cloak/cloak-dev.toml\""));
  auto removed = RemoveCloakFromContainerdConfig(*added);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed, HasSubstr("ConfigPath = \"/root/my.toml\""));
  EXPECT_THAT(*removed, Not(HasSubstr("pod_annotations")));
}

TEST(ContainerdConfigTest, Refusals) {
  const std::string foreign = R"(version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cloak-dev]
runtime_type = "io.containerd.runc.v2"
)";
  auto s = AddCloakToContainerdConfig(foreign, Options(6));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("not Cloak's"));

  s = AddCloakToContainerdConfig("root = \"/x\"\n", Options(6));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("version 1"));

  s = AddCloakToContainerdConfig("version = 3\n", Options(6));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("version = 3"));

  s = AddCloakToContainerdConfig("version = 2\n[plugins\n", Options(6));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("line 2"));

  s = AddCloakToContainerdConfig("version = 2\nplugins = 1\n", Options(6));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("plugins is not a table"));

  ContainerdConfigOptions bad = Options(6);
  bad.handlers = {"runc"};
  EXPECT_EQ(AddCloakToContainerdConfig(kStock, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad.handlers = {"cloak-Dev"};
  EXPECT_EQ(AddCloakToContainerdConfig(kStock, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = Options(6);
  bad.shim_config_dir = "etc/cloak";
  EXPECT_EQ(AddCloakToContainerdConfig(kStock, bad).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto damaged = RemoveCloakFromContainerdConfig("# cloak-containerd-config: {nope\nversion = 2\n");
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(damaged.status().message(), HasSubstr("backup"));
}

TEST(ContainerdConfigTest, RemoveLeavesAFileWithoutRecordAlone) {
  auto out = RemoveCloakFromContainerdConfig(kStock);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, kStock);
}

TEST(ContainerdVersionTest, Parses) {
  auto v = ParseContainerdVersionOutput(
      "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, (ContainerdVersion{1, 6}));
  v = ParseContainerdVersionOutput("containerd containerd.io v1.7.13 7c3aca7a\n");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, (ContainerdVersion{1, 7}));
  EXPECT_FALSE(ParseContainerdVersionOutput("containerd dev\n").ok());
  EXPECT_EQ(*ParseContainerdVersionFlag("1.7"), (ContainerdVersion{1, 7}));
  EXPECT_FALSE(ParseContainerdVersionFlag("1.5").ok());
  EXPECT_EQ(*ParseContainerdVersionFlag("2.0"), (ContainerdVersion{2, 0}));
  EXPECT_FALSE(ParseContainerdVersionFlag("auto").ok());
}

}  // namespace
}  // namespace cloak::cli
