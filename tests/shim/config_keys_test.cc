// Every key of config/config.toml either changes what the shim builds or is
// refused with an error naming it: no key is accepted and then ignored.
//
// The table has one row per key. A row gives a base file and the same file
// with the key set to another value; Observe() renders everything the
// config feeds, as pure functions compute it (QEMU argv, the guest kernel
// command line and what cloak-agent parses from it, the sandbox's timeouts
// and CreateSandbox annotations, the shim's log level, the init-data a pod
// without its own gets, annotation overrides). An "effect" row must change
// that rendering (and show `expect`); a "refused" row must fail, naming
// `expect`. The rows are checked against the keys config/config.toml sets.
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "agent/init.h"
#include "shim/config/config.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/containerd_images.h"
#include "nlohmann/json.hpp"
#include "shim/host_config.h"
#include "shim/hypervisor/libvirt/domain_xml.h"
#include "shim/hypervisor/host_capabilities.h"
#include "shim/hypervisor/qemu/qemu_args.h"
#include "shim/sandbox_factory.h"

#ifndef CLOAK_EXAMPLE_CONFIG
#error "CLOAK_EXAMPLE_CONFIG must name config/config.toml"
#endif

namespace cloak::shim {
namespace {

namespace hv = ::cloak::shim::hypervisor;
using ::testing::HasSubstr;
using ::testing::Not;

// A host that can run everything (KVM, SNP, TDX, vsock, a new QEMU), so the
// rendering depends on the config alone.
hv::HostCapabilities FakeHost() {
  hv::HostCapabilities caps;
  caps.kvm_present = caps.kvm_openable = true;
  caps.sev_snp = caps.sev_device = caps.tdx = caps.vhost_vsock = true;
  caps.qemu.found = true;
  caps.qemu.version = {10, 1, 0};
  caps.qemu.has_sev_guest = caps.qemu.has_sev_snp_guest = caps.qemu.has_tdx_guest = true;
  return caps;
}

constexpr char kSandbox[] = "sb1";
constexpr char kImage[] = "127.0.0.1:5000/busybox:1";

// Everything the configuration reaches, one line each.
std::string Observe(const config::Config& c) {
  std::vector<std::string> out;
  const std::string state_dir = SandboxStateDir(c, kSandbox);
  absl::StatusOr<hv::VmConfig> vm = BuildVmConfig(c, kSandbox, state_dir, FakeHost(), UserModeNetwork());
  if (!vm.ok()) return absl::StrCat("refused: ", vm.status().ToString());
  out.push_back(absl::StrCat("cmdline: ", vm->kernel_cmdline));
  out.push_back(absl::StrCat("boot_timeout: ", absl::FormatDuration(vm->boot_timeout)));
  if (c.hypervisor.driver == config::HypervisorDriver::kLibvirt) {
    // The libvirt driver's domain, and the connection it is created on.
    absl::StatusOr<std::string> xml =
        hv::BuildDomainXml(*vm, config::Accel::kTcg, config::AgentChannel::kSerial);
    out.push_back(xml.ok() ? absl::StrCat("libvirt domain: ", xml->substr(0, xml->find('>') + 1))
                           : absl::StrCat("libvirt refused: ", xml.status().ToString()));
    out.push_back(absl::StrCat("libvirt_uri: ", vm->libvirt_uri));
  }
  absl::StatusOr<std::vector<std::string>> args = hv::BuildQemuArgs(*vm, FakeHost());
  out.push_back(args.ok() ? absl::StrCat("qemu: ", hv::QemuArgsToString(*args))
                          : absl::StrCat("qemu refused: ", args.status().ToString()));
  // What cloak-agent makes of the command line (agent/init.h).
  absl::StatusOr<::cloak::agent::KernelCmdline> agent =
      ::cloak::agent::ParseKernelCmdline(vm->kernel_cmdline);
  out.push_back(agent.ok() ? absl::StrCat("agent: channel=", agent->channel, " port=", agent->port,
                                          " log=", agent->log_level,
                                          " max_downloads=", agent->max_downloads, " insecure=",
                                          absl::StrJoin(agent->insecure_registries, ","))
                           : absl::StrCat("agent refused: ", agent.status().ToString()));
  SandboxRequest request;
  request.sandbox_id = kSandbox;
  request.pod.sandbox_id = kSandbox;
  request.pod.image = kImage;
  SandboxOptions sandbox = BuildSandboxOptions(c, request, state_dir, UserModeNetwork());
  std::vector<std::string> annotations;
  for (const auto& [k, v] : sandbox.annotations) annotations.push_back(absl::StrCat(k, "=", v));
  out.push_back(absl::StrCat("sandbox: request_timeout=", absl::FormatDuration(sandbox.request_timeout),
                             " health_interval=", absl::FormatDuration(sandbox.health_interval),
                             " health_timeout=", absl::FormatDuration(sandbox.health_timeout),
                             " console_log_max_bytes=", sandbox.console_log_max_bytes,
                             " pull_timeout=", absl::FormatDuration(sandbox.pull_timeout),
                             " annotations=", absl::StrJoin(annotations, ";")));
  out.push_back(absl::StrCat("shim log: ", ShimLogLevel(c.runtime.log_level, false)));
  // A pod whose limits say 256 MiB (shim/vm_sizing.h).
  PodInfo limited;
  limited.resources.memory_limit_bytes = int64_t{256} << 20;
  limited.resources.source = "test";
  const std::optional<VmSize> size = PodVmSize(c, limited);
  out.push_back(size.has_value() ? absl::StrCat("pod of 256Mi: ", size->explanation)
                                 : std::string("pod of 256Mi: the class's fixed size"));
  // The agent's per-pod settings travel in the init-data ([data.agent]).
  absl::StatusOr<std::optional<InitData>> initdata = PodInitData(
      c, {},
      GuestAgentSettingsFor(c, GuestInsecureRegistries(c.image.insecure_registries, kImage)));
  out.push_back(!initdata.ok()          ? absl::StrCat("initdata refused: ", initdata.status().ToString())
                : initdata->has_value() ? absl::StrCat("initdata: ", (*initdata)->document)
                                        : "initdata: none");
  absl::StatusOr<config::Config> overridden =
      config::ApplyAnnotations(c, {{"io.cloak.agent.boot_timeout", "99s"}});
  out.push_back(overridden.ok() ? absl::StrCat("annotation boot_timeout: ",
                                               absl::FormatDuration(overridden->agent.boot_timeout))
                                : absl::StrCat("annotation boot_timeout denied: ",
                                               absl::StatusCodeToString(overridden.status().code())));
  return absl::StrJoin(out, "\n");
}

enum class Kind { kEffect, kRefused };

struct KeyCase {
  const char* key;
  // TOML without and with the key set ("@CA@" is a PEM file of the test).
  const char* base;
  const char* with;
  Kind kind;
  // kEffect: shown with the key and not without it ("" when the effect is
  // an absence); kRefused: part of the error.
  const char* expect;
};

constexpr char kSnp[] = "[hypervisor]\nfirmware = \"/opt/fw/OVMF.fd\"\n[tee]\ntype = \"snp\"\n";
constexpr char kTdx[] = "[hypervisor]\nfirmware = \"/opt/fw/OVMF.fd\"\n[tee]\ntype = \"tdx\"\n";

const std::vector<KeyCase>& Cases() {
  static const std::vector<KeyCase>* const cases = new std::vector<KeyCase>{
      {"runtime.log_level", "", "[runtime]\nlog_level = \"warn\"\n", Kind::kEffect,
       "shim log: warn"},
      {"runtime.state_dir", "", "[runtime]\nstate_dir = \"/var/run/cloak-x\"\n", Kind::kEffect,
       "unix:/var/run/cloak-x/sb1/qmp.sock"},
      {"runtime.annotation_allowlist", "",
       "[runtime]\nannotation_allowlist = [\"io.cloak.agent.boot_timeout\"]\n", Kind::kEffect,
       "annotation boot_timeout: 1m39s"},
      {"hypervisor.driver", "", "[hypervisor]\ndriver = \"libvirt\"\n", Kind::kEffect,
       "libvirt domain: <domain type='qemu'"},
      {"hypervisor.qemu_path", "", "[hypervisor]\nqemu_path = \"/opt/q/qemu-system-x86_64\"\n",
       Kind::kEffect, "qemu: /opt/q/qemu-system-x86_64 "},
      {"hypervisor.libvirt_uri", "[hypervisor]\ndriver = \"libvirt\"\n",
       "[hypervisor]\ndriver = \"libvirt\"\nlibvirt_uri = \"qemu+ssh://h/system\"\n",
       Kind::kEffect, "libvirt_uri: qemu+ssh://h/system"},
      {"hypervisor.machine", "", "[hypervisor]\nmachine = \"pc\"\n", Kind::kEffect,
       "-machine pc "},
      {"hypervisor.accel", "", "[hypervisor]\naccel = \"tcg\"\n", Kind::kEffect, "-accel tcg"},
      {"hypervisor.cpu_model", "", "[hypervisor]\ncpu_model = \"EPYC-v4\"\n", Kind::kEffect,
       "-cpu EPYC-v4"},
      {"hypervisor.memory_mib", "", "[hypervisor]\nmemory_mib = 4096\n", Kind::kEffect,
       "-m 4096M"},
      {"hypervisor.vcpus", "", "[hypervisor]\nvcpus = 4\n", Kind::kEffect, "-smp 4"},
      {"hypervisor.pod_memory_overhead_mib", "", "[hypervisor]\npod_memory_overhead_mib = 100\n",
       Kind::kEffect, "pod of 256Mi: 356 MiB (pod limit 256 MiB + overhead 100 MiB"},
      {"hypervisor.tcg_tb_size_mib", "[hypervisor]\naccel = \"tcg\"\n",
       "[hypervisor]\naccel = \"tcg\"\ntcg_tb_size_mib = 0\n", Kind::kEffect, "-accel tcg "},
      {"hypervisor.size_from_pod", "", "[hypervisor]\nsize_from_pod = false\n", Kind::kEffect,
       "pod of 256Mi: the class's fixed size"},
      {"hypervisor.kernel", "", "[hypervisor]\nkernel = \"/opt/k/vmlinuz\"\n", Kind::kEffect,
       "-kernel /opt/k/vmlinuz"},
      {"hypervisor.initrd", "", "[hypervisor]\ninitrd = \"/opt/k/initrd.img\"\n", Kind::kEffect,
       "-initrd /opt/k/initrd.img"},
      {"hypervisor.kernel_params", "", "[hypervisor]\nkernel_params = \"cloak.test=1\"\n",
       Kind::kEffect, "cloak.test=1"},
      {"hypervisor.firmware", "", "[hypervisor]\nfirmware = \"/opt/fw/OVMF.fd\"\n",
       Kind::kEffect, "-bios /opt/fw/OVMF.fd"},
      {"hypervisor.console_log_max_bytes", "", "[hypervisor]\nconsole_log_max_bytes = 8192\n",
       Kind::kEffect, "console_log_max_bytes=8192"},
      {"hypervisor.console_log", "", "[hypervisor]\nconsole_log = false\n", Kind::kRefused,
       "hypervisor.console_log = false is not supported"},
      {"tee.type", "[hypervisor]\nfirmware = \"/opt/fw/OVMF.fd\"\n", kSnp, Kind::kEffect,
       "sev-snp-guest"},
      // Its effect (a simulated SP serving the guest) needs a process: the
      // shim e2e test covers it; a real TEE with it is refused here.
      {"tee.simulated_snp_chain", kSnp,
       "[hypervisor]\nfirmware = \"/opt/fw/OVMF.fd\"\n[tee]\ntype = \"snp\"\n"
       "simulated_snp_chain = \"/var/lib/cloak/simsp\"\n",
       Kind::kRefused, "tee.simulated_snp_chain is for the dev fallback only"},
      {"tee.snp.cbitpos", kSnp, "[hypervisor]\nfirmware = \"/opt/fw/OVMF.fd\"\n[tee]\ntype = "
                                "\"snp\"\n[tee.snp]\ncbitpos = 47\n",
       Kind::kEffect, "cbitpos=47"},
      {"tee.snp.reduced_phys_bits", kSnp,
       "[hypervisor]\nfirmware = \"/opt/fw/OVMF.fd\"\n[tee]\ntype = \"snp\"\n[tee.snp]\n"
       "reduced_phys_bits = 5\n",
       Kind::kEffect, "reduced-phys-bits=5"},
      {"tee.snp.policy", kSnp,
       "[hypervisor]\nfirmware = \"/opt/fw/OVMF.fd\"\n[tee]\ntype = \"snp\"\n[tee.snp]\n"
       "policy = 0xB0000\n",
       Kind::kEffect, "policy=0xb0000"},
      {"tee.snp.kernel_hashes", kSnp,
       "[hypervisor]\nfirmware = \"/opt/fw/OVMF.fd\"\n[tee]\ntype = \"snp\"\n[tee.snp]\n"
       "kernel_hashes = false\n",
       Kind::kEffect, "kernel-hashes=off"},
      {"tee.tdx.quote_generation_socket", kTdx,
       "[hypervisor]\nfirmware = \"/opt/fw/OVMF.fd\"\n[tee]\ntype = \"tdx\"\n[tee.tdx]\n"
       "quote_generation_socket = \"vsock:2:4050\"\n",
       Kind::kEffect, "\"type\":\"vsock\",\"cid\":\"2\",\"port\":\"4050\""},
      {"tee.tdx.sept_ve_disable", kTdx,
       "[hypervisor]\nfirmware = \"/opt/fw/OVMF.fd\"\n[tee]\ntype = \"tdx\"\n[tee.tdx]\n"
       "sept_ve_disable = false\n",
       Kind::kEffect, ""},
      {"agent.channel", "", "[agent]\nchannel = \"serial\"\n", Kind::kEffect,
       "agent: channel=serial"},
      {"agent.vsock_port", "", "[agent]\nvsock_port = 2048\n", Kind::kEffect, "port=2048"},
      {"agent.boot_timeout", "", "[agent]\nboot_timeout = \"2m\"\n", Kind::kEffect,
       "boot_timeout: 2m"},
      {"agent.request_timeout", "", "[agent]\nrequest_timeout = \"1m30s\"\n", Kind::kEffect,
       "request_timeout=1m30s"},
      {"agent.health_interval", "", "[agent]\nhealth_interval = \"45s\"\n", Kind::kEffect,
       "health_interval=45s"},
      {"agent.health_timeout", "", "[agent]\nhealth_timeout = \"7s\"\n", Kind::kEffect,
       "health_timeout=7s"},
      {"agent.log_level", "", "[agent]\nlog_level = \"off\"\n", Kind::kEffect,
       "log_level = \"off\""},
      {"agent.allow_all_policy", "", "[agent]\nallow_all_policy = true\n", Kind::kEffect,
       "cloak.policy=allow-all"},
      {"kbs.url", "", "[kbs]\nurl = \"https://kbs.example:8080\"\n", Kind::kEffect,
       "kbs_url = 'https://kbs.example:8080'"},
      {"kbs.ca_file", "[kbs]\nurl = \"https://kbs.example:8080\"\n",
       "[kbs]\nurl = \"https://kbs.example:8080\"\nca_file = \"@CA@\"\n", Kind::kEffect,
       "kbs_cert = '''\n-----BEGIN CERTIFICATE-----"},
      {"image.pull_timeout", "", "[image]\npull_timeout = \"30m\"\n", Kind::kEffect,
       "pull_timeout=30m"},
      {"image.max_concurrent_downloads", "", "[image]\nmax_concurrent_downloads = 8\n",
       Kind::kEffect, "max_downloads = 8"},
      {"image.insecure_registries", "",
       "[image]\ninsecure_registries = [\"registry.local:5000\"]\n", Kind::kEffect,
       "insecure_registries = [\"registry.local:5000\", \"10.0.2.2:5000\"]"},
  };
  return *cases;
}

// Dotted keys config/config.toml sets, in its order.
std::vector<std::string> KeysOfExampleFile() {
  std::ifstream in(CLOAK_EXAMPLE_CONFIG);
  std::vector<std::string> keys;
  std::string section, line;
  while (std::getline(in, line)) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    if (l[0] == '[') {
      section = std::string(l.substr(1, l.find(']') - 1));
      continue;
    }
    size_t eq = l.find(" = ");
    if (eq != absl::string_view::npos && l.find_first_of("\"]") > eq) {
      keys.push_back(absl::StrCat(section, ".", l.substr(0, eq)));
    }
  }
  return keys;
}

class ConfigKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-keys-", "/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    ca_ = dir_->Join("kbs-ca.pem");
    std::ofstream(ca_) << "-----BEGIN CERTIFICATE-----\nMIIBdGVzdA==\n-----END CERTIFICATE-----\n";
  }
  std::string Text(const char* toml) const { return absl::StrReplaceAll(toml, {{"@CA@", ca_}}); }

  std::optional<TempDir> dir_;
  std::string ca_;
};

