#include "tests/guest/guest_harness.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/transport/agent_transport.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "shim/hypervisor/host_capabilities.h"
#include "shim/hypervisor/qemu/qemu_hypervisor.h"

#ifndef CLOAK_BUILD_DIR
#error "CLOAK_BUILD_DIR must be defined"
#endif

namespace cloak::guest_test {
namespace {

namespace agentpb = ::cloak::agent::v1;
namespace hv = ::cloak::shim::hypervisor;

// The shim's config default for [agent] vsock_port, passed as cloak.port.
constexpr int kAgentPort = 1024;
// Grace for QMP quit before SIGKILL when the harness is destroyed.
constexpr absl::Duration kStopGrace = absl::Seconds(5);

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

std::string OrDefault(const std::string& value, std::string fallback) {
  return value.empty() ? std::move(fallback) : value;
}

}  // namespace

std::string DefaultKernel() { return absl::StrCat(CLOAK_BUILD_DIR, "/guest-image/vmlinuz"); }
std::string DefaultInitrd() { return absl::StrCat(CLOAK_BUILD_DIR, "/guest-image/initrd.img"); }

absl::Status CheckCanBoot(const GuestOptions& options) {
  const std::string kernel = OrDefault(options.kernel, DefaultKernel());
  const std::string initrd = OrDefault(options.initrd, DefaultInitrd());
  if (!Exists(kernel) || !Exists(initrd)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no guest image (", kernel, ", ", initrd, "): build it with ninja -C ", CLOAK_BUILD_DIR,
        " guest-image"));
  }
  hv::ProbeOptions probe;
  probe.qemu_path = options.qemu_path;
  hv::HostCapabilities caps = hv::ProbeHost(probe);
  if (!caps.qemu.found) {
    return absl::FailedPreconditionError(absl::StrCat(
        options.qemu_path, " is not usable here (", caps.qemu.error, "): install qemu-system-x86"));
  }
  return absl::OkStatus();
}

std::string GuestKernelParams(const GuestOptions& options) {
  std::string out = absl::StrCat("cloak.log=", options.agent_log_level,
                                 " cloak.max_downloads=", options.max_concurrent_downloads);
  if (!options.insecure_registries.empty()) {
    absl::StrAppend(&out, " cloak.insecure_registries=",
                    absl::StrJoin(options.insecure_registries, ","));
  }
  return out;
}

hv::VmConfig BuildGuestVmConfig(const GuestOptions& options, const std::string& state_dir) {
  hv::VmConfig vm;
  vm.name = absl::StrCat("cloak-", options.sandbox_id.substr(0, 32));
  vm.qemu_path = options.qemu_path;
  vm.accel = hv::Accel::kTcg;
  vm.memory_mib = options.memory_mib;
  vm.vcpus = options.vcpus;
  vm.kernel = OrDefault(options.kernel, DefaultKernel());
  vm.initrd = OrDefault(options.initrd, DefaultInitrd());
  vm.agent_channel = hv::AgentChannel::kSerial;
  vm.serial_socket_path = absl::StrCat(state_dir, "/agent.sock");
  vm.qmp_socket_path = absl::StrCat(state_dir, "/qmp.sock");
  vm.console_log_path = absl::StrCat(state_dir, "/console.log");
  vm.vmm_log_path = absl::StrCat(state_dir, "/qemu.log");
  // The shim's class command line (shim/hypervisor/guest_cmdline.h) for a
  // dev class, then the harness's agent settings as class-level kernel
  // parameters (hypervisor.kernel_params in the shim's terms): the shim
  // puts them in the init-data, which guest tests bring themselves.
  vm.kernel_cmdline = absl::StrCat(kBaseKernelCmdline, " cloak.channel=serial cloak.port=",
                                   kAgentPort, " cloak.tee=none");
  if (options.allow_all_policy) absl::StrAppend(&vm.kernel_cmdline, " cloak.policy=allow-all");
  absl::StrAppend(&vm.kernel_cmdline, " ", GuestKernelParams(options));
  vm.user_network = true;
  vm.boot_timeout = options.boot_timeout;
  return vm;
}

agentpb::CreateSandboxRequest BuildCreateSandboxRequest(const GuestOptions& options) {
  agentpb::CreateSandboxRequest create;
  create.set_sandbox_id(options.sandbox_id);
  create.set_hostname(options.hostname.substr(0, 63));
  agentpb::NetworkInterface* iface = create.add_interfaces();
  iface->set_name("eth0");
  iface->set_mac(kQemuUserNetMac);
  agentpb::IpAddress* address = iface->add_addresses();
  address->set_address(kGuestAddress);
  address->set_prefix_length(kGuestPrefixLength);
  agentpb::Route* route = create.add_routes();
  route->set_destination("");
  route->set_gateway(kHostLoopbackFromGuest);
  route->set_device("eth0");
  create.add_dns(kGuestDns);
  return create;
}

