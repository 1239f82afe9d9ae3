#include "shim/hypervisor/host_capabilities.h"

#include <filesystem>
#include <unistd.h>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/skip.h"

namespace cloak::shim::hypervisor {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kQemu72Version[] =
    "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n"
    "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n";

// The start of what Debian's QEMU 7.2 prints for -object help.
constexpr char kQemu72ObjectHelp[] =
    "List of user creatable objects:\n"
    "  authz-list\n"
    "  iothread\n"
    "  memory-backend-file\n"
    "  memory-backend-memfd\n"
    "  memory-backend-ram\n"
    "  secret\n"
    "  sev-guest\n"
    "  thread-context\n";

constexpr char kQemu101Version[] = "QEMU emulator version 10.1.0\n";
constexpr char kQemu101ObjectHelp[] =
    "List of user creatable objects:\n"
    "  memory-backend-memfd\n"
    "  sev-guest\n"
    "  sev-snp-guest\n"
    "  tdx-guest\n";

class FakeHost {
 public:
  FakeHost() : dir_(*TempDir::Create("cloak-hv-host-")) {}
  const std::string root() const { return dir_.path().string(); }
  void Add(const std::string& rel, const std::string& content = "") {
    std::filesystem::path p = dir_.path() / rel.substr(1);
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }
  void AddDir(const std::string& rel) {
    std::filesystem::create_directories(dir_.path() / rel.substr(1));
  }
  ProbeOptions Options(std::string version, std::string help) {
    ProbeOptions o;
    o.root = root();
    o.qemu_path = "/usr/bin/qemu-system-x86_64";
    o.run_qemu = [this, version, help](const std::vector<std::string>& argv)
        -> absl::StatusOr<std::string> {
      calls.push_back(absl::StrJoin(argv, " "));
      if (argv.size() == 2 && argv[1] == "-version") return version;
      if (argv.size() == 3 && argv[1] == "-object" && argv[2] == "help") return help;
      return absl::InternalError("unexpected qemu call");
    };
    return o;
  }
  std::vector<std::string> calls;

 private:
  TempDir dir_;
};

TEST(HostCapabilitiesTest, ParsesQemuVersion) {
  auto v = ParseQemuVersion(kQemu72Version);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, (QemuVersion{7, 2, 22}));
  EXPECT_EQ(*ParseQemuVersion("QEMU emulator version 9.1.0\n"), (QemuVersion{9, 1, 0}));
  EXPECT_EQ(*ParseQemuVersion("QEMU emulator version 10.1.50 (v10.1.0-123)"),
            (QemuVersion{10, 1, 50}));
  EXPECT_EQ(*ParseQemuVersion("QEMU emulator version 8.2"), (QemuVersion{8, 2, 0}));
  EXPECT_FALSE(ParseQemuVersion("garbage").ok());
  EXPECT_FALSE(ParseQemuVersion("QEMU emulator version x.y").ok());
  EXPECT_LT((QemuVersion{7, 2, 22}), kMinQemuForSnp);
  EXPECT_LT((QemuVersion{9, 2, 0}), kMinQemuForTdx);
  EXPECT_GE((QemuVersion{10, 1, 0}), kMinQemuForTdx);
}

TEST(HostCapabilitiesTest, ParsesObjectHelp) {
  std::vector<std::string> names = ParseObjectHelp(kQemu72ObjectHelp);
  EXPECT_THAT(names, ::testing::Contains("sev-guest"));
  EXPECT_THAT(names, Not(::testing::Contains("sev-snp-guest")));
  EXPECT_THAT(names, Not(::testing::Contains("List of user creatable objects:")));
  EXPECT_EQ(names.size(), 8u);
}

TEST(HostCapabilitiesTest, ThisKindOfMachinePvmKvmNoVsock) {
  FakeHost host;
  host.Add("/dev/kvm");
  host.AddDir("/sys/module/kvm");
  host.AddDir("/sys/module/kvm_pvm");
  HostCapabilities caps = ProbeHost(host.Options(kQemu72Version, kQemu72ObjectHelp));
  EXPECT_TRUE(caps.kvm_present);
  EXPECT_TRUE(caps.kvm_openable);
  EXPECT_TRUE(caps.kvm_pvm);
  EXPECT_FALSE(caps.KvmUsable());
  EXPECT_FALSE(caps.sev_snp);
  EXPECT_FALSE(caps.tdx);
  EXPECT_FALSE(caps.vhost_vsock);
  ASSERT_TRUE(caps.qemu.found) << caps.qemu.error;
  EXPECT_EQ(caps.qemu.version, (QemuVersion{7, 2, 22}));
  EXPECT_TRUE(caps.qemu.has_sev_guest);
  EXPECT_FALSE(caps.qemu.has_sev_snp_guest);
  EXPECT_FALSE(caps.qemu.has_tdx_guest);
  // -object help is asked once.
  EXPECT_THAT(host.calls, ::testing::ElementsAre("/usr/bin/qemu-system-x86_64 -version",
                                                 "/usr/bin/qemu-system-x86_64 -object help"));

  VmConfig config;
  auto accel = ResolveAccel(config, caps);
  ASSERT_TRUE(accel.ok()) << accel.status();
  EXPECT_EQ(accel->accel, Accel::kTcg);
  EXPECT_EQ(accel->reason,
            "KVM is backed by kvm_pvm (nested, no VT-x/SVM): stock guest kernels hang under it; "
            "using TCG");
  auto channel = ResolveChannel(config, caps);
  ASSERT_TRUE(channel.ok());
  EXPECT_EQ(channel->channel, AgentChannel::kSerial);
  EXPECT_THAT(channel->reason, HasSubstr("/dev/vhost-vsock does not exist"));
  EXPECT_THAT(caps.Summary(), HasSubstr("kvm=kvm_pvm"));
}

