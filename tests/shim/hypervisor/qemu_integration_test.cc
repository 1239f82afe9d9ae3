// Integration tests: real QEMU under TCG (never KVM here: /dev/kvm on these
// machines is kvm_pvm). The guest is either nothing (-S, paused before the
// first instruction; the firmware finds no boot device) or a 100-byte
// multiboot payload that prints a line on COM1 and halts. Every QEMU is owned
// by a Subprocess inside QemuHypervisor and is stopped by pid even when an
// assertion fails.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/hypervisor/console_log.h"
#include "shim/hypervisor/host_capabilities.h"
#include "shim/hypervisor/hypervisor.h"
#include "shim/hypervisor/qemu/qemu_args.h"
#include "shim/hypervisor/qemu/qemu_hypervisor.h"
#include "shim/hypervisor/qemu/qmp_client.h"
#include "tests/util/skip.h"

namespace cloak::shim::hypervisor {
namespace {

using ::testing::HasSubstr;

constexpr char kPayloadMessage[] = "cloak-test-payload: hello";

// A multiboot (v1) flat binary loaded at 1 MiB: writes kPayloadMessage and a
// newline to COM1 (0x3f8), then halts forever.
std::string MultibootPayload() {
  auto le32 = [](std::string& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  const uint32_t magic = 0x1BADB002, flags = 0x00010000;  // address fields valid
  const uint32_t base = 0x100000, entry = base + 32;
  std::string code;
  code += "\x66\xBA\xF8\x03";  // mov dx, 0x3f8
  const uint32_t message_addr = entry + 4 + 5 + 11;
  code += '\xBE';  // mov esi, imm32
  le32(code, message_addr);
  // lodsb; test al,al; jz +3; out dx,al; jmp -8; hlt; jmp -3
  code += std::string("\xAC\x84\xC0\x74\x03\xEE\xEB\xF8\xF4\xEB\xFD", 11);
  std::string image;
  le32(image, magic);
  le32(image, flags);
  le32(image, static_cast<uint32_t>(-(magic + flags)));
  le32(image, base);   // header_addr
  le32(image, base);   // load_addr
  le32(image, 0);      // load_end_addr: whole file
  le32(image, 0);      // bss_end_addr: none
  le32(image, entry);  // entry_addr
  image += code;
  image += kPayloadMessage;
  image += '\n';
  image.push_back('\0');
  return image;
}

class QemuIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    caps_ = ProbeHost();
    if (!caps_.qemu.found) {
      CLOAK_SKIP() << "qemu-system-x86_64 is not usable here (" << caps_.qemu.error
                   << "): install qemu-system-x86";
    }
    auto dir = TempDir::Create("cloak-hv-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
  }

  VmConfig Config() {
    VmConfig c;
    c.name = "hv-test";
    c.accel = Accel::kTcg;
    c.memory_mib = 128;
    c.agent_channel = AgentChannel::kSerial;
    c.qmp_socket_path = dir_->Join("qmp.sock");
    c.serial_socket_path = dir_->Join("agent.sock");
    c.console_log_path = dir_->Join("console.log");
    c.user_network = false;
    return c;
  }

  std::string WritePayload() {
    const std::string path = dir_->Join("payload.bin");
    std::ofstream(path, std::ios::binary) << MultibootPayload();
    return path;
  }

  HostCapabilities caps_;
  std::optional<TempDir> dir_;
};

TEST_F(QemuIntegrationTest, PausedStartQueryContStopQuit) {
  VmConfig config = Config();
  config.start_paused = true;
  config.user_network = true;  // the production netdev line must be accepted
  auto hv = QemuHypervisor::Create(config, caps_);
  ASSERT_TRUE(hv.ok()) << hv.status();
  absl::Mutex mu;
  std::vector<std::string> events;
  (*hv)->SetEventCallback([&](const VmEvent& e) {
    absl::MutexLock lock(&mu);
    events.push_back(e.name);
  });
  ASSERT_TRUE((*hv)->Start(absl::Now() + absl::Seconds(20)).ok());
  const pid_t pid = (*hv)->Pid();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(::kill(pid, 0), 0);

  auto status = (*hv)->Status(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->detail, "prelaunch");
  EXPECT_EQ(status->state, VmState::kPaused);

  ASSERT_TRUE((*hv)->Resume(absl::Now() + absl::Seconds(5)).ok());
  status = (*hv)->Status(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->detail, "running");
  EXPECT_EQ(status->state, VmState::kRunning);

  ASSERT_TRUE((*hv)->Pause(absl::Now() + absl::Seconds(5)).ok());
  status = (*hv)->Status(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->detail, "paused");
  EXPECT_EQ(status->state, VmState::kPaused);
  ASSERT_TRUE((*hv)->Resume(absl::Now() + absl::Seconds(5)).ok());

  auto early = (*hv)->Wait(absl::Now() + absl::Milliseconds(100));
  EXPECT_TRUE(absl::IsDeadlineExceeded(early.status())) << early.status();

  absl::Time before = absl::Now();
  auto exit = (*hv)->Stop(absl::Seconds(10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_EQ(exit->term_signal, 0);
  EXPECT_LT(absl::Now() - before, absl::Seconds(5)) << "quit should be quick";
  EXPECT_EQ((*hv)->Pid(), -1);
  EXPECT_NE(::kill(pid, 0), 0) << "QEMU pid " << pid << " still exists (not reaped?)";
  status = (*hv)->Status(absl::Now() + absl::Seconds(1));
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, VmState::kExited);
  // Stop again returns the same exit; Pause on an exited VM is a wrong state.
  EXPECT_EQ((*hv)->Stop(absl::Seconds(1))->exit_code, 0);
  EXPECT_TRUE(absl::IsFailedPrecondition((*hv)->Pause(absl::Now() + absl::Seconds(1))));
  EXPECT_TRUE(absl::IsFailedPrecondition((*hv)->Start(absl::Now() + absl::Seconds(1))));

  absl::MutexLock lock(&mu);
  EXPECT_THAT(events, ::testing::IsSupersetOf({"RESUME", "STOP", "SHUTDOWN"}));
}

TEST_F(QemuIntegrationTest, StopFallsBackToSigkillWhenQmpIsUnresponsive) {
  VmConfig config = Config();
  config.start_paused = true;
  auto hv = QemuHypervisor::Create(config, caps_);
  ASSERT_TRUE(hv.ok()) << hv.status();
  ASSERT_TRUE((*hv)->Start(absl::Now() + absl::Seconds(20)).ok());
  const pid_t pid = (*hv)->Pid();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);  // QEMU can no longer answer QMP
  absl::Time before = absl::Now();
  auto exit = (*hv)->Stop(absl::Seconds(1));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->term_signal, SIGKILL);
  EXPECT_EQ(exit->exit_code, 128 + SIGKILL);
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));
  EXPECT_NE(::kill(pid, 0), 0);
}

