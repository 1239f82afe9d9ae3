// agent/spec_builder: the trust boundary between host requests and the OCI
// spec crun runs (docs/agent.md).
#include "agent/spec_builder.h"

#include <string>
#include <utility>
#include <vector>

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

// The trust boundary as one table: each row is a hostile or odd host request
// (merged into a minimal valid spec) and what crun gets instead — values at
// JSON pointers ("=" : the same as for the minimal spec, i.e. the host's
// input had no effect; "-": absent) — or the error.
struct HostRow {
  const char* name;
  const char* host;  // JSON merge patch over {"process":{"args":["sh"]}}
  std::vector<std::pair<const char*, const char*>> want;  // pointer -> JSON, "=" or "-"
  const char* error = nullptr;  // InvalidArgument message contains this
  bool keep_runtime_annotations = false;
};

const std::vector<HostRow>& HostRows() {
  static const auto* rows = new std::vector<HostRow>{
      // Filesystem: the root, mounts and propagation are the agent's.
      {"host root path", R"({"root":{"path":"/","readonly":true}})",
       {{"/root/path", R"("/run/cloak/containers/c1/rootfs")"}, {"/root/readonly", "true"}}},
      {"bind mount of the guest's /", R"({"mounts":[{"destination":"/host","type":"bind",
          "source":"/","options":["rbind","rw"]}]})",
       {{"/mounts", "="}}},
      {"extra proc and sysfs rw mounts", R"({"mounts":[{"destination":"/proc/sys","type":"proc",
          "source":"proc"},{"destination":"/sys","type":"sysfs","source":"sysfs","options":["rw"]}]})",
       {{"/mounts", "="}}},
      {"shared rootfs propagation", R"({"linux":{"rootfsPropagation":"shared"}})",
       {{"/linux/rootfsPropagation", "-"}}},
      {"masked and read-only paths emptied", R"({"linux":{"maskedPaths":[],"readonlyPaths":[]}})",
       {{"/linux/maskedPaths", "="}, {"/linux/readonlyPaths", "="}}},
      // Namespaces: always fresh pid, ipc, uts, mount; never a path.
      {"host network namespace", R"({"linux":{"namespaces":[{"type":"network","path":"/proc/1/ns/net"}]}})",
       {{"/linux/namespaces", "="}}},
      {"pid namespace of the agent", R"({"linux":{"namespaces":[{"type":"pid","path":"/proc/1/ns/pid"}]}})",
       {{"/linux/namespaces", "="}}},
      {"no namespaces at all", R"({"linux":{"namespaces":[]}})", {{"/linux/namespaces", "="}}},
      {"user namespace mapping root", R"({"linux":{"namespaces":[{"type":"user"}],
          "uidMappings":[{"containerID":0,"hostID":0,"size":4294967295}],
          "gidMappings":[{"containerID":0,"hostID":0,"size":4294967295}]}})",
       {{"/linux/namespaces", "="}, {"/linux/uidMappings", "-"}, {"/linux/gidMappings", "-"}}},
      // Privilege: capabilities, LSM labels, seccomp, devices.
      {"privileged capabilities", R"({"process":{"capabilities":{"bounding":["CAP_SYS_ADMIN"],
          "effective":["CAP_SYS_ADMIN"],"permitted":["CAP_SYS_ADMIN"],"inheritable":["CAP_SYS_ADMIN"],
          "ambient":["CAP_SYS_ADMIN"]}}})",
       {{"/process/capabilities", "="}}},
      {"AppArmor and SELinux off", R"({"process":{"apparmorProfile":"unconfined","selinuxLabel":"spc_t"},
          "linux":{"mountLabel":"x"}})",
       {{"/process/apparmorProfile", "-"}, {"/process/selinuxLabel", "-"}, {"/linux/mountLabel", "-"}}},
      {"seccomp allow-all", R"({"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW"}}})",
       {{"/linux/seccomp", "-"}}},
      {"block device node", R"({"linux":{"devices":[{"path":"/dev/vda","type":"b","major":253,"minor":0}]}})",
       {{"/linux/devices", "-"}}},
      {"device cgroup allow-all", R"({"linux":{"resources":{"devices":[{"allow":true,"access":"rwm"}]}}})",
       {{"/linux/resources/devices", "="}}},
      {"oom score, scheduler, io priority", R"({"process":{"oomScoreAdj":-1000,
          "scheduler":{"policy":"SCHED_FIFO","priority":99},"ioPriority":{"class":"IOPRIO_CLASS_RT"}}})",
       {{"/process/oomScoreAdj", "-"}, {"/process/scheduler", "-"}, {"/process/ioPriority", "-"}}},
      {"personality, intelRdt, time offsets", R"({"linux":{"personality":{"domain":"LINUX32"},
          "intelRdt":{"closID":"x"},"timeOffsets":{"monotonic":{"secs":1}}}})",
       {{"/linux/personality", "-"}, {"/linux/intelRdt", "-"}, {"/linux/timeOffsets", "-"}}},
      // Kernel and runtime side doors.
      {"sysctls", R"({"linux":{"sysctl":{"kernel.core_pattern":"|/evil","net.ipv4.ip_forward":"1"}}})",
       {{"/linux/sysctl", "-"}}},
      {"hooks", R"({"hooks":{"prestart":[{"path":"/bin/sh"}],"createRuntime":[{"path":"/bin/sh"}],
          "createContainer":[{"path":"/bin/sh"}],"startContainer":[{"path":"/bin/sh"}],
          "poststart":[{"path":"/bin/sh"}],"poststop":[{"path":"/bin/sh"}]}})",
       {{"/hooks", "-"}}},
      {"crun hook output files", R"({"annotations":{"run.oci.hooks.stdout":"/etc/shadow",
          "run.oci.hooks.stderr":"/run/cloak/agent.log"}})",
       {{"/annotations", "-"}}},
      {"crun fd receivers", R"({"annotations":{"run.oci.seccomp.receiver":"/run/x.sock",
          "run.oci.pidfd_receiver":"/run/y.sock"}})",
       {{"/annotations", "-"}}},
      {"crun cgroup delegation, v1 mount, handler", R"({"annotations":{"run.oci.delegate-cgroup":"x",
          "run.oci.systemd.force_cgroup_v1":"/sys/fs/cgroup","run.oci.handler":"krun",
          "module.wasm.image/variant":"compat","org.criu.config":"/etc/criu.conf",
          "io.kubernetes.cri.container-type":"container"}})",
       {{"/annotations", R"({"io.kubernetes.cri.container-type":"container"})"}}},
      {"crun annotation allowed by an enforced policy", R"({"annotations":{"run.oci.keep_original_groups":"1"}})",
       {{"/annotations", R"({"run.oci.keep_original_groups":"1"})"}}, nullptr, true},
      {"cgroupsPath escape", R"({"linux":{"cgroupsPath":"/../../evil"}})",
       {{"/linux/cgroupsPath", R"("/cloak/c1")"}}},
      {"raw cgroup files", R"({"linux":{"resources":{"unified":{"cgroup.procs":"1","cgroup.subtree_control":"+cpu"}}}})",
       {{"/linux/resources/unified", "-"}}},
      {"realtime CPU, rdma, net class", R"({"linux":{"resources":{"cpu":{"shares":2,"realtimeRuntime":950000,
          "realtimePeriod":1000000},"rdma":{"mlx5_0":{"hcaHandles":1}},"network":{"classID":1}}}})",
       {{"/linux/resources/cpu", R"({"shares":2})"}, {"/linux/resources/rdma", "-"},
        {"/linux/resources/network", "-"}}},
      {"hugepage limit", R"({"linux":{"resources":{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}}})",
       {{"/linux/resources/hugepageLimits", R"([{"pageSize":"2MB","limit":4194304}])"}}},
      {"hugepage size as a path", R"({"linux":{"resources":{"hugepageLimits":[{"pageSize":"../../x","limit":1}]}}})",
       {}, "hugepageLimits.pageSize"},
      {"cpuset list", R"({"linux":{"resources":{"cpu":{"cpus":"0-1,3","mems":"0"}}}})",
       {{"/linux/resources/cpu", R"({"cpus":"0-1,3","mems":"0"})"}}},
      {"cpuset with a newline", R"({"linux":{"resources":{"cpu":{"cpus":"0\n1"}}}})", {}, "cpu.cpus"},
      {"memory limit as a string", R"({"linux":{"resources":{"memory":{"limit":"1"}}}})", {}, "memory.limit"},
      // The process: the workload's own settings are kept, checked.
      {"host terminal and console size", R"({"process":{"terminal":true,"consoleSize":{"height":1,"width":1}}})",
       {{"/process/terminal", "false"}, {"/process/consoleSize", "-"}}},
      {"args and env override", R"({"process":{"args":["/bin/sh","-c","id"],"env":["LD_PRELOAD=/x.so","A="]}})",
       {{"/process/args", R"(["/bin/sh","-c","id"])"}, {"/process/env", R"(["LD_PRELOAD=/x.so","A="])"}}},
      {"root user, username dropped", R"({"process":{"user":{"uid":0,"gid":0,"additionalGids":[0],
          "umask":18,"username":"root"}}})",
       {{"/process/user", R"({"uid":0,"gid":0,"additionalGids":[0],"umask":18})"}}},
      {"rlimits kept", R"({"process":{"rlimits":[{"type":"RLIMIT_NOFILE","hard":1048576,"soft":1024}]}})",
       {{"/process/rlimits", R"([{"type":"RLIMIT_NOFILE","hard":1048576,"soft":1024}])"}}},
      {"noNewPrivileges off", R"({"process":{"noNewPrivileges":false}})", {{"/process/noNewPrivileges", "false"}}},
      {"hostname kept, domainname dropped", R"({"hostname":"web-1","domainname":"evil.example"})",
       {{"/hostname", R"("web-1")"}, {"/domainname", "-"}}},
      {"no process", R"({"process":null})", {}, "process: missing"},
      {"empty args", R"({"process":{"args":[]}})", {}, "process.args: is empty"},
      {"NUL in an argument", R"({"process":{"args":["a\u0000b"]}})", {}, "contains NUL"},
      {"env without =", R"({"process":{"env":["=x"]}})", {}, "KEY=VALUE"},
      {"relative cwd", R"({"process":{"cwd":"tmp"}})", {}, "must be absolute"},
      {"uid out of range", R"({"process":{"user":{"uid":4294967295}}})", {}, "process.user.uid"},
      {"negative gid", R"({"process":{"user":{"gid":-1}}})", {}, "process.user.gid"},
      {"umask above 0777", R"({"process":{"user":{"umask":512}}})", {}, "process.user.umask"},
      {"unknown rlimit", R"({"process":{"rlimits":[{"type":"RLIMIT_BOGUS","hard":1,"soft":1}]}})", {},
       "unknown rlimit"},
      {"soft above hard", R"({"process":{"rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":2}]}})", {},
       "soft above hard"},
      {"hostname with a slash", R"({"hostname":"a/b"})", {}, "hostname"},
      {"annotations not an object", R"({"annotations":["x"]})", {}, "annotations: must be an object"},
      {"annotation value not a string", R"({"annotations":{"a":1}})", {}, "annotations value"},
  };
  return *rows;
}