TEST(HostCapabilitiesTest, SnpHost) {
  FakeHost host;
  host.Add("/dev/kvm");
  host.Add("/dev/sev");
  host.Add("/dev/vhost-vsock");
  host.Add("/sys/module/kvm_amd/parameters/sev_snp", "Y\n");
  HostCapabilities caps = ProbeHost(host.Options(kQemu101Version, kQemu101ObjectHelp));
  EXPECT_TRUE(caps.KvmUsable());
  EXPECT_TRUE(caps.sev_snp);
  EXPECT_TRUE(caps.sev_device);
  EXPECT_FALSE(caps.tdx);
  EXPECT_TRUE(caps.vhost_vsock);
  EXPECT_TRUE(caps.qemu.has_sev_snp_guest);
  EXPECT_TRUE(CheckTeeSupport(TeeType::kSnp, caps).ok()) << CheckTeeSupport(TeeType::kSnp, caps);
  absl::Status tdx = CheckTeeSupport(TeeType::kTdx, caps);
  EXPECT_TRUE(absl::IsFailedPrecondition(tdx));
  EXPECT_THAT(tdx.message(), HasSubstr("/sys/module/kvm_intel/parameters/tdx is not Y"));
  EXPECT_THAT(tdx.message(), Not(HasSubstr("QEMU")));

  VmConfig config;
  EXPECT_EQ(ResolveAccel(config, caps)->accel, Accel::kKvm);
  EXPECT_EQ(ResolveChannel(config, caps)->channel, AgentChannel::kVsock);
  config.tee = TeeType::kSnp;
  EXPECT_EQ(ResolveAccel(config, caps)->accel, Accel::kKvm);
  config.accel = Accel::kTcg;
  EXPECT_TRUE(absl::IsInvalidArgument(ResolveAccel(config, caps).status()));
}

TEST(HostCapabilitiesTest, TdxHost) {
  FakeHost host;
  host.Add("/dev/kvm");
  host.Add("/sys/module/kvm_intel/parameters/tdx", "Y\n");
  host.Add("/sys/module/kvm_amd/parameters/sev_snp", "N\n");
  HostCapabilities caps = ProbeHost(host.Options(kQemu101Version, kQemu101ObjectHelp));
  EXPECT_TRUE(caps.tdx);
  EXPECT_FALSE(caps.sev_snp);
  EXPECT_TRUE(CheckTeeSupport(TeeType::kTdx, caps).ok());
  absl::Status snp = CheckTeeSupport(TeeType::kSnp, caps);
  EXPECT_THAT(snp.message(), HasSubstr("sev_snp is not Y"));
  EXPECT_THAT(snp.message(), HasSubstr("/dev/sev"));
}

TEST(HostCapabilitiesTest, OldQemuNamesVersionAndObject) {
  FakeHost host;
  host.Add("/dev/kvm");
  host.Add("/dev/sev");
  host.Add("/sys/module/kvm_amd/parameters/sev_snp", "Y\n");
  HostCapabilities caps = ProbeHost(host.Options(kQemu72Version, kQemu72ObjectHelp));
  absl::Status s = CheckTeeSupport(TeeType::kSnp, caps);
  EXPECT_TRUE(absl::IsFailedPrecondition(s));
  EXPECT_EQ(s.message(),
            "tee=snp needs QEMU ≥ 9.1 with the sev-snp-guest object; "
            "/usr/bin/qemu-system-x86_64 is 7.2.22");
  s = CheckTeeSupport(TeeType::kTdx, caps);
  EXPECT_THAT(s.message(), HasSubstr("tee=tdx needs QEMU ≥ 10.1 with the tdx-guest object; "
                                     "/usr/bin/qemu-system-x86_64 is 7.2.22"));
}