TEST_F(QemuIntegrationTest, KilledQemuIsSeenByWaitAndStatus) {
  VmConfig config = Config();
  config.start_paused = true;
  auto hv = QemuHypervisor::Create(config, caps_);
  ASSERT_TRUE(hv.ok()) << hv.status();
  ASSERT_TRUE((*hv)->Start(absl::Now() + absl::Seconds(20)).ok());
  ASSERT_EQ(::kill((*hv)->Pid(), SIGKILL), 0);
  auto exit = (*hv)->Wait(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 137);
  auto status = (*hv)->Status(absl::Now() + absl::Seconds(1));
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, VmState::kExited);
  ASSERT_TRUE(status->exit.has_value());
  EXPECT_EQ(status->exit->term_signal, SIGKILL);
  EXPECT_TRUE(absl::IsFailedPrecondition((*hv)->Resume(absl::Now() + absl::Seconds(1))));
}

TEST_F(QemuIntegrationTest, WaitFromAnotherThreadWhileStopping) {
  VmConfig config = Config();
  config.start_paused = true;
  auto hv = QemuHypervisor::Create(config, caps_);
  ASSERT_TRUE(hv.ok()) << hv.status();
  ASSERT_TRUE((*hv)->Start(absl::Now() + absl::Seconds(20)).ok());
  std::atomic<int> waited_code{-1};
  std::thread waiter([&] {
    auto e = (*hv)->Wait(absl::Now() + absl::Seconds(30));
    if (e.ok()) waited_code = e->exit_code;
  });
  absl::SleepFor(absl::Milliseconds(200));
  auto exit = (*hv)->Stop(absl::Seconds(10));
  waiter.join();
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(waited_code.load(), exit->exit_code);
}