TEST_F(ConfigKeysTest, TheTableCoversEveryKeyOfTheExampleFileAndOfTheParser) {
  std::set<std::string> rows;
  for (const KeyCase& c : Cases()) EXPECT_TRUE(rows.insert(c.key).second) << "twice: " << c.key;
  const std::vector<std::string> in_file = KeysOfExampleFile();
  ASSERT_GE(in_file.size(), 30u) << CLOAK_EXAMPLE_CONFIG;
  for (const std::string& key : in_file) {
    EXPECT_TRUE(rows.count(key)) << key << " is in config/config.toml but has no row here";
  }
  for (const std::string& key : config::ConfigKeys()) {
    EXPECT_TRUE(rows.count(key)) << key << " is parsed but has no row here";
  }
  EXPECT_EQ(rows.size(), config::ConfigKeys().size());
}

TEST_F(ConfigKeysTest, EveryKeyChangesBehaviourOrIsRefused) {
  for (const KeyCase& c : Cases()) {
    SCOPED_TRACE(c.key);
    absl::StatusOr<config::Config> base = config::ParseConfig(Text(c.base), "base.toml");
    ASSERT_TRUE(base.ok()) << base.status();
    const std::string without = Observe(*base);
    ASSERT_THAT(without, Not(HasSubstr("refused"))) << without;
    absl::StatusOr<config::Config> with = config::ParseConfig(Text(c.with), "with.toml");
    if (c.kind == Kind::kRefused) {
      if (!with.ok()) {
        EXPECT_THAT(std::string(with.status().message()), HasSubstr(c.expect));
        EXPECT_THAT(std::string(with.status().message()), HasSubstr(c.key));
      } else {
        const std::string seen = Observe(*with);
        EXPECT_THAT(seen, HasSubstr("refused")) << seen;
        EXPECT_THAT(seen, HasSubstr(c.expect)) << seen;
      }
      continue;
    }
    ASSERT_TRUE(with.ok()) << with.status();
    const std::string seen = Observe(*with);
    EXPECT_THAT(seen, Not(HasSubstr("refused"))) << seen;
    EXPECT_NE(seen, without) << "setting " << c.key << " changed nothing:\n" << seen;
    if (*c.expect != '\0') {
      EXPECT_THAT(seen, HasSubstr(c.expect));
      EXPECT_THAT(without, Not(HasSubstr(c.expect)));
    }
  }
}