TEST(HostCapabilitiesTest, NewQemuWithoutObjectSaysSo) {
  FakeHost host;
  host.Add("/dev/kvm");
  host.Add("/dev/sev");
  host.Add("/sys/module/kvm_amd/parameters/sev_snp", "Y\n");
  HostCapabilities caps =
      ProbeHost(host.Options("QEMU emulator version 9.2.0\n", kQemu72ObjectHelp));
  absl::Status s = CheckTeeSupport(TeeType::kSnp, caps);
  EXPECT_THAT(s.message(), HasSubstr("is 9.2.0 but lists no sev-snp-guest object"));
}

TEST(HostCapabilitiesTest, ThisMachineCannotDoAnyTee) {
  FakeHost host;
  host.Add("/dev/kvm");
  host.AddDir("/sys/module/kvm_pvm");
  HostCapabilities caps = ProbeHost(host.Options(kQemu72Version, kQemu72ObjectHelp));
  absl::Status s = CheckTeeSupport(TeeType::kSnp, caps);
  EXPECT_THAT(s.message(), HasSubstr("QEMU ≥ 9.1"));
  EXPECT_THAT(s.message(), HasSubstr("sev_snp is not Y"));
  EXPECT_THAT(s.message(), HasSubstr("kvm_pvm"));
  VmConfig config;
  config.tee = TeeType::kTdx;
  auto accel = ResolveAccel(config, caps);
  EXPECT_TRUE(absl::IsFailedPrecondition(accel.status()));
  EXPECT_THAT(accel.status().message(), HasSubstr("kvm_pvm"));
}

TEST(HostCapabilitiesTest, NoKvmAtAll) {
  FakeHost host;
  HostCapabilities caps = ProbeHost(host.Options(kQemu72Version, kQemu72ObjectHelp));
  EXPECT_FALSE(caps.kvm_present);
  VmConfig config;
  auto accel = ResolveAccel(config, caps);
  EXPECT_EQ(accel->accel, Accel::kTcg);
  EXPECT_THAT(accel->reason, HasSubstr("/dev/kvm does not exist"));
  config.accel = Accel::kKvm;
  EXPECT_TRUE(absl::IsFailedPrecondition(ResolveAccel(config, caps).status()));
  config.accel = Accel::kAuto;
  config.agent_channel = AgentChannel::kVsock;
  auto channel = ResolveChannel(config, caps);
  EXPECT_TRUE(absl::IsFailedPrecondition(channel.status()));
  EXPECT_THAT(channel.status().message(), HasSubstr("/dev/vhost-vsock does not exist"));
}

TEST(HostCapabilitiesTest, KvmNotOpenable) {
  if (::geteuid() == 0) CLOAK_SKIP_ALLOWED_ON_CI() << "root opens any file: not testable as root";
  FakeHost host;
  host.Add("/dev/kvm");
  std::filesystem::permissions(host.root() + "/dev/kvm", std::filesystem::perms::none);
  HostCapabilities caps = ProbeHost(host.Options(kQemu72Version, kQemu72ObjectHelp));
  EXPECT_TRUE(caps.kvm_present);
  EXPECT_FALSE(caps.kvm_openable);
  EXPECT_EQ(ResolveAccel(VmConfig{}, caps)->accel, Accel::kTcg);
}

TEST(HostCapabilitiesTest, QemuMissing) {
  ProbeOptions options;
  options.root = "/nonexistent-root";
  options.qemu_path = "qemu-system-definitely-not-here";
  HostCapabilities caps = ProbeHost(options);
  EXPECT_FALSE(caps.qemu.found);
  EXPECT_THAT(caps.qemu.error, HasSubstr("qemu-system-definitely-not-here not found"));
  absl::Status s = CheckTeeSupport(TeeType::kSnp, caps);
  EXPECT_THAT(s.message(), HasSubstr("not found"));
}

TEST(HostCapabilitiesTest, QemuRunnerFailure) {
  ProbeOptions options;
  options.root = "/nonexistent-root";
  options.run_qemu = [](const std::vector<std::string>&) -> absl::StatusOr<std::string> {
    return absl::InternalError("qemu crashed");
  };
  HostCapabilities caps = ProbeHost(options);
  EXPECT_FALSE(caps.qemu.found);
  EXPECT_THAT(caps.qemu.error, HasSubstr("qemu crashed"));
}

TEST(HostCapabilitiesTest, RealHostProbeDoesNotCrash) {
  HostCapabilities caps = ProbeHost();
  if (caps.qemu.found) {
    EXPECT_GE(caps.qemu.version.major, 2);
    EXPECT_FALSE(caps.qemu.version_line.empty());
  }
  SUCCEED() << caps.Summary();
}

}  // namespace
}  // namespace cloak::shim::hypervisor
