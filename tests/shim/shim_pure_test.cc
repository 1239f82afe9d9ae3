// Unit tests of the shim's pure parts: flags, socket address, bundle
// parsing, DeleteResponse encoding, task_translate tables, stdio URIs.
#include <openssl/sha.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "shim/config/config.h"
#include "containerd/task/v2/shim.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/bundle.h"
#include "shim/flags.h"
#include "shim/initdata.h"
#include "shim/proto/cgroups_metrics.pb.h"
#include "shim/proto/runtime_options.pb.h"
#include "shim/sandbox_factory.h"
#include "shim/stdio.h"
#include "shim/task_translate.h"

namespace cloak::shim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Sha256Hex(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  return absl::BytesToHexString(std::string(reinterpret_cast<char*>(d), sizeof(d)));
}

TEST(FlagsTest, StartAsContainerdRunsIt) {
  auto f = ParseShimFlags({"-namespace", "default", "-address", "/run/containerd/containerd.sock",
                           "-publish-binary", "/usr/bin/containerd", "-id", "c1", "-debug",
                           "start"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->namespace_name, "default");
  EXPECT_EQ(f->address, "/run/containerd/containerd.sock");
  EXPECT_EQ(f->publish_binary, "/usr/bin/containerd");
  EXPECT_EQ(f->id, "c1");
  EXPECT_TRUE(f->debug);
  EXPECT_EQ(f->action, Action::kStart);
}

TEST(FlagsTest, EqualsFormDoubleDashBundleAndDelete) {
  auto f = ParseShimFlags({"--namespace=k8s.io", "-address=/a.sock", "-id=x", "-bundle", "/b",
                           "-debug=false", "delete"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->namespace_name, "k8s.io");
  EXPECT_EQ(f->address, "/a.sock");
  EXPECT_EQ(f->bundle, "/b");
  EXPECT_FALSE(f->debug);
  EXPECT_EQ(f->action, Action::kDelete);
}

TEST(FlagsTest, NoActionServesAndSocketAndVersion) {
  auto f = ParseShimFlags({"-namespace", "n", "-id", "i", "-address", "a", "-socket", "/s"});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->action, Action::kServe);
  EXPECT_EQ(f->socket, "/s");
  auto v = ParseShimFlags({"-v"});
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->version);
}

TEST(FlagsTest, Errors) {
  EXPECT_THAT(ParseShimFlags({"-nope"}).status().message(), HasSubstr("-nope"));
  EXPECT_THAT(ParseShimFlags({"-id"}).status().message(), HasSubstr("needs an argument"));
  EXPECT_THAT(ParseShimFlags({"-debug=maybe"}).status().message(), HasSubstr("boolean"));
  EXPECT_THAT(ParseShimFlags({"-id", "x", "frobnicate"}).status().message(),
              HasSubstr("unknown action"));
}

TEST(FlagsTest, DaemonArgsRoundTrip) {
  ShimFlags f;
  f.namespace_name = "default";
  f.id = "c1";
  f.address = "/run/containerd/containerd.sock";
  f.debug = true;
  std::vector<std::string> args = DaemonArgs(f);
  auto back = ParseShimFlags(args);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->action, Action::kServe);
  EXPECT_EQ(back->id, "c1");
  EXPECT_TRUE(back->debug);
}

TEST(SocketAddressTest, MatchesGoShimLibrary) {
  const std::string want =
      "unix:///run/containerd/s/" + Sha256Hex("/run/containerd/containerd.sock/default/c1");
  EXPECT_EQ(SocketAddress("/run/containerd/containerd.sock", "default", "c1"), want);
  // filepath.Join cleans: trailing and doubled slashes vanish.
  EXPECT_EQ(SocketAddress("/run/containerd//containerd.sock/", "default", "c1"), want);
  EXPECT_EQ(SocketPathFromAddress(want).size(), std::string("/run/containerd/s/").size() + 64);
}

TEST(SocketAddressTest, CleanPath) {
  EXPECT_EQ(CleanPath("/a//b/./c/../d/"), "/a/b/d");
  EXPECT_EQ(CleanPath("a/../.."), "..");
  EXPECT_EQ(CleanPath("/../x"), "/x");
  EXPECT_EQ(CleanPath(""), ".");
}

