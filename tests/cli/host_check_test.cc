// cloak check on fake /dev, /sys and /proc trees with canned QEMU and
// containerd output: the findings, the verdict per RuntimeClass and the
// node labels.
#include "cli/cloak/host_check.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_join.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::cli {
namespace {

using ::testing::HasSubstr;

constexpr char kQemu72[] = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)\n";
constexpr char kQemu101[] = "QEMU emulator version 10.1.0\n";
constexpr char kObjects72[] = "List of user creatable objects:\n  memory-backend-file\n  sev-guest\n";
constexpr char kObjects101[] =
    "List of user creatable objects:\n  sev-guest\n  sev-snp-guest\n  tdx-guest\n";

class HostCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-check-test-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    root_ = dir_->path().string();
  }
  void Touch(const std::string& path, const std::string& text = "") {
    std::filesystem::create_directories(std::filesystem::path(root_ + path).parent_path());
    std::ofstream(root_ + path) << text;
  }
  CheckOptions Options(std::string qemu_version, std::string objects,
                       std::string containerd = "containerd github.com/containerd/containerd "
                                                "1.6.20~ds1 1.6.20~ds1-1+deb12u3\n") {
    CheckOptions o;
    o.root = root_;
    o.qemu_path = "/usr/bin/qemu-system-x86_64";
    o.run = [this, qemu_version, objects, containerd](const std::vector<std::string>& argv) -> absl::StatusOr<std::string> {
      calls_.push_back(absl::StrJoin(argv, " "));
      if (argv[0] == "containerd") {
        if (containerd.empty()) return absl::NotFoundError("containerd: not found");
        return containerd;
      }
      if (argv.size() == 2 && argv[1] == "-version") return qemu_version;
      return objects;
    };
    // libvirt as Debian 12 has it: 9.0.0, TCG only here, no launch security.
    o.probe_libvirt = [this](const std::string& uri) {
      libvirt_uris_.push_back(uri);
      shim::hypervisor::LibvirtCapabilities lv;
      lv.uri = uri;
      lv.reachable = libvirt_reachable_;
      if (!lv.reachable) {
        lv.error = "Failed to connect socket to '/run/libvirt/libvirt-sock'";
        return lv;
      }
      lv.version = {9, 0, 0};
      lv.hypervisor_version = {7, 2, 22};
      lv.kvm.error = "the accel 'kvm' is not supported";
      lv.tcg.available = true;
      return lv;
    };
    return o;
  }
  const RuntimeVerdict& Verdict(const CheckReport& r, const std::string& name) {
    for (const RuntimeVerdict& v : r.verdicts) {
      if (v.runtime_class == name) return v;
    }
    ADD_FAILURE() << "no verdict for " << name;
    static RuntimeVerdict none;
    return none;
  }
  const Finding& Find(const CheckReport& r, const std::string& name) {
    for (const Finding& f : r.findings) {
      if (f.name == name) return f;
    }
    ADD_FAILURE() << "no finding " << name;
    static Finding none;
    return none;
  }

  std::optional<TempDir> dir_;
  std::string root_;
  std::vector<std::string> calls_;
  std::vector<std::string> libvirt_uris_;
  bool libvirt_reachable_ = true;
};

