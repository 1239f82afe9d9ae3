#include "shim/sandbox_factory.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/transport/agent_transport.h"
#include "shim/bundle.h"
#include "shim/hypervisor/host_capabilities.h"
#include "shim/hypervisor/qemu/qemu_hypervisor.h"
#include "shim/initdata.h"
#include "shim/pod_network.h"
#include "shim/simulated_sp.h"
#include "shim/task_translate.h"
#include "spdlog/spdlog.h"

namespace cloak::shim {
namespace {

namespace hv = ::cloak::shim::hypervisor;

uint32_t GuestCid(const std::string& sandbox_id) {
  // FNV-1a, mapped above the reserved CIDs 0-2.
  uint32_t h = 2166136261u;
  for (unsigned char c : sandbox_id) {
    h ^= c;
    h *= 16777619u;
  }
  return 3 + h % 0x7ffffff0u;
}

const hv::HostCapabilities& Capabilities(const std::string& qemu_path) {
  static absl::Mutex mu(absl::kConstInit);
  static std::map<std::string, hv::HostCapabilities>* cache =
      new std::map<std::string, hv::HostCapabilities>();
  absl::MutexLock lock(&mu);
  auto it = cache->find(qemu_path);
  if (it == cache->end()) {
    hv::ProbeOptions options;
    options.qemu_path = qemu_path;
    it = cache->emplace(qemu_path, hv::ProbeHost(options)).first;
    Logger("shim")->info("host: {}", it->second.Summary());
  }
  return it->second;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> ConnectAgent(const hv::AgentEndpoint& endpoint,
                                                            absl::Duration timeout) {
  transport::AgentAddress address;
  if (endpoint.channel == hv::AgentChannel::kVsock) {
    address.kind = transport::AgentAddress::Kind::kVsock;
    address.cid = endpoint.vsock_cid;
    address.port = endpoint.vsock_port;
  } else {
    address.kind = transport::AgentAddress::Kind::kSerial;
    address.path = endpoint.serial_socket_path;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<transport::AgentTransport> t, transport::CreateTransport(address));
  return t->Connect(timeout);
}

}  // namespace

std::string SandboxStateDir(const config::Config& config, const std::string& sandbox_id) {
  return absl::StrCat(config.runtime.state_dir, "/", sandbox_id);
}

absl::StatusOr<hv::VmConfig> BuildVmConfig(const config::Config& config,
                                           const std::string& sandbox_id,
                                           const std::string& state_dir,
                                           const std::vector<std::string>& insecure_registries) {
  const config::HypervisorConfig& h = config.hypervisor;
  if (h.driver != config::HypervisorDriver::kQemu) {
    return absl::UnimplementedError(absl::StrCat(
        "hypervisor.driver = \"", config::HypervisorDriverName(h.driver),
        "\" is not implemented yet; use \"qemu\""));
  }
  hv::VmConfig vm;
  vm.name = absl::StrCat("cloak-", sandbox_id.substr(0, 32));
  vm.qemu_path = h.qemu_path;
  vm.machine = h.machine;
  ASSIGN_OR_RETURN(vm.accel, hv::ParseAccel(config::AccelName(h.accel)));
  vm.cpu = h.cpu_model;
  vm.memory_mib = static_cast<int>(h.memory_mib);
  vm.vcpus = static_cast<int>(h.vcpus);
  vm.kernel = h.kernel;
  vm.initrd = h.initrd;
  vm.firmware = h.firmware;
  ASSIGN_OR_RETURN(vm.tee, hv::ParseTeeType(config::TeeTypeName(config.tee.type)));
  vm.snp.cbitpos = static_cast<int>(config.tee.snp.cbitpos);
  vm.snp.reduced_phys_bits = static_cast<int>(config.tee.snp.reduced_phys_bits);
  vm.snp.policy = config.tee.snp.policy;
  vm.snp.kernel_hashes = config.tee.snp.kernel_hashes;
  vm.tdx.quote_generation_socket =
      config.tee.tdx.quote_generation_socket.empty() ||
              config.tee.tdx.quote_generation_socket.rfind("vsock:", 0) == 0
          ? config.tee.tdx.quote_generation_socket
          : absl::StrCat("unix:", config.tee.tdx.quote_generation_socket);
  vm.tdx.sept_ve_disable = config.tee.tdx.sept_ve_disable;
  ASSIGN_OR_RETURN(vm.agent_channel,
                   hv::ParseAgentChannel(config::AgentChannelName(config.agent.channel)));
  vm.vsock_guest_cid = GuestCid(sandbox_id);
  vm.vsock_port = static_cast<uint32_t>(config.agent.vsock_port);
  vm.serial_socket_path = absl::StrCat(state_dir, "/agent.sock");
  vm.qmp_socket_path = absl::StrCat(state_dir, "/qmp.sock");
  vm.console_log_path = absl::StrCat(state_dir, "/console.log");
  vm.vmm_log_path = absl::StrCat(state_dir, "/qemu.log");
  vm.kernel_cmdline = absl::StrCat(kBaseKernelCmdline, " cloak.channel=",
                                   config::AgentChannelName(config.agent.channel),
                                   " cloak.port=", config.agent.vsock_port,
                                   " cloak.log=", config.agent.log_level);
  if (!insecure_registries.empty()) {
    absl::StrAppend(&vm.kernel_cmdline, " cloak.insecure_registries=",
                    absl::StrJoin(insecure_registries, ","));
  }
  if (!h.kernel_params.empty()) absl::StrAppend(&vm.kernel_cmdline, " ", h.kernel_params);
  vm.user_network = true;
  vm.boot_timeout = config.agent.boot_timeout;
  if (vm.qmp_socket_path.size() > 107) {
    return absl::InvalidArgumentError(absl::StrCat(
        "runtime.state_dir is too long: the QMP socket path ", vm.qmp_socket_path,
        " exceeds 107 bytes"));
  }
  return vm;
}

std::vector<std::string> GuestInsecureRegistries(const std::vector<std::string>& configured,
                                                 const std::string& image, bool host_loopback) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& r) {
    if (!r.empty() && std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
  };
  if (!host_loopback) {
    for (const std::string& r : configured) add(r);
    return out;
  }
  for (const std::string& r : configured) {
    GuestImage g = GuestImageReference(absl::StrCat(r, "/x"));
    add(g.guest_loopback_registry.empty() ? r : g.guest_loopback_registry);
  }
  add(GuestImageReference(image).guest_loopback_registry);
  return out;
}

SandboxOptions BuildSandboxOptions(const config::Config& config, const SandboxRequest& request,
                                   const std::string& state_dir) {
  SandboxOptions options;
  options.id = request.sandbox_id;
  options.state_dir = state_dir;
  options.boot_timeout = config.agent.boot_timeout;
  options.request_timeout = config.agent.request_timeout;
  options.pull_timeout = config.image.pull_timeout;
  auto name = request.pod.annotations.find(std::string(kCriSandboxName));
  options.hostname = name != request.pod.annotations.end() ? name->second : "";
  if (options.hostname.size() > 63) options.hostname.resize(63);
  // QEMU user-mode networking (VmConfig.user_network): the guest is
  // 10.0.2.15/24 on the first NIC (QEMU's default MAC), the gateway 10.0.2.2
  // is the host's loopback, and 10.0.2.3 is QEMU's DNS forwarder.
  options.interfaces.push_back({.name = "eth0",
                                .mac = std::string(kQemuUserNetMac),
                                .addresses = {{.address = "10.0.2.15", .prefix_length = 24}},
                                .mtu = 0});
  options.routes.push_back(
      {.destination = "", .gateway = std::string(kHostLoopbackFromGuest), .device = "eth0"});
  options.dns.push_back("nameserver 10.0.2.3");
  const std::vector<std::string> insecure =
      GuestInsecureRegistries(config.image.insecure_registries, request.pod.image);
  if (!insecure.empty()) {
    options.annotations[std::string(kInsecureRegistriesAnnotation)] = absl::StrJoin(insecure, ",");
  }
  return options;
}

absl::StatusOr<std::unique_ptr<Sandbox>> MakeQemuSandbox(const SandboxRequest& request) {
  ASSIGN_OR_RETURN(config::ConfigFile file, config::LoadConfigFromSearchPath(request.config_path));
  Logger("shim")->info("sandbox={} config {}", request.sandbox_id,
                       file.path.empty() ? std::string("(built-in defaults)") : file.path);
  absl::StatusOr<config::Config> cfg = config::ApplyAnnotations(file.config, request.pod.annotations);
  if (!cfg.ok()) return Annotate(cfg.status(), "pod annotations");
  const std::string state_dir = SandboxStateDir(*cfg, request.sandbox_id);
  // A pod with its own network namespace (CRI + CNI): the VM's NIC is
  // wired into it instead of QEMU's user network.
  std::shared_ptr<PodNetworkAttachment> pod_network;
  if (!request.pod.netns_path.empty()) {
    ASSIGN_OR_RETURN(std::unique_ptr<PodNetworkAttachment> attached,
                     PodNetworkAttachment::Attach(request.pod.netns_path, request.sandbox_id));
    pod_network = std::move(attached);
  }
  const bool host_loopback = pod_network == nullptr;
  ASSIGN_OR_RETURN(hv::VmConfig vm,
                   BuildVmConfig(*cfg, request.sandbox_id, state_dir,
                                 GuestInsecureRegistries(cfg->image.insecure_registries,
                                                         request.pod.image, host_loopback)));
  if (pod_network != nullptr) {
    vm.user_network = false;
    vm.taps = pod_network->Taps();
  }
  ASSIGN_OR_RETURN(std::optional<InitData> initdata,
                   InitDataFromAnnotations(request.pod.annotations));
  if (initdata.has_value()) {
    // Bound into the launch: what the TEE evidence will carry.
    vm.snp.host_data = DigestForField(initdata->digest, 32);
    vm.tdx.mrconfigid = DigestForField(initdata->digest, 48);
    Logger("shim")->info("sandbox={} init-data: {} bytes, {} {}", request.sandbox_id,
                         initdata->document.size(), initdata->algorithm,
                         absl::BytesToHexString(initdata->digest));
  }
  const hv::HostCapabilities& caps = Capabilities(vm.qemu_path);
  if (vm.agent_channel == hv::AgentChannel::kAuto) {
    // Both ends must agree: tell the guest what the host resolved.
    ASSIGN_OR_RETURN(hv::ChannelChoice channel, hv::ResolveChannel(vm, caps));
    vm.agent_channel = channel.channel;
    vm.kernel_cmdline = absl::StrReplaceAll(
        vm.kernel_cmdline,
        {{"cloak.channel=auto",
          absl::StrCat("cloak.channel=", hv::AgentChannelName(channel.channel))}});
    Logger("shim")->info("sandbox={} agent channel {}: {}", request.sandbox_id,
                         std::string(hv::AgentChannelName(channel.channel)), channel.reason);
  }
  std::shared_ptr<SimulatedSpHost> sp;
  if (!cfg->tee.simulated_snp_chain.empty()) {
    if (cfg->tee.type != config::TeeType::kNone) {
      return absl::InvalidArgumentError(
          "tee.simulated_snp_chain is for the dev fallback only: set tee.type = \"none\" or "
          "remove tee.simulated_snp_chain");
    }
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("create ", state_dir, ": ", ec.message()));
    vm.sp_socket_path = absl::StrCat(state_dir, "/sp.sock");
    ASSIGN_OR_RETURN(sp, SimulatedSpHost::Start(
                             cfg->tee.simulated_snp_chain, vm.sp_socket_path, vm.kernel, vm.initrd,
                             vm.kernel_cmdline, vm.vcpus, vm.firmware,
                             initdata.has_value() ? DigestForField(initdata->digest, 32) : ""));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<hv::Hypervisor> hypervisor, hv::QemuHypervisor::Create(vm, caps));
  if (!request.bundle.empty()) {
    RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(request.bundle, "/", kBundleStateDirFile),
                                    state_dir, 0600));
  }
  SandboxOptions options = BuildSandboxOptions(*cfg, request, state_dir);
  if (pod_network != nullptr) {
    options.host_loopback_reachable = false;
    options.interfaces = pod_network->GuestInterfaces();
    options.routes = pod_network->GuestRoutes();
    options.dns.clear();
    options.annotations.erase(std::string(kInsecureRegistriesAnnotation));
    if (!request.pod.resolv_conf_source.empty()) {
      absl::StatusOr<std::string> resolv =
          ReadFileToString(request.pod.resolv_conf_source, 64 << 10);
      if (resolv.ok()) {
        options.dns = ResolvConfLines(*resolv);
      } else {
        Logger("shim")->warn("sandbox={} the pod's resolv.conf: {} (the guest gets no DNS)",
                             request.sandbox_id, resolv.status().ToString());
      }
    }
    options.companions.push_back(pod_network);
  }
  if (initdata.has_value()) options.initdata = std::move(initdata->document);
  if (sp != nullptr) options.companions.push_back(std::move(sp));
  return std::make_unique<Sandbox>(std::move(options), std::move(hypervisor), ConnectAgent);
}

}  // namespace cloak::shim