TEST(PodInfoTest, Grouping) {
  auto plain = ParsePodInfo(R"({"annotations":{"io.cloak.image":"r/busybox"}})", "c1");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->is_sandbox);
  EXPECT_EQ(plain->sandbox_id, "c1");
  EXPECT_EQ(plain->image, "r/busybox");

  auto sandbox = ParsePodInfo(
      R"({"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"p1"}})",
      "p1");
  ASSERT_TRUE(sandbox.ok());
  EXPECT_TRUE(sandbox->is_sandbox);
  EXPECT_EQ(sandbox->sandbox_id, "p1");

  auto app = ParsePodInfo(
      R"({"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"p1",
          "io.kubernetes.cri.image-name":"docker.io/library/nginx:1","io.cloak.image":"ignored"}})",
      "c2");
  ASSERT_TRUE(app.ok());
  EXPECT_FALSE(app->is_sandbox);
  EXPECT_EQ(app->sandbox_id, "p1");
  EXPECT_EQ(app->image, "docker.io/library/nginx:1");

  EXPECT_FALSE(ParsePodInfo("{not json", "x").ok());
  EXPECT_FALSE(ParsePodInfo(R"({"annotations":{"io.kubernetes.cri.container-type":"container"}})",
                            "x")
                   .ok());
  EXPECT_TRUE(ParsePodInfo(R"({"ociVersion":"1.0.2"})", "x").ok());
}

TEST(PodInfoTest, NetworkNamespaceAndResolvConf) {
  // A CRI sandbox on a CNI network, as containerd 1.6 writes it.
  auto pod = ParsePodInfo(R"({"linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},
      {"type":"network","path":"/var/run/netns/cni-1234"}]},
      "mounts":[{"destination":"/dev/shm","source":"/run/x/shm","type":"bind"},
      {"destination":"/etc/resolv.conf","source":"/var/lib/x/sandboxes/p1/resolv.conf"}]})",
                          "p1");
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->netns_path, "/var/run/netns/cni-1234");
  EXPECT_EQ(pod->resolv_conf_source, "/var/lib/x/sandboxes/p1/resolv.conf");
  // A new, empty namespace (ctr run) or the host's (no entry): no path.
  auto fresh = ParsePodInfo(R"({"linux":{"namespaces":[{"type":"network"}]}})", "c");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->netns_path, "");
  auto host = ParsePodInfo(R"({"linux":{"namespaces":[{"type":"pid"}]}})", "c");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->netns_path, "");
  // Wrong types are ignored, never thrown.
  for (const char* bad : {R"({"linux":{"namespaces":[{"type":7,"path":[]}]}})",
                          R"({"linux":{"namespaces":{"type":"network"}}})",
                          R"({"linux":"x","mounts":[1,{"destination":{}}]})",
                          R"({"mounts":[{"destination":"/etc/resolv.conf","source":5}]})"}) {
    auto p = ParsePodInfo(bad, "c");
    ASSERT_TRUE(p.ok()) << bad << ": " << p.status();
    EXPECT_EQ(p->netns_path, "") << bad;
    EXPECT_EQ(p->resolv_conf_source, "") << bad;
  }
}

TEST(SandboxFactoryTest, PodNetworkKeepsConfiguredInsecureRegistriesAsGiven) {
  EXPECT_THAT(GuestInsecureRegistries({"10.88.77.1:5000", "127.0.0.1:5000"}, "127.0.0.1:6000/x",
                                      /*host_loopback=*/false),
              ElementsAre("10.88.77.1:5000", "127.0.0.1:5000"));
}

TEST(DeleteResponseTest, EncodesFieldsContainerdReads) {
  const absl::Time t = absl::FromUnixSeconds(1700000000) + absl::Nanoseconds(5);
  std::string bytes = EncodeDeleteResponse(42, 137, t);
  containerd::task::v2::DeleteResponse decoded;
  ASSERT_TRUE(decoded.ParseFromString(bytes));
  EXPECT_EQ(decoded.pid(), 42u);
  EXPECT_EQ(decoded.exit_status(), 137u);
  EXPECT_EQ(decoded.exited_at().seconds(), 1700000000);
  EXPECT_EQ(decoded.exited_at().nanos(), 5);
  // Wire bytes: field 1 varint 42, field 2 varint 137, field 3 message.
  EXPECT_EQ(bytes.substr(0, 5), std::string("\x08\x2a\x10\x89\x01", 5));
}

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