TEST_F(QemuIntegrationTest, TinyPayloadBootsAndWritesTheConsole) {
  VmConfig config = Config();
  config.kernel = WritePayload();
  auto hv = QemuHypervisor::Create(config, caps_);
  ASSERT_TRUE(hv.ok()) << hv.status();
  BootDeadline boot(absl::Seconds(30), config.console_log_path);
  ASSERT_TRUE((*hv)->Start(boot.deadline()).ok());
  absl::Status booted = boot.WaitFor(**hv, "the payload's console line", [&] {
    return absl::StatusOr<bool>((*hv)->ConsoleTail(5).find(kPayloadMessage) !=
                                std::string::npos);
  });
  EXPECT_TRUE(booted.ok()) << booted;
  EXPECT_THAT((*hv)->ConsoleTail(1), HasSubstr(kPayloadMessage));
  // The payload then halts; a boot step that never happens quotes the console.
  BootDeadline short_boot(absl::Milliseconds(300), config.console_log_path);
  absl::Status never =
      short_boot.WaitFor(**hv, "the agent to answer", [] { return absl::StatusOr<bool>(false); });
  EXPECT_TRUE(absl::IsDeadlineExceeded(never)) << never;
  EXPECT_THAT(never.message(), HasSubstr("the agent to answer did not happen within 300ms"));
  EXPECT_THAT(never.message(), HasSubstr(kPayloadMessage));
  EXPECT_TRUE((*hv)->Stop(absl::Seconds(10)).ok());
}

TEST_F(QemuIntegrationTest, GuestExitWhileWaitingForBootIsReported) {
  VmConfig config = Config();
  config.kernel = WritePayload();
  // A VMM that dies during boot (here: kill -9 from outside).
  auto hv = QemuHypervisor::Create(config, caps_);
  ASSERT_TRUE(hv.ok()) << hv.status();
  BootDeadline boot(absl::Seconds(30), config.console_log_path);
  ASSERT_TRUE((*hv)->Start(boot.deadline()).ok());
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(300));
    ::kill((*hv)->Pid(), SIGKILL);
  });
  absl::Status s =
      boot.WaitFor(**hv, "the agent to answer", [] { return absl::StatusOr<bool>(false); });
  killer.join();
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("the VM exited (code 137, signal 9)"));
}

