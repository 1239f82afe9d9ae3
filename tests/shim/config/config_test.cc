#include "shim/config/config.h"

#include <sys/stat.h>

#include <fstream>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#ifndef CLOAK_EXAMPLE_CONFIG
#error "CLOAK_EXAMPLE_CONFIG must name config/config.toml"
#endif

namespace cloak::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kFullFile[] = R"(
[runtime]
log_level = "debug"
state_dir = "/var/run/cloak-test"
annotation_allowlist = ["io.cloak.hypervisor.vcpus", "io.cloak.agent.boot_timeout"]

[hypervisor]
driver = "libvirt"
qemu_path = "/opt/qemu/bin/qemu-system-x86_64"
libvirt_uri = "qemu+ssh://host/system"
machine = "pc"
accel = "kvm"
cpu_model = "EPYC-v4"
memory_mib = 4096
vcpus = 4
kernel = "/opt/cloak/vmlinuz"
initrd = "/opt/cloak/initrd.img"
kernel_params = "quiet agent.log=debug"
firmware = "/opt/cloak/OVMF.amdsev.fd"
console_log = true

[tee]
type = "snp"

[tee.snp]
cbitpos = 47
reduced_phys_bits = 5
policy = 0xB0000
kernel_hashes = false

[tee.tdx]
quote_generation_socket = "vsock:2:4050"
sept_ve_disable = false

[agent]
channel = "serial"
vsock_port = 2048
boot_timeout = "2m"
request_timeout = "1m30s"
log_level = "warn"
allow_all_policy = true

[kbs]
url = "https://kbs.example:8080"
ca_file = "/etc/cloak/kbs-ca.pem"

[image]
pull_timeout = "30m"
max_concurrent_downloads = 8
insecure_registries = ["localhost:5000", "registry.local"]
)";

TEST(ParseConfig, FullFileSetsEveryKey) {
  absl::StatusOr<Config> c = ParseConfig(kFullFile, "full.toml");
  ASSERT_TRUE(c.ok()) << c.status();

  Config want;
  want.runtime.log_level = "debug";
  want.runtime.state_dir = "/var/run/cloak-test";
  want.runtime.annotation_allowlist = {"io.cloak.hypervisor.vcpus", "io.cloak.agent.boot_timeout"};
  want.hypervisor.driver = HypervisorDriver::kLibvirt;
  want.hypervisor.qemu_path = "/opt/qemu/bin/qemu-system-x86_64";
  want.hypervisor.libvirt_uri = "qemu+ssh://host/system";
  want.hypervisor.machine = "pc";
  want.hypervisor.accel = Accel::kKvm;
  want.hypervisor.cpu_model = "EPYC-v4";
  want.hypervisor.memory_mib = 4096;
  want.hypervisor.vcpus = 4;
  want.hypervisor.kernel = "/opt/cloak/vmlinuz";
  want.hypervisor.initrd = "/opt/cloak/initrd.img";
  want.hypervisor.kernel_params = "quiet agent.log=debug";
  want.hypervisor.firmware = "/opt/cloak/OVMF.amdsev.fd";
  want.tee.type = TeeType::kSnp;
  want.tee.snp.cbitpos = 47;
  want.tee.snp.reduced_phys_bits = 5;
  want.tee.snp.policy = 0xB0000;
  want.tee.snp.kernel_hashes = false;
  want.tee.tdx.quote_generation_socket = "vsock:2:4050";
  want.tee.tdx.sept_ve_disable = false;
  want.agent.channel = AgentChannel::kSerial;
  want.agent.vsock_port = 2048;
  want.agent.boot_timeout = absl::Minutes(2);
  want.agent.request_timeout = absl::Seconds(90);
  want.agent.log_level = "warn";
  want.agent.allow_all_policy = true;
  want.kbs.url = "https://kbs.example:8080";
  want.kbs.ca_file = "/etc/cloak/kbs-ca.pem";
  want.image.pull_timeout = absl::Minutes(30);
  want.image.max_concurrent_downloads = 8;
  want.image.insecure_registries = {"localhost:5000", "registry.local"};
  EXPECT_TRUE(*c == want);
  // Every member was changed from its default, so a key the parser forgot
  // to wire up shows here.
  EXPECT_FALSE(c->runtime == DefaultConfig().runtime);
  EXPECT_FALSE(c->hypervisor == DefaultConfig().hypervisor);
  EXPECT_FALSE(c->tee == DefaultConfig().tee);
  EXPECT_FALSE(c->agent == DefaultConfig().agent);
  EXPECT_FALSE(c->kbs == DefaultConfig().kbs);
  EXPECT_FALSE(c->image == DefaultConfig().image);
}