TEST(StdioUriTest, Table) {
  auto none = ParseStdioUri("");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->kind, StdioTarget::Kind::kNone);
  auto fifo = ParseStdioUri("/run/containerd/fifo/1/c-stdout");
  ASSERT_TRUE(fifo.ok());
  EXPECT_EQ(fifo->kind, StdioTarget::Kind::kFifo);
  EXPECT_EQ(fifo->path, "/run/containerd/fifo/1/c-stdout");
  auto file = ParseStdioUri("file:///var/log/c.log");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->kind, StdioTarget::Kind::kFile);
  EXPECT_EQ(file->path, "/var/log/c.log");
  auto bin = ParseStdioUri("binary:///usr/bin/logger?id=a%20b&mode=x&id=dup");
  ASSERT_TRUE(bin.ok());
  EXPECT_EQ(bin->kind, StdioTarget::Kind::kBinary);
  EXPECT_EQ(bin->path, "/usr/bin/logger");
  EXPECT_THAT(bin->args, ElementsAre("id", "a b", "mode", "x"));
  EXPECT_FALSE(ParseStdioUri("http://x/y").ok());
  EXPECT_FALSE(ParseStdioUri("file://relative").ok());
}

TEST(SandboxConfigTest, VmConfigFromConfig) {
  config::Config cfg = config::DefaultConfig();
  cfg.hypervisor.memory_mib = 1024;
  cfg.hypervisor.kernel_params = "foo=1";
  hypervisor::HostCapabilities caps;  // no vhost-vsock: auto resolves to serial
  auto vm = BuildVmConfig(cfg, "sb1", "/run/cloak/sb1", caps, UserModeNetwork());
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_EQ(vm->memory_mib, 1024);
  EXPECT_EQ(vm->qmp_socket_path, "/run/cloak/sb1/qmp.sock");
  EXPECT_EQ(vm->serial_socket_path, "/run/cloak/sb1/agent.sock");
  EXPECT_EQ(vm->console_log_path, "/run/cloak/sb1/console.log");
  EXPECT_THAT(vm->kernel_cmdline, HasSubstr("console=ttyS0"));
  // The channel is resolved before the command line is built.
  EXPECT_EQ(vm->agent_channel, hypervisor::AgentChannel::kSerial);
  EXPECT_THAT(vm->kernel_cmdline, HasSubstr("cloak.channel=serial "));
  caps.vhost_vsock = true;
  auto vsock = BuildVmConfig(cfg, "sb1", "/run/cloak/sb1", caps, UserModeNetwork());
  ASSERT_TRUE(vsock.ok()) << vsock.status();
  EXPECT_EQ(vsock->agent_channel, hypervisor::AgentChannel::kVsock);
  EXPECT_THAT(vsock->kernel_cmdline, HasSubstr("cloak.channel=vsock "));
  EXPECT_THAT(vsock->kernel_cmdline, Not(HasSubstr("insecure")));
  // Class-level constants only (shim/hypervisor/guest_cmdline.h): the
  // per-pod agent settings are in the init-data.
  EXPECT_EQ(vm->kernel_cmdline,
            std::string(kBaseKernelCmdline) +
                " cloak.channel=serial cloak.port=1024 cloak.tee=none foo=1");
  EXPECT_EQ(vm->kernel_cmdline, hypervisor::GuestKernelCmdline(cfg, hypervisor::AgentChannel::kSerial));
  for (const char* per_pod : {"cloak.log", "cloak.max_downloads", "cloak.insecure_registries"}) {
    EXPECT_THAT(vm->kernel_cmdline, Not(HasSubstr(per_pod)));
  }
  // The TEE class is on it, for the agent's plain-http rule.
  cfg.tee.type = config::TeeType::kSnp;
  EXPECT_THAT(hypervisor::GuestKernelCmdline(cfg, hypervisor::AgentChannel::kVsock),
              HasSubstr(" cloak.channel=vsock cloak.port=1024 cloak.tee=snp "));
  cfg.tee.type = config::TeeType::kNone;
  EXPECT_EQ(hypervisor::ClassAgentChannel(config::AgentChannel::kAuto, false),
            config::AgentChannel::kSerial);
  EXPECT_EQ(hypervisor::ClassAgentChannel(config::AgentChannel::kAuto, true),
            config::AgentChannel::kVsock);
  EXPECT_EQ(hypervisor::ClassAgentChannel(config::AgentChannel::kSerial, true),
            config::AgentChannel::kSerial);
  EXPECT_EQ(vm->tee, hypervisor::TeeType::kNone);
  EXPECT_TRUE(vm->user_network);
  // The agent policy is on unless the runtime class turns it off, on the
  // (measured) command line.
  EXPECT_THAT(vm->kernel_cmdline, ::testing::Not(HasSubstr("cloak.policy")));
  cfg.agent.allow_all_policy = true;
  auto open_vm = BuildVmConfig(cfg, "sb1", "/run/cloak/sb1", caps, UserModeNetwork());
  ASSERT_TRUE(open_vm.ok()) << open_vm.status();
  EXPECT_THAT(open_vm->kernel_cmdline, HasSubstr(" cloak.policy=allow-all"));
  cfg.agent.allow_all_policy = false;

  cfg.runtime.state_dir = "/" + std::string(120, 'x');
  EXPECT_FALSE(
      BuildVmConfig(cfg, "sb1", SandboxStateDir(cfg, "sb1"), caps, UserModeNetwork()).ok());
}