// ---------------------------------------------------------------- pieces --

TEST(ShimLogLevelTest, DebugFlagOnlyRaisesTheLevel) {
  EXPECT_EQ(ShimLogLevel("info", false), "info");
  EXPECT_EQ(ShimLogLevel("info", true), "debug");
  EXPECT_EQ(ShimLogLevel("error", true), "debug");
  EXPECT_EQ(ShimLogLevel("trace", true), "trace");
  EXPECT_EQ(ShimLogLevel("warn", false), "warn");
}

TEST(DefaultInitDataTest, DocumentFromKbsConfig) {
  config::KbsConfig kbs;
  // Without a KBS: only the agent's settings.
  auto none = DefaultInitDataDocument(kbs, "");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none,
            "version = \"0.1.0\"\nalgorithm = \"sha384\"\n\n[data]\n\n[data.agent]\n"
            "log_level = \"info\"\nmax_downloads = 3\ninsecure_registries = []\n");
  kbs.url = "http://10.0.2.2:8080";
  GuestAgentSettings agent;
  agent.log_level = "debug";
  agent.max_downloads = 5;
  agent.insecure_registries = {"10.0.2.2:5000", "r.local"};
  auto doc = DefaultInitDataDocument(kbs, "", agent);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(*doc, "version = \"0.1.0\"\nalgorithm = \"sha384\"\n\n[data]\nkbs_url = "
                  "'http://10.0.2.2:8080'\n\n[data.agent]\nlog_level = \"debug\"\n"
                  "max_downloads = 5\ninsecure_registries = [\"10.0.2.2:5000\", \"r.local\"]\n");
  // The document parses, and the agent reads the same settings back.
  auto parsed = tee::ParseInitData(*doc);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->data["agent"]["log_level"], "debug");
  EXPECT_EQ(parsed->data["agent"]["max_downloads"], 5);
  EXPECT_EQ(parsed->data["agent"]["insecure_registries"][1], "r.local");
  agent.insecure_registries = {"bad\"name"};
  EXPECT_FALSE(DefaultInitDataDocument(kbs, "", agent).ok());
  kbs.ca_file = "/etc/cloak/ca.pem";
  auto bad = DefaultInitDataDocument(kbs, "not a certificate");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("/etc/cloak/ca.pem"));
  kbs.url = "https://k'x";
  EXPECT_FALSE(DefaultInitDataDocument(kbs, "").ok());
}