TEST_F(HostCheckTest, PvmHostLikeTheDevelopmentMachine) {
  Touch("/dev/kvm");
  Touch("/sys/module/kvm_pvm/initstate", "live\n");
  Touch("/proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme sse2\n");
  Touch("/etc/containerd/config.toml", "version = 2\n");
  const CheckReport r = Evaluate(ProbeHostFacts(Options(kQemu72, kObjects72)));

  EXPECT_EQ(Find(r, "kvm").state, "pvm");
  EXPECT_THAT(Find(r, "kvm").detail, HasSubstr("kvm_pvm"));
  EXPECT_THAT(Find(r, "kvm").detail, HasSubstr("using TCG"));
  EXPECT_EQ(Find(r, "sev-snp").state, "no");
  EXPECT_EQ(Find(r, "tdx").state, "no");
  EXPECT_EQ(Find(r, "vhost-vsock").state, "no");
  EXPECT_THAT(Find(r, "vhost-vsock").detail, HasSubstr("virtio-serial"));
  EXPECT_EQ(Find(r, "qemu").state, "7.2.22");
  EXPECT_THAT(Find(r, "containerd").detail, HasSubstr("no Cloak runtimes"));
  EXPECT_THAT(libvirt_uris_, ::testing::ElementsAre("qemu:///system"));
  EXPECT_EQ(Find(r, "libvirt").state, "9.0.0");
  EXPECT_THAT(Find(r, "libvirt").detail, HasSubstr("launch security: none"));
  EXPECT_THAT(Find(r, "libvirt").detail,
              HasSubstr("cloak-dev through libvirt: yes (domain type qemu)"));
  EXPECT_THAT(Find(r, "libvirt").detail,
              HasSubstr("cloak-snp through libvirt: no: tee=snp through libvirt needs libvirt ≥ "
                        "10.5.0 (<launchSecurity type='sev-snp'>)"));
  EXPECT_THAT(Find(r, "libvirt").detail, HasSubstr("runs libvirt 9.0.0"));
  EXPECT_THAT(Find(r, "libvirt").detail,
              HasSubstr("cloak-tdx through libvirt: no: tee=tdx through libvirt needs libvirt ≥ "
                        "11.8.0"));

  EXPECT_TRUE(Verdict(r, "cloak-dev").usable);
  EXPECT_THAT(Verdict(r, "cloak-dev").reason, HasSubstr("TCG"));
  EXPECT_FALSE(Verdict(r, "cloak-snp").usable);
  EXPECT_THAT(Verdict(r, "cloak-snp").reason, HasSubstr("QEMU ≥ 9.1"));
  EXPECT_THAT(Verdict(r, "cloak-snp").reason, HasSubstr("sev_snp"));
  EXPECT_THAT(Verdict(r, "cloak-snp").reason, HasSubstr("kvm_pvm"));
  EXPECT_FALSE(Verdict(r, "cloak-tdx").usable);
  EXPECT_THAT(Verdict(r, "cloak-tdx").reason, HasSubstr("tdx_host_platform"));
  EXPECT_TRUE(r.AnyUsable());
  EXPECT_EQ(r.node_labels.at("cloak.io/runtime-cloak-dev"), "true");
  EXPECT_EQ(r.node_labels.at("cloak.io/runtime-cloak-snp"), "false");
  EXPECT_EQ(r.node_labels.at("cloak.io/runtime-cloak-tdx"), "false");
}

TEST_F(HostCheckTest, LibvirtUnreachableOrNotAsked) {
  Touch("/dev/kvm");
  libvirt_reachable_ = false;
  CheckOptions o = Options(kQemu72, kObjects72);
  o.libvirt_uri = "qemu:///system?socket=/nonexistent";
  CheckReport r = Evaluate(ProbeHostFacts(o));
  EXPECT_EQ(Find(r, "libvirt").state, "unreachable");
  EXPECT_THAT(Find(r, "libvirt").detail, HasSubstr("Failed to connect socket"));
  EXPECT_THAT(Find(r, "libvirt").detail, HasSubstr("hypervisor.driver = \"libvirt\""));
  EXPECT_TRUE(Verdict(r, "cloak-dev").usable);  // the QEMU driver does not need it

  o.libvirt_uri.clear();
  libvirt_uris_.clear();
  r = Evaluate(ProbeHostFacts(o));
  EXPECT_TRUE(libvirt_uris_.empty());
  for (const Finding& f : r.findings) EXPECT_NE(f.name, "libvirt");
}

TEST_F(HostCheckTest, SnpHost) {
  Touch("/dev/kvm");
  Touch("/dev/sev");
  Touch("/dev/vhost-vsock");
  Touch("/sys/module/kvm_amd/parameters/sev_snp", "Y\n");
  Touch("/proc/cpuinfo", "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sev sev_es sev_snp\n");
  const CheckReport r = Evaluate(ProbeHostFacts(Options(kQemu101, kObjects101)));
  EXPECT_EQ(Find(r, "kvm").state, "yes");
  EXPECT_EQ(Find(r, "sev-snp").state, "yes");
  EXPECT_EQ(Find(r, "vhost-vsock").state, "yes");
  EXPECT_TRUE(Verdict(r, "cloak-snp").usable) << Verdict(r, "cloak-snp").reason;
  EXPECT_FALSE(Verdict(r, "cloak-tdx").usable);
  EXPECT_THAT(Verdict(r, "cloak-tdx").reason, HasSubstr("kvm_intel/parameters/tdx"));
  EXPECT_TRUE(Verdict(r, "cloak-dev").usable);
  EXPECT_THAT(Verdict(r, "cloak-dev").reason, HasSubstr("using KVM"));
}

