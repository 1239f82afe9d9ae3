// agent/spec_builder: the trust boundary between host requests and the OCI
// spec crun runs (docs/agent.md).
#include "agent/spec_builder.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;

SpecOptions Options() {
  SpecOptions o;
  o.rootfs_dir = "/run/cloak/containers/c1/rootfs";
  o.cgroups_path = "/cloak/c1";
  return o;
}

json Build(const json& host) {
  absl::StatusOr<json> spec = BuildContainerSpec(host.dump(), Options());
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : json();
}

json HostileSpec() {
  return json::parse(R"({
    "ociVersion": "1.0.2",
    "process": {
      "terminal": true,
      "user": {"uid": 1000, "gid": 1000, "additionalGids": [10], "username": "x"},
      "args": ["sh", "-c", "echo hi"],
      "env": ["PATH=/bin", "A=b"],
      "cwd": "/work",
      "capabilities": {"bounding": ["CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"],
                        "permitted": ["CAP_SYS_ADMIN"]},
      "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
      "noNewPrivileges": true,
      "apparmorProfile": "unconfined",
      "oomScoreAdj": -1000
    },
    "root": {"path": "/", "readonly": true},
    "hostname": "pod1",
    "annotations": {"io.kubernetes.cri.container-type": "container"},
    "mounts": [{"destination": "/host-etc", "type": "bind", "source": "/etc",
                "options": ["rbind", "rw"]}],
    "hooks": {"prestart": [{"path": "/bin/evil"}]},
    "linux": {
      "namespaces": [{"type": "network", "path": "/proc/1/ns/net"}, {"type": "pid",
                      "path": "/proc/1/ns/pid"}],
      "resources": {"memory": {"limit": 104857600}, "pids": {"limit": 50},
                    "devices": [{"allow": true, "access": "rwm"}],
                    "unified": {"cgroup.procs": "1"}},
      "sysctl": {"kernel.core_pattern": "|/evil"},
      "seccomp": null,
      "uidMappings": [{"containerID": 0, "hostID": 0, "size": 4294967295}],
      "devices": [{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}],
      "cgroupsPath": "/../../evil",
      "maskedPaths": [],
      "readonlyPaths": []
    }
  })");
}

TEST(SpecBuilderTest, HostileFieldsAreReplacedOrDropped) {
  json spec = Build(HostileSpec());
  // A different root → replaced by the agent's rootfs; readonly kept.
  EXPECT_EQ(spec["root"]["path"], "/run/cloak/containers/c1/rootfs");
  EXPECT_EQ(spec["root"]["readonly"], true);
  // Bind mount of /etc → not present; only the agent's standard mounts.
  for (const json& m : spec["mounts"]) {
    EXPECT_NE(m["destination"], "/host-etc");
    EXPECT_NE(m["type"], "bind") << m.dump();
  }
  EXPECT_EQ(spec["mounts"].size(), 7u);
  // Host namespaces (paths) → fresh namespaces, no network namespace.
  for (const json& ns : spec["linux"]["namespaces"]) {
    EXPECT_FALSE(ns.contains("path"));
    EXPECT_NE(ns["type"], "network");
  }
  EXPECT_EQ(spec["linux"]["namespaces"].size(), 4u);
  // Privileged capabilities → the default set.
  std::vector<std::string> caps = spec["process"]["capabilities"]["bounding"];
  EXPECT_THAT(caps, Not(Contains("CAP_SYS_ADMIN")));
  EXPECT_EQ(caps, DefaultCapabilities());
  // Device access, sysctls, hooks, user namespaces, devices: gone or ours.
  EXPECT_FALSE(spec.contains("hooks"));
  EXPECT_FALSE(spec["linux"].contains("sysctl"));
  EXPECT_FALSE(spec["linux"].contains("uidMappings"));
  EXPECT_FALSE(spec["linux"].contains("devices"));
  EXPECT_FALSE(spec["linux"]["resources"].contains("unified"));
  EXPECT_EQ(spec["linux"]["resources"]["devices"][0], json({{"allow", false}, {"access", "rwm"}}));
  EXPECT_EQ(spec["linux"]["cgroupsPath"], "/cloak/c1");
  EXPECT_EQ(spec["linux"]["maskedPaths"].get<std::vector<std::string>>(), DefaultMaskedPaths());
  EXPECT_EQ(spec["linux"]["readonlyPaths"].get<std::vector<std::string>>(), DefaultReadonlyPaths());
  EXPECT_FALSE(spec["process"].contains("apparmorProfile"));
  EXPECT_FALSE(spec["process"].contains("oomScoreAdj"));
}