TEST(DefaultInitDataTest, PodInitDataReplacesTheDefaultAndIsMeasuredTheSameWay) {
  config::Config c;
  c.kbs.url = "https://kbs.example";
  auto made = PodInitData(c, {});
  ASSERT_TRUE(made.ok()) << made.status();
  ASSERT_TRUE(made->has_value());
  EXPECT_EQ((*made)->algorithm, "sha384");
  EXPECT_EQ((*made)->digest.size(), 48u);
  // The pod's own init-data wins whole.
  const std::string own = "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nkbs_url = \"x\"\n";
  auto pods = PodInitData(c, {{"io.cloak.initdata", absl::Base64Escape(own)}});
  ASSERT_TRUE(pods.ok()) << pods.status();
  ASSERT_TRUE(pods->has_value());
  EXPECT_EQ((*pods)->document, own);
  // No KBS, no annotation: the agent's settings still travel measured.
  auto settings_only = PodInitData(config::Config{}, {});
  ASSERT_TRUE(settings_only.ok());
  ASSERT_TRUE(settings_only->has_value());
  EXPECT_THAT((*settings_only)->document, HasSubstr("[data.agent]"));
  EXPECT_THAT((*settings_only)->document, Not(HasSubstr("kbs_url")));
  // A CA file that is not there is an error naming the key.
  c.kbs.ca_file = "/nonexistent/ca.pem";
  auto missing = PodInitData(c, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("kbs.ca_file"));
}