TEST_F(QemuIntegrationTest, QemuStartupErrorIsQuoted) {
  VmConfig config = Config();
  config.extra_args = {"-device", "no-such-device-xyz"};
  auto hv = QemuHypervisor::Create(config, caps_);
  ASSERT_TRUE(hv.ok()) << hv.status();
  absl::Status s = (*hv)->Start(absl::Now() + absl::Seconds(20));
  EXPECT_TRUE(absl::IsInternal(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("ended during startup with exit code 1"));
  EXPECT_THAT(s.message(), HasSubstr("no-such-device-xyz"));
  EXPECT_EQ((*hv)->Pid(), -1);
}

TEST_F(QemuIntegrationTest, CreateRejectsMissingKernel) {
  VmConfig config = Config();
  config.kernel = dir_->Join("vmlinuz-missing");
  auto hv = QemuHypervisor::Create(config, caps_);
  EXPECT_TRUE(absl::IsNotFound(hv.status())) << hv.status();
  EXPECT_THAT(hv.status().message(), HasSubstr("kernel " + config.kernel + " does not exist"));
}

TEST_F(QemuIntegrationTest, CreateRejectsTeeThisHostCannotProvide) {
  if (caps_.qemu.has_sev_snp_guest && caps_.sev_snp) CLOAK_SKIP() << "this host can run SNP";
  VmConfig config = Config();
  config.accel = Accel::kAuto;
  config.tee = TeeType::kSnp;
  config.kernel = WritePayload();
  config.firmware = config.kernel;
  auto hv = QemuHypervisor::Create(config, caps_);
  EXPECT_TRUE(absl::IsFailedPrecondition(hv.status())) << hv.status();
  EXPECT_THAT(hv.status().message(), HasSubstr("tee=snp needs"));
}

TEST_F(QemuIntegrationTest, AutoAccelAvoidsPvmKvm) {
  if (!caps_.kvm_pvm) CLOAK_SKIP() << "this host's KVM is not kvm_pvm";
  VmConfig config = Config();
  config.accel = Accel::kAuto;
  config.agent_channel = AgentChannel::kAuto;
  auto accel = ResolveAccel(config, caps_);
  ASSERT_TRUE(accel.ok());
  EXPECT_EQ(accel->accel, Accel::kTcg);
  // A kvm_pvm guest may have no /dev/kvm at all; either way TCG, saying why.
  EXPECT_THAT(accel->reason, HasSubstr(caps_.kvm_present ? "kvm_pvm" : "/dev/kvm does not exist"));
  auto hv = QemuHypervisor::Create(config, caps_);
  ASSERT_TRUE(hv.ok()) << hv.status();
  EXPECT_THAT((*hv)->CommandLine(), ::testing::Contains("tcg"));
  EXPECT_EQ((*hv)->Agent().kind, caps_.vhost_vsock ? transport::AgentAddress::Kind::kVsock
                                                    : transport::AgentAddress::Kind::kSerial);
}

TEST_F(QemuIntegrationTest, RawQmpClientAgainstRealQemu) {
  VmConfig config = Config();
  config.start_paused = true;
  auto args = BuildQemuArgs(config, caps_);
  ASSERT_TRUE(args.ok()) << args.status();
  SpawnOptions options;
  options.stderr_path = dir_->Join("qemu.log");
  options.stop_grace = absl::Seconds(1);
  auto qemu = Subprocess::Spawn(*args, options);  // killed by pid when it goes out of scope
  ASSERT_TRUE(qemu.ok()) << qemu.status();
  auto qmp = QmpClient::Connect(config.qmp_socket_path, absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(qmp.ok()) << qmp.status();
  EXPECT_EQ((*qmp)->qemu_version(), QemuVersionString(caps_.qemu.version));
  auto status = (*qmp)->QueryStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->status, "prelaunch");
  ASSERT_TRUE((*qmp)->Cont().ok());
  EXPECT_TRUE((*qmp)->WaitForEvent("RESUME", absl::Now() + absl::Seconds(5)).ok());
  EXPECT_TRUE((*qmp)->QueryStatus()->running);
  ASSERT_TRUE((*qmp)->Stop().ok());
  EXPECT_TRUE((*qmp)->WaitForEvent("STOP", absl::Now() + absl::Seconds(5)).ok());
  EXPECT_EQ((*qmp)->QueryStatus()->status, "paused");
  auto unknown = (*qmp)->Execute("no-such-command");
  EXPECT_TRUE(absl::IsUnimplemented(unknown.status())) << unknown.status();
  ASSERT_TRUE((*qmp)->Quit().ok());
  auto exit = qemu->Wait(absl::Seconds(10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_FALSE((*qmp)->Health().ok());
}

// A real guest boot, only where a guest kernel has been built.
TEST_F(QemuIntegrationTest, RealGuestKernelBootsIfAvailable) {
  std::string kernel, initrd;
  for (const auto& entry : std::filesystem::directory_iterator(CLOAK_SOURCE_DIR)) {
    if (entry.path().filename().string().rfind("build", 0) != 0) continue;
    auto k = entry.path() / "guest-image" / "vmlinuz";
    auto i = entry.path() / "guest-image" / "initrd.img";
    if (std::filesystem::exists(k) && std::filesystem::exists(i)) {
      kernel = k.string();
      initrd = i.string();
      break;
    }
  }
  if (kernel.empty()) CLOAK_SKIP() << "no build*/guest-image/vmlinuz + initrd.img in the tree";
  VmConfig config = Config();
  config.memory_mib = 512;
  config.kernel = kernel;
  config.initrd = initrd;
  config.kernel_cmdline = "console=ttyS0 panic=-1";
  auto hv = QemuHypervisor::Create(config, caps_);
  ASSERT_TRUE(hv.ok()) << hv.status();
  BootDeadline boot(absl::Seconds(60), config.console_log_path);
  ASSERT_TRUE((*hv)->Start(boot.deadline()).ok());
  absl::Status s = boot.WaitFor(**hv, "the kernel banner", [&] {
    return absl::StatusOr<bool>((*hv)->ConsoleTail(200).find("Linux version") !=
                                std::string::npos);
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_TRUE((*hv)->Stop(absl::Seconds(10)).ok());
}

}  // namespace
}  // namespace cloak::shim::hypervisor