TEST(ParseConfig, EmptyFileIsDefaults) {
  absl::StatusOr<Config> c = ParseConfig("", "empty.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(*c == DefaultConfig());
  EXPECT_EQ(c->hypervisor.memory_mib, 2048);
  EXPECT_EQ(c->hypervisor.vcpus, 1);
  EXPECT_EQ(c->hypervisor.accel, Accel::kAuto);
  EXPECT_EQ(c->tee.type, TeeType::kNone);
  EXPECT_EQ(c->agent.vsock_port, 1024);
  EXPECT_EQ(c->runtime.state_dir, "/run/cloak");
  EXPECT_EQ(c->hypervisor.kernel, "/usr/local/share/cloak/vmlinuz");
}

TEST(ParseConfig, PartialFileKeepsOtherDefaults) {
  absl::StatusOr<Config> c =
      ParseConfig("hypervisor.vcpus = 2\n[agent]\nchannel = \"vsock\"\n", "partial.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  Config want;
  want.hypervisor.vcpus = 2;
  want.agent.channel = AgentChannel::kVsock;
  EXPECT_TRUE(*c == want);
}

TEST(ParseConfig, ExampleFileEqualsDefaults) {
  absl::StatusOr<Config> c = LoadConfig(CLOAK_EXAMPLE_CONFIG);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(*c == DefaultConfig())
      << "config/config.toml and the defaults in shim/config/config.h disagree";
}

TEST(ParseConfig, ExampleFileDocumentsEveryKey) {
  // Each key appears, set, under its own [section] header; together with the
  // equality above, every default is written down in the example.
  std::ifstream in(CLOAK_EXAMPLE_CONFIG);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(text.empty());
  ASSERT_GE(ConfigKeys().size(), 30u);
  for (const std::string& key : ConfigKeys()) {
    size_t dot = key.rfind('.');
    const std::string header = absl::StrCat("\n[", key.substr(0, dot), "]\n");
    const std::string line = absl::StrCat("\n", key.substr(dot + 1), " = ");
    size_t at = text.find(header);
    ASSERT_NE(at, std::string::npos) << header;
    size_t next = text.find("\n[", at + header.size());
    size_t found = text.find(line, at);
    EXPECT_TRUE(found != std::string::npos && found < next)
        << key << " is not set under " << header << "in config/config.toml";
  }
}

struct BadCase {
  const char* name;
  const char* text;
  const char* key;       // dotted key the message must name
  const char* line;      // ":<line>:" the message must contain
  const char* expected;  // a further part of the message (allowed values etc.)
};

// Names the case instead of dumping its bytes in test names.
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadValueTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadValueTest, IsInvalidArgumentNamingKeyFileAndLine) {
  const BadCase& bc = GetParam();
  absl::StatusOr<Config> c = ParseConfig(bc.text, "/etc/cloak/bad.toml");
  ASSERT_FALSE(c.ok()) << bc.text;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()),
              AllOf(HasSubstr(bc.key), HasSubstr(absl::StrCat("/etc/cloak/bad.toml", bc.line)),
                    HasSubstr(bc.expected)));
}