TEST_F(HostCheckTest, SnpEnabledInKvmButCpuFlagMissing) {
  Touch("/dev/kvm");
  Touch("/dev/sev");
  Touch("/sys/module/kvm_amd/parameters/sev_snp", "Y\n");
  Touch("/proc/cpuinfo", "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sev\n");
  const CheckReport r = Evaluate(ProbeHostFacts(Options(kQemu101, kObjects101)));
  EXPECT_FALSE(Verdict(r, "cloak-snp").usable);
  EXPECT_THAT(Verdict(r, "cloak-snp").reason, HasSubstr("\"sev_snp\" flag"));
}

TEST_F(HostCheckTest, TdxHost) {
  Touch("/dev/kvm");
  Touch("/sys/module/kvm_intel/parameters/tdx", "Y\n");
  Touch("/proc/cpuinfo", "vendor_id\t: GenuineIntel\nflags\t\t: fpu tdx_host_platform\n");
  Touch("/etc/containerd/config.toml",
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.cloak-tdx]\n"
        "runtime_type = \"io.containerd.cloak.v2\"\n[proxy_plugins.cloak]\n"
        "type = \"snapshot\"\naddress = \"/run/x.sock\"\n");
  const CheckReport r = Evaluate(ProbeHostFacts(
      Options(kQemu101, kObjects101, "containerd containerd.io v1.7.13 abc\n")));
  EXPECT_TRUE(Verdict(r, "cloak-tdx").usable) << Verdict(r, "cloak-tdx").reason;
  EXPECT_TRUE(Verdict(r, "cloak-tdx").configured);
  EXPECT_FALSE(Verdict(r, "cloak-dev").configured);
  EXPECT_FALSE(Verdict(r, "cloak-snp").usable);
  EXPECT_EQ(Find(r, "containerd").state, "v1.7.13");
  EXPECT_THAT(Find(r, "containerd").detail, HasSubstr("Cloak runtimes cloak-tdx"));
  EXPECT_THAT(Find(r, "containerd").detail, HasSubstr("snapshotter cloak at /run/x.sock"));
}

TEST_F(HostCheckTest, NothingInstalled) {
  CheckOptions o = Options("", "", "");
  o.run = [](const std::vector<std::string>& argv) -> absl::StatusOr<std::string> {
    return absl::NotFoundError(argv[0] + " not found");
  };
  const CheckReport r = Evaluate(ProbeHostFacts(o));
  EXPECT_EQ(Find(r, "kvm").state, "absent");
  EXPECT_EQ(Find(r, "qemu").state, "missing");
  EXPECT_THAT(Find(r, "qemu").detail, HasSubstr("install qemu-system-x86"));
  EXPECT_EQ(Find(r, "containerd").state, "missing");
  EXPECT_FALSE(Verdict(r, "cloak-dev").usable);
  EXPECT_FALSE(r.AnyUsable());
  EXPECT_EQ(r.node_labels.at("cloak.io/runtime-cloak-dev"), "false");
}

TEST_F(HostCheckTest, BrokenContainerdConfigIsReported) {
  Touch("/etc/containerd/config.toml", "version = 2\n[plugins\n");
  const CheckReport r = Evaluate(ProbeHostFacts(Options(kQemu72, kObjects72)));
  EXPECT_THAT(Find(r, "containerd").detail, HasSubstr("not valid TOML"));
}

TEST_F(HostCheckTest, JsonAndText) {
  Touch("/dev/kvm");
  Touch("/sys/module/kvm_pvm/initstate");
  const CheckReport r = Evaluate(ProbeHostFacts(Options(kQemu72, kObjects72)));
  const nlohmann::json j = ReportToJson(r);
  EXPECT_EQ(j["host"]["kvm"]["state"], "pvm");
  ASSERT_EQ(j["runtime_classes"].size(), 3u);
  EXPECT_EQ(j["runtime_classes"][0]["name"], "cloak-dev");
  EXPECT_EQ(j["runtime_classes"][0]["usable"], true);
  EXPECT_EQ(j["node_labels"]["cloak.io/runtime-cloak-snp"], "false");
  const std::string text = ReportToText(r);
  EXPECT_THAT(text, HasSubstr("kvm          pvm"));
  EXPECT_THAT(text, HasSubstr("cloak-dev    yes     no"));
}

}  // namespace
}  // namespace cloak::cli