std::unique_ptr<grpc::ClientContext> CallContext(absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

absl::Status FromGrpc(absl::string_view method, const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return FromGrpcStatus(status, absl::StrCat("agent ", method));
}

GuestHarness::GuestHarness(GuestOptions options, TempDir dir,
                           std::unique_ptr<hv::Hypervisor> hypervisor)
    : options_(std::move(options)),
      dir_(std::move(dir)),
      state_dir_(dir_->path().string()),
      hv_(std::move(hypervisor)) {}

GuestHarness::~GuestHarness() {
  stub_.reset();
  channel_.reset();
  if (hv_ != nullptr) {
    const pid_t pid = hv_->Pid();
    (void)hv_->Stop(kStopGrace);
    // Stop reaps the process; should it not have, do not leave it behind.
    if (pid > 0 && hv_->Pid() == pid) ::kill(pid, SIGKILL);
    hv_.reset();
  }
  dir_.reset();  // removes sockets and logs
}

absl::StatusOr<std::unique_ptr<GuestHarness>> GuestHarness::Boot(const GuestOptions& options) {
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("cloak-vm-", options.state_parent));
  const std::string state_dir = dir.path().string();
  hv::VmConfig vm = BuildGuestVmConfig(options, state_dir);
  if (vm.qmp_socket_path.size() > 107) {
    return absl::InvalidArgumentError(
        absl::StrCat("state directory ", state_dir, " is too long for a unix socket path"));
  }
  hv::ProbeOptions probe;
  probe.qemu_path = options.qemu_path;
  const hv::HostCapabilities caps = hv::ProbeHost(probe);
  ASSIGN_OR_RETURN(std::unique_ptr<hv::Hypervisor> hypervisor,
                   hv::QemuHypervisor::Create(vm, caps));
  std::unique_ptr<GuestHarness> harness(
      new GuestHarness(options, std::move(dir), std::move(hypervisor)));

  const absl::Time start = absl::Now();
  const absl::Time deadline = start + options.boot_timeout;
  RETURN_IF_ERROR(Annotate(harness->hv_->Start(deadline), "start QEMU"));
  RETURN_IF_ERROR(harness->WaitForAgent(deadline));
  harness->boot_to_ready_ = absl::Now() - start;
  return harness;
}

absl::Status GuestHarness::Connect(absl::Time deadline) {
  stub_.reset();
  channel_.reset();
  const transport::AgentAddress address = hv_->Agent();
  ASSIGN_OR_RETURN(std::unique_ptr<transport::AgentTransport> t,
                   transport::CreateTransport(address));
  absl::Duration left = std::max(deadline - absl::Now(), absl::Milliseconds(1));
  ASSIGN_OR_RETURN(channel_, t->Connect(left));
  stub_ = agentpb::AgentService::NewStub(channel_);
  return absl::OkStatus();
}

absl::Status GuestHarness::WaitForAgent(absl::Time deadline) {
  // As the shim (shim/sandbox.cc Boot): connect, then probe Health; a fd
  // channel never reconnects, so an UNAVAILABLE answer means a new one.
  absl::Status last = Connect(deadline);
  while (absl::Now() < deadline) {
    if (hv_->Wait(absl::Now()).ok()) {
      return absl::AbortedError(absl::StrCat("QEMU exited while the guest booted; console:\n",
                                             ConsoleTail(40)));
    }
    if (stub_ != nullptr) {
      agentpb::HealthResponse health;
      auto ctx = CallContext(std::min(kHealthAttemptTimeout, deadline - absl::Now()));
      last = FromGrpc("Health", stub_->Health(ctx.get(), agentpb::HealthRequest(), &health));
      if (last.ok() && health.serving()) return absl::OkStatus();
      if (last.ok()) last = absl::UnavailableError("the agent is not serving yet");
      if (last.code() != absl::StatusCode::kUnavailable) continue;
    }
    absl::SleepFor(absl::Milliseconds(100));
    if (absl::Status s = Connect(deadline); !s.ok()) last = s;
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "the guest agent did not answer within ", absl::FormatDuration(options_.boot_timeout),
      " of QEMU's start (last error: ", last.ToString(), "); console:\n", ConsoleTail(40)));
}

absl::Status GuestHarness::CreateSandbox(absl::Duration timeout) {
  agentpb::CreateSandboxResponse created;
  return FromGrpc("CreateSandbox", stub_->CreateSandbox(CallContext(timeout).get(),
                                                        BuildCreateSandboxRequest(options_),
                                                        &created));
}

absl::StatusOr<ExitInfo> GuestHarness::DestroySandboxAndWaitForPowerOff(absl::Time deadline) {
  agentpb::DestroySandboxRequest request;
  request.set_power_off(true);
  agentpb::DestroySandboxResponse response;
  RETURN_IF_ERROR(FromGrpc(
      "DestroySandbox",
      stub_->DestroySandbox(CallContext(deadline - absl::Now()).get(), request, &response)));
  stub_.reset();
  channel_.reset();
  return hv_->Wait(deadline);
}

}  // namespace cloak::guest_test