TEST(SpecBuilderTest, ProcessFieldsAreKept) {
  json spec = Build(HostileSpec());
  const json& p = spec["process"];
  EXPECT_EQ(p["args"], json({"sh", "-c", "echo hi"}));
  EXPECT_EQ(p["env"], json({"PATH=/bin", "A=b"}));
  EXPECT_EQ(p["cwd"], "/work");
  EXPECT_EQ(p["user"], json({{"uid", 1000}, {"gid", 1000}, {"additionalGids", {10}}}));
  EXPECT_EQ(p["rlimits"][0]["type"], "RLIMIT_NOFILE");
  EXPECT_EQ(p["noNewPrivileges"], true);
  // Terminal follows the Stdio message (false here), not the spec.
  EXPECT_EQ(p["terminal"], false);
  EXPECT_EQ(spec["hostname"], "pod1");
  EXPECT_EQ(spec["annotations"]["io.kubernetes.cri.container-type"], "container");
  EXPECT_EQ(spec["linux"]["resources"]["memory"]["limit"], 104857600);
  EXPECT_EQ(spec["linux"]["resources"]["pids"]["limit"], 50);
}

TEST(SpecBuilderTest, ResolvConfBindIsTheAgents) {
  SpecOptions o = Options();
  o.resolv_conf_path = "/run/cloak/sandbox/resolv.conf";
  absl::StatusOr<json> spec = BuildContainerSpec(R"({"process":{"args":["true"]}})", o);
  ASSERT_TRUE(spec.ok()) << spec.status();
  const json& last = (*spec)["mounts"].back();
  EXPECT_EQ(last["destination"], "/etc/resolv.conf");
  EXPECT_EQ(last["source"], "/run/cloak/sandbox/resolv.conf");
}

TEST(SpecBuilderTest, RefusesBadInput) {
  struct Case {
    const char* name;
    const char* spec;
  } cases[] = {
      {"not json", "{"},
      {"not an object", "[]"},
      {"no process", R"({})"},
      {"empty args", R"({"process":{"args":[]}})"},
      {"args not strings", R"({"process":{"args":[1]}})"},
      {"relative cwd", R"({"process":{"args":["a"],"cwd":"x"}})"},
      {"env without =", R"({"process":{"args":["a"],"env":["A"]}})"},
      {"negative uid", R"({"process":{"args":["a"],"user":{"uid":-1,"gid":0}}})"},
      {"uid as string", R"({"process":{"args":["a"],"user":{"uid":"0","gid":0}}})"},
      {"unknown rlimit", R"({"process":{"args":["a"],"rlimits":[{"type":"X","hard":1,"soft":1}]}})"},
      {"soft above hard", R"({"process":{"args":["a"],"rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":2}]}})"},
      {"bad hostname", R"({"process":{"args":["a"]},"hostname":"a/b"})"},
      {"NUL in arg", R"({"process":{"args":["a\u0000b"]}})"},
      {"memory limit string", R"({"process":{"args":["a"]},"linux":{"resources":{"memory":{"limit":"1"}}}})"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<json> spec = BuildContainerSpec(c.spec, Options());
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
  }
  std::string huge = absl::StrCat(R"({"process":{"args":[")", std::string(kMaxSpecBytes, 'a'),
                                  R"("]}})");
  EXPECT_EQ(BuildContainerSpec(huge, Options()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SpecBuilderTest, ExecProcessTerminalAndCaps) {
  SpecOptions o;
  o.terminal = true;
  o.console_width = 100;
  o.console_height = 40;
  json in = json::parse(R"({"args":["sh"],"terminal":false,
                            "capabilities":{"bounding":["CAP_SYS_ADMIN"]}})");
  absl::StatusOr<json> p = SanitizeProcess(in, o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)["terminal"], true);
  EXPECT_EQ((*p)["consoleSize"], json({{"height", 40}, {"width", 100}}));
  EXPECT_EQ((*p)["capabilities"]["effective"].get<std::vector<std::string>>(),
            DefaultCapabilities());
  EXPECT_EQ((*p)["cwd"], "/");
}

TEST(SpecBuilderTest, ResourcesAllowlist) {
  json in = json::parse(R"({"cpu":{"shares":512,"quota":-1,"cpus":"0-1","realtimeRuntime":5},
                            "devices":[{"allow":true,"access":"rwm"}],"network":{"classID":1},
                            "blockIO":{"weight":100,"weightDevice":[{"major":8,"minor":0,"weight":10}]}})");
  absl::StatusOr<json> r = SanitizeResources(in);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["cpu"], json({{"shares", 512}, {"quota", -1}, {"cpus", "0-1"}}));
  EXPECT_FALSE(r->contains("devices"));
  EXPECT_FALSE(r->contains("network"));
  EXPECT_EQ((*r)["blockIO"]["weight"], 100);
  EXPECT_FALSE(SanitizeResources(json::parse(R"({"blockIO":{"weightDevice":[{"major":{}}]}})")).ok());
}

}  // namespace
}  // namespace cloak::agent