TEST(SpecBuilderTest, HostInputTable) {
  const json base = json::parse(R"({"process":{"args":["sh"]}})");
  absl::StatusOr<json> minimal = BuildContainerSpec(base.dump(), Options());
  ASSERT_TRUE(minimal.ok()) << minimal.status();
  for (const HostRow& row : HostRows()) {
    SCOPED_TRACE(row.name);
    json host = base;
    host.merge_patch(json::parse(row.host));
    SpecOptions options = Options();
    options.keep_runtime_annotations = row.keep_runtime_annotations;
    absl::StatusOr<json> spec = BuildContainerSpec(host.dump(), options);
    if (row.error != nullptr) {
      ASSERT_FALSE(spec.ok()) << spec->dump();
      EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(spec.status().message(), HasSubstr(row.error));
      continue;
    }
    ASSERT_TRUE(spec.ok()) << spec.status();
    ASSERT_FALSE(row.want.empty());
    for (const auto& [pointer, want] : row.want) {
      const json::json_pointer ptr(pointer);
      if (std::string(want) == "-") {
        EXPECT_FALSE(spec->contains(ptr)) << pointer << " = " << spec->value(ptr, json()).dump();
      } else if (std::string(want) == "=") {
        ASSERT_TRUE(spec->contains(ptr)) << pointer;
        EXPECT_EQ(spec->at(ptr), minimal->at(ptr)) << pointer;
      } else {
        ASSERT_TRUE(spec->contains(ptr)) << pointer;
        EXPECT_EQ(spec->at(ptr), json::parse(want)) << pointer;
      }
    }
  }
}

// The exec path (an exec's process.json) through the same process rules.
TEST(SpecBuilderTest, ExecProcessDropsPrivilege) {
  SpecOptions o;
  absl::StatusOr<json> p = SanitizeProcess(json::parse(R"({"args":["sh"],
      "capabilities":{"ambient":["CAP_SYS_ADMIN"]},"apparmorProfile":"unconfined",
      "selinuxLabel":"spc_t","oomScoreAdj":-1000,"terminal":true})"), o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)["capabilities"]["bounding"].get<std::vector<std::string>>(), DefaultCapabilities());
  EXPECT_FALSE(p->contains("apparmorProfile"));
  EXPECT_FALSE(p->contains("selinuxLabel"));
  EXPECT_FALSE(p->contains("oomScoreAdj"));
  EXPECT_EQ((*p)["terminal"], false);
}

}  // namespace
}  // namespace cloak::agent