INSTANTIATE_TEST_SUITE_P(
    ParseConfig, BadValueTest,
    ::testing::Values(
        BadCase{"UnknownAccel", "[hypervisor]\naccel = \"fast\"\n", "hypervisor.accel",
                ":2:", R"("auto", "kvm", "tcg")"},
        BadCase{"NegativeMemory", "[hypervisor]\nmemory_mib = -1\n", "hypervisor.memory_mib",
                ":2:", "from 128 to"},
        BadCase{"ZeroMemory", "[hypervisor]\n\nmemory_mib = 0\n", "hypervisor.memory_mib",
                ":3:", "got 0"},
        BadCase{"ZeroVcpus", "[hypervisor]\nvcpus = 0\n", "hypervisor.vcpus",
                ":2:", "from 1 to 288"},
        BadCase{"UnknownTee", "[tee]\ntype = \"sgx\"\n", "tee.type",
                ":2:", R"("none", "snp", "tdx")"},
        BadCase{"TeeNotATable", "tee = \"sgx\"\n", "tee", ":1:", "expected a table [tee]"},
        BadCase{"UnknownKey", "[hypervisor]\nvcpus = 1\nmemory = 512\n", "hypervisor.memory",
                ":3:", "known keys in [hypervisor]: driver"},
        BadCase{"UnknownSection", "[hypervisr]\nvcpus = 1\n", "hypervisr",
                ":1:", "known keys in the top level: runtime, hypervisor"},
        BadCase{"UnknownNestedKey", "[tee.snp]\nvcek = true\n", "tee.snp.vcek", ":2:", "cbitpos"},
        BadCase{"WrongTypeString", "[hypervisor]\nmemory_mib = \"2048\"\n", "hypervisor.memory_mib",
                ":2:", "expected an integer from 128 to 4194304, got a string"},
        BadCase{"WrongTypeFloat", "[hypervisor]\nvcpus = 1.5\n", "hypervisor.vcpus",
                ":2:", "got a float"},
        BadCase{"WrongTypeBool", "[hypervisor]\nconsole_log = \"yes\"\n", "hypervisor.console_log",
                ":2:", "expected true or false"},
        BadCase{"BadDriver", "[hypervisor]\ndriver = \"firecracker\"\n", "hypervisor.driver",
                ":2:", R"("qemu", "libvirt")"},
        BadCase{"RelativeKernel", "[hypervisor]\nkernel = \"vmlinuz\"\n", "hypervisor.kernel",
                ":2:", "absolute path"},
        BadCase{"BadDuration", "[agent]\nboot_timeout = \"soon\"\n", "agent.boot_timeout",
                ":2:", "duration"},
        BadCase{"ZeroDuration", "[agent]\nrequest_timeout = \"0s\"\n", "agent.request_timeout",
                ":2:", "positive"},
        BadCase{"DurationAsInteger", "[agent]\nboot_timeout = 60\n", "agent.boot_timeout",
                ":2:", "got an integer"},
        BadCase{"BadChannel", "[agent]\nchannel = \"tcp\"\n", "agent.channel",
                ":2:", R"("auto", "vsock", "serial")"},
        BadCase{"BadLogLevel", "[runtime]\nlog_level = \"verbose\"\n", "runtime.log_level",
                ":2:", R"("trace", "debug", "info", "warn", "error", "off")"},
        BadCase{"NotOverridable",
                "[runtime]\nannotation_allowlist = [\n  \"io.cloak.hypervisor.qemu_path\",\n]\n",
                "runtime.annotation_allowlist", ":2:", "element 0 (line 3)"},
        BadCase{"SnpPolicyBit17", "[tee.snp]\npolicy = 0x10000\n", "tee.snp.policy",
                ":2:", "bit 17"},
        BadCase{"SnpCbitpos", "[tee.snp]\ncbitpos = 99\n", "tee.snp.cbitpos",
                ":2:", "from 32 to 63"},
        BadCase{"BadQgs", "[tee.tdx]\nquote_generation_socket = \"qgs.sock\"\n",
                "tee.tdx.quote_generation_socket", ":2:", "vsock:<cid>:<port>"},
        BadCase{"BadKbsUrl", "[kbs]\nurl = \"kbs.example\"\n", "kbs.url", ":2:", "https://"},
        BadCase{"BadRegistry", "[image]\ninsecure_registries = [\"http://r:5000\"]\n",
                "image.insecure_registries", ":2:", "without a scheme"},
        BadCase{"TooManyDownloads", "[image]\nmax_concurrent_downloads = 0\n",
                "image.max_concurrent_downloads", ":2:", "from 1 to 16"},
        BadCase{"TeeNeedsKvm",
                "[hypervisor]\naccel = \"tcg\"\nfirmware = \"/x/OVMF.fd\"\n[tee]\ntype = \"snp\"\n",
                "hypervisor.accel", ":2:", "cannot run a TEE"},
        BadCase{"TeeNeedsFirmware", "[tee]\ntype = \"tdx\"\n", "hypervisor.firmware", " (not set)",
                "OVMF"},
        BadCase{"ConsoleLogOff", "[hypervisor]\nconsole_log = false\n", "hypervisor.console_log",
                ":2:", "not supported"},
        BadCase{"SimulatedSpWithRealTee",
                "[hypervisor]\nfirmware = \"/x/OVMF.fd\"\n[tee]\ntype = \"snp\"\n"
                "simulated_snp_chain = \"/var/lib/cloak/simsp\"\n",
                "tee.simulated_snp_chain", ":5:", "dev fallback only"},
        BadCase{"SyntaxError", "[hypervisor]\nvcpus = = 2\n", "invalid TOML", ":2:", ""}),
    [](const ::testing::TestParamInfo<BadCase>& param) { return std::string(param.param.name); });

