// Unit tests of the agent's pure cores: ids, spec sanitising, cgroup stats,
// exit statuses, kernel command line, image config application, buffers.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/cgroup_stats.h"
#include "agent/crun.h"
#include "agent/guest_details.h"
#include "agent/ids.h"
#include "agent/image_process.h"
#include "agent/init.h"
#include "agent/process_io.h"
#include "agent/reaper.h"
#include "agent/spec_builder.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;

TEST(IdsTest, AcceptsAndRefuses) {
  for (const char* ok : {"a", "abc123", "a.b-c_d", "pod-1.container_2", "X9"}) {
    EXPECT_TRUE(ValidateId("id", ok).ok()) << ok;
  }
  for (const char* bad : {"", ".", "..", "../etc", "a/b", "-a", "a-", "a..b", "a b", "a\nb",
                          "a--b", "_x", "ä"}) {
    EXPECT_EQ(ValidateId("id", bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(ValidateId("id", std::string(76, 'a')).ok());
  EXPECT_FALSE(ValidateId("id", std::string(77, 'a')).ok());
}

TEST(IdsTest, Hostname) {
  EXPECT_TRUE(ValidateHostname("pod-1.example").ok());
  EXPECT_FALSE(ValidateHostname("").ok());
  EXPECT_FALSE(ValidateHostname("-x").ok());
  EXPECT_FALSE(ValidateHostname("a..b").ok());
  EXPECT_FALSE(ValidateHostname("a_b").ok());
  EXPECT_FALSE(ValidateHostname(std::string(65, 'a')).ok());
}

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

void WriteFile(const std::filesystem::path& p, const std::string& content) {
  std::ofstream(p) << content;
}

TEST(CgroupStatsTest, ParsesFakeCgroupDir) {
  absl::StatusOr<TempDir> dir = TempDir::Create("cgroup-");
  ASSERT_TRUE(dir.ok());
  const auto& d = dir->path();
  WriteFile(d / "cgroup.controllers", "cpu memory pids\n");
  WriteFile(d / "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\ncore_sched.force_idle_usec 0\n");
  WriteFile(d / "memory.current", "4096000\n");
  WriteFile(d / "memory.max", "max\n");
  WriteFile(d / "memory.stat", "anon 1024\nfile 2048\nkernel 77\n");
  WriteFile(d / "pids.current", "3\n");
  WriteFile(d / "pids.max", "50\n");
  WriteFile(d / "memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n");
  absl::StatusOr<CgroupStats> s = ReadCgroupV2Stats(d.string());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->cpu_usage_usec, 1500u);
  EXPECT_EQ(s->cpu_user_usec, 1000u);
  EXPECT_EQ(s->cpu_system_usec, 500u);
  EXPECT_EQ(s->memory_usage_bytes, 4096000u);
  EXPECT_EQ(s->memory_limit_bytes, 0u);
  EXPECT_EQ(s->memory_anon_bytes, 1024u);
  EXPECT_EQ(s->memory_file_bytes, 2048u);
  EXPECT_EQ(s->pids_current, 3u);
  EXPECT_EQ(s->pids_limit, 50u);
  EXPECT_EQ(s->oom_events, 2u);
  EXPECT_EQ(s->oom_kill_events, 1u);
  EXPECT_EQ(*ReadOomKillCount(d.string()), 1u);
}

TEST(CgroupStatsTest, MissingControllersAndErrors) {
  absl::StatusOr<TempDir> dir = TempDir::Create("cgroup-");
  ASSERT_TRUE(dir.ok());
  const auto& d = dir->path();
  // Not v2 (a cgroup v1 dir or any other dir).
  EXPECT_EQ(ReadCgroupV2Stats(d.string()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadCgroupV2Stats((d / "nope").string()).status().code(), absl::StatusCode::kNotFound);
  WriteFile(d / "cgroup.controllers", "\n");
  WriteFile(d / "cpu.stat", "usage_usec 7\n");
  absl::StatusOr<CgroupStats> s = ReadCgroupV2Stats(d.string());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->cpu_usage_usec, 7u);
  EXPECT_EQ(s->memory_usage_bytes, 0u);
  WriteFile(d / "memory.max", "garbage\n");
  EXPECT_EQ(ReadCgroupV2Stats(d.string()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseFlatKeyed("a 1\nbad\nb x\nc 3").size(), 2u);
}

TEST(ExitStatusTest, Mapping) {
  EXPECT_EQ(ExitStatusFromWaitStatus(0), 0);
  EXPECT_EQ(ExitStatusFromWaitStatus(3 << 8), 3);
  EXPECT_EQ(ExitStatusFromWaitStatus(SIGTERM), 143);
  EXPECT_EQ(ExitStatusFromWaitStatus(SIGKILL), 137);
  EXPECT_EQ(ExitStatusFromWaitStatus(SIGKILL | 0x80), 137);  // core dumped
}

TEST(ReaperTest, DispatchesStatusesByPid) {
  absl::StatusOr<std::unique_ptr<Reaper>> reaper = Reaper::Start(/*subreaper=*/false);
  ASSERT_TRUE(reaper.ok()) << reaper.status();
  absl::StatusOr<Reaper::RunResult> r = (*reaper)->Run({"/bin/sh", "-c", "echo out; exit 3"},
                                                       absl::Seconds(10));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_status, 3);
  EXPECT_EQ(r->output, "out\n");
  uint64_t mark = (*reaper)->Mark();
  ChildSpec sleeper;
  sleeper.argv = {"/bin/sleep", "100"};
  absl::StatusOr<pid_t> pid = (*reaper)->Spawn(sleeper);
  ASSERT_TRUE(pid.ok());
  EXPECT_EQ((*reaper)->Wait(*pid, mark, absl::Now() + absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  ::kill(*pid, SIGTERM);
  absl::StatusOr<ExitRecord> e = (*reaper)->Wait(*pid, mark, absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->exit_status, 143);
  EXPECT_EQ((*reaper)->Run({"/bin/sleep", "10"}, absl::Milliseconds(100)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST(KernelCmdlineTest, Parses) {
  absl::StatusOr<KernelCmdline> c = ParseKernelCmdline(
      "console=ttyS0 quiet cloak.channel=serial cloak.port=2048 cloak.log=debug "
      "cloak.modules=vsock,overlay cloak.insecure_registries=10.0.2.2:5000\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->channel, "serial");
  EXPECT_EQ(c->port, 2048u);
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->modules, (std::vector<std::string>{"vsock", "overlay"}));
  EXPECT_EQ(c->insecure_registries, (std::vector<std::string>{"10.0.2.2:5000"}));
  EXPECT_FALSE(ParseKernelCmdline("cloak.insecure_registries=a/b").ok());
  absl::StatusOr<KernelCmdline> d = ParseKernelCmdline("root=/dev/vda");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->channel, "auto");
  EXPECT_EQ(d->port, 1024u);
  EXPECT_EQ(d->modules, DefaultModules());
  EXPECT_TRUE(ParseKernelCmdline("cloak.modules=")->modules.empty());
  EXPECT_FALSE(ParseKernelCmdline("cloak.channel=tcp").ok());
  EXPECT_FALSE(ParseKernelCmdline("cloak.port=x").ok());
  EXPECT_FALSE(ParseKernelCmdline("cloak.modules=../x").ok());
  EXPECT_EQ(d->policy, "enforce");
  EXPECT_EQ(ParseKernelCmdline("cloak.policy=allow-all")->policy, "allow-all");
  EXPECT_FALSE(ParseKernelCmdline("cloak.policy=off").ok());
  // The runtime class's TEE (docs/attestation.md): absent is not dev.
  EXPECT_EQ(d->tee, "");
  EXPECT_EQ(ParseKernelCmdline("cloak.tee=none")->tee, "none");
  EXPECT_EQ(ParseKernelCmdline("cloak.tee=snp")->tee, "snp");
  EXPECT_EQ(ParseKernelCmdline("cloak.tee=tdx")->tee, "tdx");
  EXPECT_FALSE(ParseKernelCmdline("cloak.tee=dev").ok());
  EXPECT_TRUE(IsOptionalModule("sev-guest"));
  EXPECT_FALSE(IsOptionalModule("vsock"));
}

TEST(GuestDetailsTest, DetectsTeeFromDevices) {
  absl::StatusOr<TempDir> dir = TempDir::Create("tee-");
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(DetectTee(dir->path().string()), "none");
  std::filesystem::create_directories(dir->path() / "dev");
  WriteFile(dir->path() / "dev" / "tdx_guest", "");
  EXPECT_EQ(DetectTee(dir->path().string()), "tdx");
  WriteFile(dir->path() / "dev" / "sev-guest", "");
  EXPECT_EQ(DetectTee(dir->path().string()), "snp");
}

TEST(ImageProcessTest, AppliesImageConfig) {
  absl::StatusOr<TempDir> dir = TempDir::Create("rootfs-");
  ASSERT_TRUE(dir.ok());
  std::filesystem::create_directories(dir->path() / "etc");
  WriteFile(dir->path() / "etc" / "passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n");
  WriteFile(dir->path() / "etc" / "group", "app:x:1000:\nextra:x:2000:app\n");
  const std::string config = R"({"config":{"Entrypoint":["/entry"],"Cmd":["--flag"],
      "Env":["PATH=/usr/bin","IMG=1"],"WorkingDir":"/app","User":"app"}})";
  SpecOptions o;
  o.allow_empty_args = true;
  json process = *SanitizeProcess(json::parse(R"({"env":["IMG=2","HOST=1"]})"), o);
  absl::Status s = ApplyImageConfigToProcess(config, dir->path().string(), &process);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(process["args"], json({"/entry", "--flag"}));
  EXPECT_EQ(process["env"], json({"PATH=/usr/bin", "IMG=2", "HOST=1"}));
  EXPECT_EQ(process["cwd"], "/app");
  EXPECT_EQ(process["user"]["uid"], 1000);
  EXPECT_EQ(process["user"]["gid"], 1000);
  EXPECT_EQ(process["user"]["additionalGids"], json({2000}));

  // The host's args are the command; a non-root host user wins.
  json host = *SanitizeProcess(
      json::parse(R"({"args":["/bin/sh"],"cwd":"/w","user":{"uid":5,"gid":6}})"), o);
  ASSERT_TRUE(ApplyImageConfigToProcess(config, dir->path().string(), &host).ok());
  EXPECT_EQ(host["args"], json({"/bin/sh"}));
  EXPECT_EQ(host["cwd"], "/w");
  EXPECT_EQ(host["user"]["uid"], 5);

  // No image config and no args: refused.
  json empty = *SanitizeProcess(json::object(), o);
  EXPECT_EQ(ApplyImageConfigToProcess("", "/", &empty).code(), absl::StatusCode::kInvalidArgument);
}

TEST(OutputBufferTest, BackpressureAndEof) {
  OutputBuffer buffer(8);
  std::thread producer([&] {
    EXPECT_TRUE(buffer.Append("0123456789abcdef"));  // blocks until the reader drains
    buffer.MarkEof();
  });
  std::string all, chunk;
  while (true) {
    OutputBuffer::ReadResult r = buffer.Read(5, absl::Seconds(5), &chunk);
    if (r == OutputBuffer::ReadResult::kEof) break;
    ASSERT_EQ(r, OutputBuffer::ReadResult::kData);
    EXPECT_LE(chunk.size(), 5u);
    all += chunk;
  }
  producer.join();
  EXPECT_EQ(all, "0123456789abcdef");
  EXPECT_TRUE(buffer.eof_drained());
  EXPECT_TRUE(buffer.AcquireReader());
  EXPECT_FALSE(buffer.AcquireReader());
  buffer.ReleaseReader();
  EXPECT_TRUE(buffer.AcquireReader());
}

TEST(OutputBufferTest, AbandonUnblocksProducer) {
  OutputBuffer buffer(4);
  std::thread producer([&] { EXPECT_FALSE(buffer.Append("0123456789")); });
  absl::SleepFor(absl::Milliseconds(50));
  buffer.Abandon();
  producer.join();
}

TEST(CrunArgsTest, Builders) {
  CrunOptions options;
  options.binary = "/usr/bin/crun";
  options.state_root = "/run/cloak/crun";
  options.no_pivot = true;
  Crun crun(options, nullptr);
  EXPECT_EQ(crun.CreateArgs("c1", "/b", "/b/init.pid", "/b/log", ""),
            (std::vector<std::string>{"/usr/bin/crun", "--root", "/run/cloak/crun",
                                      "--log=file:/b/log", "--log-format=text", "create",
                                      "--bundle", "/b", "--pid-file", "/b/init.pid",
                                      "--no-pivot", "c1"}));
  EXPECT_EQ(crun.ExecArgs("c1", "/b/p.json", "/b/p.pid", "", "/s/1.sock"),
            (std::vector<std::string>{"/usr/bin/crun", "--root", "/run/cloak/crun", "exec",
                                      "--detach", "--pid-file", "/b/p.pid", "--process",
                                      "/b/p.json", "--console-socket", "/s/1.sock", "c1"}));
  EXPECT_EQ(crun.KillArgs("c1", 9, true),
            (std::vector<std::string>{"/usr/bin/crun", "--root", "/run/cloak/crun", "kill",
                                      "--all", "c1", "9"}));
}

}  // namespace
}  // namespace cloak::agent