TEST(PinnedImageReferenceTest, NamePlusDigest) {
  const std::string d = "sha256:" + std::string(64, '0');
  auto p = PinnedImageReference("docker.io/library/busybox:latest", d);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, "docker.io/library/busybox:latest@" + d);
  auto same = PinnedImageReference("r.example/app@" + d, d);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, "r.example/app@" + d);
  EXPECT_FALSE(PinnedImageReference("r.example/app@sha256:" + std::string(64, '1'), d).ok());
  EXPECT_FALSE(PinnedImageReference("busybox", "sha256:abc").ok());
  EXPECT_FALSE(PinnedImageReference("busybox", "sha512:" + std::string(64, '0')).ok());
  EXPECT_FALSE(PinnedImageReference("busybox", "sha256:" + std::string(64, 'A')).ok());
  EXPECT_FALSE(PinnedImageReference("", d).ok());
}

TEST(SpecWithAnnotationTest, AddsOrReplacesOneAnnotationAndKeepsTheRest) {
  auto added = SpecWithAnnotation(R"({"ociVersion":"1.0.2","process":{"args":["sh"]}})",
                                  "io.cloak.agent-policy", "allow-all");
  ASSERT_TRUE(added.ok()) << added.status();
  nlohmann::json got = nlohmann::json::parse(*added);
  EXPECT_EQ(got["annotations"]["io.cloak.agent-policy"], "allow-all");
  EXPECT_EQ(got["process"]["args"][0], "sh");
  auto replaced = SpecWithAnnotation(
      R"({"annotations":{"a":"1","io.cloak.agent-policy":"x"}})", "io.cloak.agent-policy",
      "allow-all");
  ASSERT_TRUE(replaced.ok());
  got = nlohmann::json::parse(*replaced);
  EXPECT_EQ(got["annotations"]["a"], "1");
  EXPECT_EQ(got["annotations"]["io.cloak.agent-policy"], "allow-all");
  EXPECT_FALSE(SpecWithAnnotation("[1]", "k", "v").ok());
  EXPECT_FALSE(SpecWithAnnotation("{not json", "k", "v").ok());
}

}  // namespace
}  // namespace cloak::shim
