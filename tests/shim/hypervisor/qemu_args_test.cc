// Golden tests of the QEMU command line. Each testdata/<name>.args holds one
// argument per line. To regenerate after an intended change:
//   CLOAK_UPDATE_GOLDEN=1 ./hypervisor_unit_test --gtest_filter='QemuArgsGolden*'
// and review the diff.
#include "shim/hypervisor/qemu/qemu_args.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/skip.h"

namespace cloak::shim::hypervisor {
namespace {

using ::testing::HasSubstr;

std::string Bytes(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>(i));
  return out;
}

// This machine: kvm_pvm, no vhost-vsock, Debian's QEMU 7.2.
HostCapabilities PvmHost() {
  HostCapabilities caps;
  caps.kvm_present = caps.kvm_openable = caps.kvm_pvm = true;
  caps.qemu.found = true;
  caps.qemu.path = "/usr/bin/qemu-system-x86_64";
  caps.qemu.version = {7, 2, 22};
  caps.qemu.has_sev_guest = true;
  return caps;
}

HostCapabilities KvmHost() {
  HostCapabilities caps = PvmHost();
  caps.kvm_pvm = false;
  caps.vhost_vsock = true;
  return caps;
}

HostCapabilities SnpHost() {
  HostCapabilities caps = KvmHost();
  caps.sev_snp = caps.sev_device = true;
  caps.qemu.version = {9, 1, 0};
  caps.qemu.has_sev_snp_guest = true;
  return caps;
}

HostCapabilities TdxHost() {
  HostCapabilities caps = KvmHost();
  caps.tdx = true;
  caps.qemu.version = {10, 1, 0};
  caps.qemu.has_sev_snp_guest = caps.qemu.has_tdx_guest = true;
  return caps;
}

VmConfig BaseConfig() {
  VmConfig c;
  c.name = "sandbox-1";
  c.kernel = "/usr/local/share/cloak/guest/vmlinuz";
  c.initrd = "/usr/local/share/cloak/guest/initrd.img";
  c.kernel_cmdline = "console=ttyS0 quiet panic=-1";
  c.qmp_socket_path = "/run/cloak/sandbox-1/qmp.sock";
  c.serial_socket_path = "/run/cloak/sandbox-1/agent.sock";
  c.console_log_path = "/run/cloak/sandbox-1/console.log";
  return c;
}

void ExpectGolden(const std::string& name, const std::vector<std::string>& args) {
  const std::string path = std::string(CLOAK_HV_TESTDATA_DIR) + "/" + name + ".args";
  const std::string actual = absl::StrJoin(args, "\n") + "\n";
  const char* update = std::getenv("CLOAK_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(path) << actual;
    CLOAK_SKIP() << "rewrote " << path;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing golden file " << path
                  << " (run with CLOAK_UPDATE_GOLDEN=1 to create it)";
  std::stringstream expected;
  expected << in.rdbuf();
  std::vector<std::string> want = absl::StrSplit(expected.str(), '\n', absl::SkipEmpty());
  EXPECT_EQ(args, want) << "golden " << path << " differs; actual:\n" << actual;
}

TEST(QemuArgsGoldenTest, NoneTcgSerial) {
  auto args = BuildQemuArgs(BaseConfig(), PvmHost());
  ASSERT_TRUE(args.ok()) << args.status();
  ExpectGolden("none_tcg_serial", *args);
}

TEST(QemuArgsGoldenTest, NoneKvmVsock) {
  VmConfig c = BaseConfig();
  c.vcpus = 2;
  c.memory_mib = 1024;
  c.vsock_guest_cid = 7;
  auto args = BuildQemuArgs(c, KvmHost());
  ASSERT_TRUE(args.ok()) << args.status();
  ExpectGolden("none_kvm_vsock", *args);
}

TEST(QemuArgsGoldenTest, NoneKvmVsockWithSimulatedSp) {
  // The SP port needs the virtio-serial controller even when the agent is
  // on vsock.
  VmConfig c = BaseConfig();
  c.vsock_guest_cid = 7;
  c.sp_socket_path = "/run/cloak/sandbox-1/sp.sock";
  auto args = BuildQemuArgs(c, KvmHost());
  ASSERT_TRUE(args.ok()) << args.status();
  ExpectGolden("none_kvm_vsock_simulated_sp", *args);
}

TEST(QemuArgsGoldenTest, NoneTcgSerialPodTaps) {
  // A CNI pod: no user network; each tap is QEMU's fd 3, 4, ... with the
  // pod interface's MAC.
  VmConfig c = BaseConfig();
  c.user_network = false;
  c.taps = {{.fd = 17, .name = "tap0_cloak", .mac = "0a:58:0a:58:4d:05"},
            {.fd = 9, .name = "tap1_cloak", .mac = "0a:58:0a:59:00:07"}};
  auto args = BuildQemuArgs(c, PvmHost());
  ASSERT_TRUE(args.ok()) << args.status();
  ExpectGolden("none_tcg_serial_pod_taps", *args);
}

TEST(QemuArgsGoldenTest, Snp) {
  VmConfig c = BaseConfig();
  c.tee = TeeType::kSnp;
  c.memory_mib = 2048;
  c.vcpus = 2;
  c.vsock_guest_cid = 7;
  c.firmware = "/usr/local/share/cloak/firmware/OVMF-AmdSev.fd";
  c.snp.host_data = Bytes(32);
  auto args = BuildQemuArgs(c, SnpHost());
  ASSERT_TRUE(args.ok()) << args.status();
  ExpectGolden("snp", *args);
}

TEST(QemuArgsGoldenTest, Tdx) {
  VmConfig c = BaseConfig();
  c.tee = TeeType::kTdx;
  c.memory_mib = 2048;
  c.vcpus = 2;
  c.vsock_guest_cid = 7;
  c.firmware = "/usr/local/share/cloak/firmware/TDVF.fd";
  c.tdx.mrconfigid = Bytes(48);
  auto args = BuildQemuArgs(c, TdxHost());
  ASSERT_TRUE(args.ok()) << args.status();
  ExpectGolden("tdx", *args);
}

TEST(QemuArgsGoldenTest, TestShapeNoKernelPaused) {
  VmConfig c = BaseConfig();
  c.kernel = c.initrd = c.kernel_cmdline = "";
  c.name = "";
  c.user_network = false;
  c.start_paused = true;
  c.extra_args = {"-device", "isa-debug-exit"};
  auto args = BuildQemuArgs(c, PvmHost());
  ASSERT_TRUE(args.ok()) << args.status();
  ExpectGolden("none_tcg_paused_no_kernel", *args);
}

TEST(QemuArgsTest, SnpDetails) {
  VmConfig c = BaseConfig();
  c.tee = TeeType::kSnp;
  c.firmware = "/fw.fd";
  c.snp.kernel_hashes = false;
  c.snp.policy = 0x30000 | (1u << 19);
  auto args = BuildQemuArgs(c, SnpHost());
  ASSERT_TRUE(args.ok()) << args.status();
  const std::string line = absl::StrJoin(*args, " ");
  EXPECT_THAT(line, HasSubstr("kernel-hashes=off,policy=0xb0000 "));
  EXPECT_THAT(line, ::testing::Not(HasSubstr("host-data")));
  EXPECT_THAT(line, HasSubstr("-cpu EPYC-v4"));
  c.cpu = "EPYC-Milan";
  EXPECT_THAT(absl::StrJoin(*BuildQemuArgs(c, SnpHost()), " "), HasSubstr("-cpu EPYC-Milan"));
}

TEST(QemuArgsTest, TcgTbSizeOnlyUnderTcg) {
  VmConfig c = BaseConfig();
  c.tcg_tb_size_mib = 32;
  EXPECT_THAT(absl::StrJoin(*BuildQemuArgs(c, PvmHost()), " "),
              HasSubstr("-accel tcg,tb-size=32 -cpu max"));
  EXPECT_THAT(absl::StrJoin(*BuildQemuArgs(c, KvmHost()), " "), HasSubstr("-accel kvm -cpu host"));
  c.tcg_tb_size_mib = 0;
  EXPECT_THAT(absl::StrJoin(*BuildQemuArgs(c, PvmHost()), " "), HasSubstr("-accel tcg -cpu max"));
  c.tcg_tb_size_mib = -1;
  EXPECT_EQ(BuildQemuArgs(c, PvmHost()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(QemuArgsTest, FreePageReportingOnlyWithoutTee) {
  const std::string balloon = "virtio-balloon-pci,id=balloon0,free-page-reporting=on";
  EXPECT_THAT(absl::StrJoin(*BuildQemuArgs(BaseConfig(), PvmHost()), " "), HasSubstr(balloon));
  VmConfig c = BaseConfig();
  c.tee = TeeType::kSnp;
  c.firmware = "/fw.fd";
  auto args = BuildQemuArgs(c, SnpHost());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(absl::StrJoin(*args, " "), ::testing::Not(HasSubstr("virtio-balloon")));
}

TEST(QemuArgsTest, TdxVsockQgsAndNoQgs) {
  VmConfig c = BaseConfig();
  c.tee = TeeType::kTdx;
  c.firmware = "/fw.fd";
  c.tdx.quote_generation_socket = "vsock:2:4050";
  auto args = BuildQemuArgs(c, TdxHost());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(absl::StrJoin(*args, " "),
              HasSubstr(R"("quote-generation-socket":{"type":"vsock","cid":"2","port":"4050"})"));
  c.tdx.quote_generation_socket = "";
  EXPECT_THAT(absl::StrJoin(*BuildQemuArgs(c, TdxHost()), " "),
              ::testing::Not(HasSubstr("quote-generation-socket")));
  c.tdx.quote_generation_socket = "tcp:1.2.3.4:5";
  EXPECT_TRUE(absl::IsInvalidArgument(BuildQemuArgs(c, TdxHost()).status()));
}

struct ErrorCase {
  std::string name;
  std::function<void(VmConfig&)> mutate;
  std::function<HostCapabilities()> caps;
  absl::StatusCode code;
  std::string message_part;
};

class QemuArgsErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(QemuArgsErrorTest, Rejects) {
  const ErrorCase& tc = GetParam();
  VmConfig c = BaseConfig();
  tc.mutate(c);
  auto args = BuildQemuArgs(c, tc.caps());
  ASSERT_FALSE(args.ok()) << absl::StrJoin(*args, " ");
  EXPECT_EQ(args.status().code(), tc.code) << args.status();
  EXPECT_THAT(args.status().message(), HasSubstr(tc.message_part));
}

INSTANTIATE_TEST_SUITE_P(
    Table, QemuArgsErrorTest,
    ::testing::Values(
        ErrorCase{"SnpOnThisMachine",
                  [](VmConfig& c) {
                    c.tee = TeeType::kSnp;
                    c.firmware = "/fw.fd";
                  },
                  PvmHost, absl::StatusCode::kFailedPrecondition,
                  "tee=snp needs QEMU ≥ 9.1 with the sev-snp-guest object; "
                  "/usr/bin/qemu-system-x86_64 is 7.2.22"},
        ErrorCase{"TdxOnSnpHost",
                  [](VmConfig& c) {
                    c.tee = TeeType::kTdx;
                    c.firmware = "/fw.fd";
                  },
                  SnpHost, absl::StatusCode::kFailedPrecondition, "tee=tdx needs QEMU ≥ 10.1"},
        ErrorCase{"SnpWithoutFirmware", [](VmConfig& c) { c.tee = TeeType::kSnp; }, SnpHost,
                  absl::StatusCode::kInvalidArgument, "OvmfPkg/AmdSev"},
        ErrorCase{"SnpUnderTcg",
                  [](VmConfig& c) {
                    c.tee = TeeType::kSnp;
                    c.firmware = "/fw.fd";
                    c.accel = Accel::kTcg;
                  },
                  SnpHost, absl::StatusCode::kInvalidArgument, "accel=tcg"},
        ErrorCase{"SnpHostDataSize",
                  [](VmConfig& c) {
                    c.tee = TeeType::kSnp;
                    c.firmware = "/fw.fd";
                    c.snp.host_data = "short";
                  },
                  SnpHost, absl::StatusCode::kInvalidArgument,
                  "snp.host_data must be exactly 32 raw bytes"},
        ErrorCase{"SnpPolicyReservedBit",
                  [](VmConfig& c) {
                    c.tee = TeeType::kSnp;
                    c.firmware = "/fw.fd";
                    c.snp.policy = 0x10000;
                  },
                  SnpHost, absl::StatusCode::kInvalidArgument, "reserved bit 17"},
        ErrorCase{"TdxMrconfigidSize",
                  [](VmConfig& c) {
                    c.tee = TeeType::kTdx;
                    c.firmware = "/fw.fd";
                    c.tdx.mrconfigid = std::string(32, 'x');
                  },
                  TdxHost, absl::StatusCode::kInvalidArgument, "tdx.mrconfigid must be exactly 48"},
        ErrorCase{"TeeWithoutKernel",
                  [](VmConfig& c) {
                    c.tee = TeeType::kTdx;
                    c.firmware = "/fw.fd";
                    c.kernel = c.initrd = c.kernel_cmdline = "";
                  },
                  TdxHost, absl::StatusCode::kInvalidArgument, "needs a kernel"},
        ErrorCase{"InitrdWithoutKernel", [](VmConfig& c) { c.kernel = ""; }, PvmHost,
                  absl::StatusCode::kInvalidArgument, "kernel is empty"},
        ErrorCase{"NoQmpSocket", [](VmConfig& c) { c.qmp_socket_path = ""; }, PvmHost,
                  absl::StatusCode::kInvalidArgument, "qmp_socket_path is required"},
        ErrorCase{"NoConsoleLog", [](VmConfig& c) { c.console_log_path = ""; }, PvmHost,
                  absl::StatusCode::kInvalidArgument, "console_log_path is required"},
        ErrorCase{"RelativeKernel", [](VmConfig& c) { c.kernel = "vmlinuz"; }, PvmHost,
                  absl::StatusCode::kInvalidArgument, "must be an absolute path"},
        ErrorCase{"LongSocketPath",
                  [](VmConfig& c) { c.serial_socket_path = "/" + std::string(120, 'a'); },
                  PvmHost, absl::StatusCode::kInvalidArgument, "use a shorter state directory"},
        ErrorCase{"CommaInPath",
                  [](VmConfig& c) { c.console_log_path = "/run/a,b/console.log"; }, PvmHost,
                  absl::StatusCode::kInvalidArgument, "contains a comma"},
        ErrorCase{"ReservedCid",
                  [](VmConfig& c) {
                    c.agent_channel = AgentChannel::kVsock;
                    c.vsock_guest_cid = 2;
                  },
                  KvmHost, absl::StatusCode::kInvalidArgument, "use 3 or above"},
        ErrorCase{"VsockWithoutDevice",
                  [](VmConfig& c) { c.agent_channel = AgentChannel::kVsock; }, PvmHost,
                  absl::StatusCode::kFailedPrecondition, "/dev/vhost-vsock does not exist"},
        ErrorCase{"TinyMemory", [](VmConfig& c) { c.memory_mib = 16; }, PvmHost,
                  absl::StatusCode::kInvalidArgument, "at least 64 MiB"},
        ErrorCase{"NoVcpus", [](VmConfig& c) { c.vcpus = 0; }, PvmHost,
                  absl::StatusCode::kInvalidArgument, "vcpus is 0"}),
    [](const ::testing::TestParamInfo<ErrorCase>& p) { return p.param.name; });

TEST(QemuArgsTest, ShellQuoting) {
  EXPECT_EQ(QemuArgsToString({"qemu", "-append", "console=ttyS0 quiet", "-object",
                              R"({"a":"b"})", "it's"}),
            R"(qemu -append 'console=ttyS0 quiet' -object '{"a":"b"}' 'it'\''s')");
}

}  // namespace
}  // namespace cloak::shim::hypervisor