TEST(LoadConfig, MissingFileIsNotFoundNamingFile) {
  absl::StatusOr<Config> c = LoadConfig("/nonexistent/cloak/config.toml");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("/nonexistent/cloak/config.toml"));
}

TEST(LoadConfig, ErrorNamesTheFilePath) {
  absl::StatusOr<TempDir> dir = TempDir::Create("cloak-config-");
  ASSERT_TRUE(dir.ok()) << dir.status();
  std::string path = dir->Join("config.toml");
  std::ofstream(path) << "[hypervisor]\n# comment\nvcpus = 0\n";
  absl::StatusOr<Config> c = LoadConfig(path);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()),
              AllOf(HasSubstr(absl::StrCat(path, ":3:")), HasSubstr("hypervisor.vcpus")));
}

TEST(LoadConfig, DirectoryIsInvalid) {
  absl::StatusOr<TempDir> dir = TempDir::Create("cloak-config-");
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<Config> c = LoadConfig(dir->path().string());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConfigLookup, OrderExplicitThenSearchPathThenDefaults) {
  absl::StatusOr<TempDir> dir = TempDir::Create("cloak-config-");
  ASSERT_TRUE(dir.ok()) << dir.status();
  const std::string etc = dir->Join("etc.toml");
  const std::string data = dir->Join("data.toml");
  const std::string mine = dir->Join("mine.toml");
  const std::vector<std::string> search = {etc, data};

  // Nothing exists: built-in defaults.
  absl::StatusOr<std::string> p = ResolveConfigPath("", search);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, "");

  std::ofstream(data) << "";
  p = ResolveConfigPath("", search);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, data);

  std::ofstream(etc) << "";
  p = ResolveConfigPath("", search);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, etc);

  std::ofstream(mine) << "";
  p = ResolveConfigPath(mine, search);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, mine);
}

TEST(ConfigLookup, MissingExplicitPathIsNotFoundNotAFallback) {
  absl::StatusOr<std::string> p = ResolveConfigPath("/nonexistent/cloak-snp.toml", {});
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(p.status().message()),
              AllOf(HasSubstr("/nonexistent/cloak-snp.toml"), HasSubstr("ConfigPath")));
}

TEST(ConfigLookup, DefaultSearchPath) {
  EXPECT_EQ(SysconfConfigPath(), "/etc/cloak/config.toml");
  EXPECT_THAT(DataDirConfigPath(), HasSubstr("/share/cloak/config.toml"));
}

TEST(ConfigLookup, LoadFromSearchPathWithExplicitFile) {
  absl::StatusOr<TempDir> dir = TempDir::Create("cloak-config-");
  ASSERT_TRUE(dir.ok()) << dir.status();
  const std::string path = dir->Join("snp.toml");
  std::ofstream(path) << "[hypervisor]\nmemory_mib = 1024\n";
  absl::StatusOr<ConfigFile> f = LoadConfigFromSearchPath(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->path, path);
  EXPECT_EQ(f->config.hypervisor.memory_mib, 1024);
}