TEST(SandboxConfigTest, InsecureRegistries) {
  EXPECT_THAT(GuestInsecureRegistries({"127.0.0.1:5000", "reg.local:80"}, "localhost:5000/x"),
              ElementsAre("10.0.2.2:5000", "reg.local:80"));
  EXPECT_THAT(GuestInsecureRegistries({}, "127.0.0.1:6000/busybox"), ElementsAre("10.0.2.2:6000"));
  EXPECT_TRUE(GuestInsecureRegistries({}, "docker.io/x").empty());
}


TEST(InitDataTest, AbsentIsNone) {
  absl::StatusOr<std::optional<InitData>> d = InitDataFromAnnotations({{"io.cloak.image", "x"}});
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->has_value());
}

TEST(InitDataTest, DecodesPlainAndGzipAndTheKataName) {
  const std::string doc =
      "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nkbs_url = \"http://10.0.2.2:8080\"\n";
  const std::string want_hex = "ef26773e4ed2a8ad01dca59340533cdfff3e10e04d9946a77acb199a9f890f26";
  const std::string plain =
      "dmVyc2lvbiA9ICIwLjEuMCIKYWxnb3JpdGhtID0gInNoYTI1NiIKW2RhdGFdCmtic191cmwgPSAiaHR0cDovLzEwLj"
      "AuMi4yOjgwODAiCg==";
  const std::string gzipped =
      "H4sIAAAAAAAAAytLLSrOzM9TsFVQMtAz1DNQ4krMSc8vyizJyAWJFWckGpmaKXFFpySWJMZyZScVx5cW5YBkMkpKCq"
      "z09Q0N9Az0jPSMrCwMLICaAReZfphPAAAA";
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"io.cloak.initdata", plain},
           {"io.cloak.initdata", gzipped},
           {"io.katacontainers.config.hypervisor.cc_init_data", plain}}) {
    absl::StatusOr<std::optional<InitData>> d = InitDataFromAnnotations({{name, value}});
    ASSERT_TRUE(d.ok()) << d.status();
    ASSERT_TRUE(d->has_value());
    EXPECT_EQ((*d)->document, doc);
    EXPECT_EQ((*d)->algorithm, "sha256");
    EXPECT_EQ(absl::BytesToHexString((*d)->digest), want_hex);
  }
}

TEST(InitDataTest, RefusesBadValuesNamingTheAnnotation) {
  auto b64 = [](const std::string& s) { return absl::Base64Escape(s); };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"!!not base64!!", "not base64"},
      {"", "empty value"},
      {b64(std::string("\x1f\x8b\x08\x00garbage", 12)), "gzip"},
      {b64("version = \"0.1.0\"\nalgorithm = \n"), "not valid TOML"},
      {b64("version = \"9\"\nalgorithm = \"sha256\"\n"), "version must be"},
      {b64("version = \"0.1.0\"\nalgorithm = \"md5\"\n"), "algorithm must be"},
      {b64("version = \"0.1.0\"\nalgorithm = \"sha384\"\ndata = 3\n"), "data must be a table"},
      {b64(std::string(300 * 1024, '#')), "larger than"},
  };
  for (const auto& [value, want] : cases) {
    absl::StatusOr<std::optional<InitData>> d = InitDataFromAnnotations({{"io.cloak.initdata", value}});
    ASSERT_FALSE(d.ok()) << want;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(d.status().message(), HasSubstr("io.cloak.initdata")) << want;
    EXPECT_THAT(d.status().message(), HasSubstr(want)) << d.status();
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