TEST(ApplyAnnotations, AllowlistedKeysOverride) {
  Config base;
  base.runtime.annotation_allowlist = {"io.cloak.hypervisor.memory_mib",
                                       "io.cloak.hypervisor.vcpus", "io.cloak.agent.boot_timeout"};
  absl::StatusOr<Config> c =
      ApplyAnnotations(base, {{"io.cloak.hypervisor.memory_mib", "4096"},
                              {"io.cloak.hypervisor.vcpus", "2"},
                              {"io.cloak.agent.boot_timeout", "2m"},
                              // Not configuration: ignored here.
                              {"io.cloak.image", "docker.io/library/busybox:latest"},
                              {"io.cloak.policy", "cGFja2FnZQ=="},
                              {"io.kubernetes.cri.sandbox-id", "abc"}});
  ASSERT_TRUE(c.ok()) << c.status();
  Config want = base;
  want.hypervisor.memory_mib = 4096;
  want.hypervisor.vcpus = 2;
  want.agent.boot_timeout = absl::Minutes(2);
  EXPECT_TRUE(*c == want);
  // The input is untouched.
  EXPECT_EQ(base.hypervisor.memory_mib, 2048);
}

TEST(ApplyAnnotations, NoAnnotationsIsIdentity) {
  absl::StatusOr<Config> c = ApplyAnnotations(DefaultConfig(), {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(*c == DefaultConfig());
}

TEST(ApplyAnnotations, KeyNotOnAllowlistIsPermissionDenied) {
  // Overridable in principle, but this host did not allow it.
  absl::StatusOr<Config> c =
      ApplyAnnotations(DefaultConfig(), {{"io.cloak.agent.boot_timeout", "5m"}});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(c.status().message()), AllOf(HasSubstr("io.cloak.agent.boot_timeout"),
                                                       HasSubstr("runtime.annotation_allowlist")));
}

TEST(ApplyAnnotations, HostPathsAreNeverOverridable) {
  // Even a hand-built Config listing it does not make it overridable.
  Config base;
  base.runtime.annotation_allowlist.push_back("io.cloak.hypervisor.qemu_path");
  absl::StatusOr<Config> c =
      ApplyAnnotations(base, {{"io.cloak.hypervisor.qemu_path", "/tmp/evil"}});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("io.cloak.hypervisor.qemu_path"));

  c = ApplyAnnotations(DefaultConfig(), {{"io.cloak.tee.type", "none"}});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(ApplyAnnotations, BadValueIsInvalidArgument) {
  for (const auto& [name, value] :
       std::map<std::string, std::string>{{"io.cloak.hypervisor.memory_mib", "-1"},
                                          {"io.cloak.hypervisor.memory_mib", "lots"},
                                          {"io.cloak.hypervisor.vcpus", "0"}}) {
    absl::StatusOr<Config> c = ApplyAnnotations(DefaultConfig(), {{name, value}});
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << name << "=" << value;
    EXPECT_THAT(std::string(c.status().message()), AllOf(HasSubstr(name), HasSubstr(value)));
  }
}

TEST(ApplyAnnotations, UnknownConfigKeyIsInvalidArgument) {
  absl::StatusOr<Config> c =
      ApplyAnnotations(DefaultConfig(), {{"io.cloak.hypervisor.memory", "4096"}});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()),
              AllOf(HasSubstr("io.cloak.hypervisor.memory"), HasSubstr("memory_mib")));
}

TEST(ApplyAnnotations, OverridableKeysAreAllKnownAndParse) {
  Config base;
  base.runtime.annotation_allowlist = OverridableKeys();
  // The allowlist of every overridable key must itself be a valid file.
  std::string toml = "[runtime]\nannotation_allowlist = [";
  for (const std::string& k : OverridableKeys()) absl::StrAppend(&toml, "\"", k, "\",");
  toml += "]\n";
  absl::StatusOr<Config> parsed = ParseConfig(toml, "allow.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->runtime.annotation_allowlist, OverridableKeys());
}

TEST(ConfigNames, EnumNamesMatchFileSpelling) {
  EXPECT_EQ(HypervisorDriverName(HypervisorDriver::kLibvirt), "libvirt");
  EXPECT_EQ(AccelName(Accel::kTcg), "tcg");
  EXPECT_EQ(TeeTypeName(TeeType::kSnp), "snp");
  EXPECT_EQ(AgentChannelName(AgentChannel::kSerial), "serial");
}

}  // namespace
}  // namespace cloak::config
