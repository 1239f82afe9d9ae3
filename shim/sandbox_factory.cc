#include "shim/sandbox_factory.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tee/snp_report.h"
#include "common/tee/tdx_quote.h"
#include "common/transport/agent_transport.h"
#include "shim/bundle.h"
#include "shim/commands.h"
#include "shim/hypervisor/guest_cmdline.h"
#include "shim/hypervisor/host_capabilities.h"
#include "shim/host_config.h"
#include "shim/hypervisor/libvirt/libvirt_connection.h"
#include "shim/hypervisor/libvirt/libvirt_hypervisor.h"
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

const hv::LibvirtCapabilities& LibvirtCaps(const std::string& uri, const std::string& machine) {
  static absl::Mutex mu(absl::kConstInit);
  static std::map<std::string, hv::LibvirtCapabilities>* cache =
      new std::map<std::string, hv::LibvirtCapabilities>();
  absl::MutexLock lock(&mu);
  const std::string key = absl::StrCat(uri, " ", machine);
  auto it = cache->find(key);
  if (it == cache->end() || !it->second.reachable) {
    const absl::Time t = absl::Now();
    hv::LibvirtCapabilities caps = hv::ProbeLibvirt(uri, machine);
    Logger("shim")->info("libvirt: {} (probed in {})", caps.Summary(),
                         absl::FormatDuration(absl::Trunc(absl::Now() - t, absl::Milliseconds(1))));
    it = cache->insert_or_assign(key, std::move(caps)).first;
  }
  return it->second;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> ConnectAgent(
    const transport::AgentAddress& address, absl::Duration timeout) {
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
                                           const hv::HostCapabilities& caps,
                                           const SandboxNetwork& network) {
  const config::HypervisorConfig& h = config.hypervisor;
  hv::VmConfig vm;
  vm.name = absl::StrCat("cloak-", sandbox_id.substr(0, 32));
  vm.sandbox_id = sandbox_id;
  vm.state_dir = state_dir;
  vm.qemu_path = h.qemu_path;
  vm.libvirt_uri = h.libvirt_uri;
  vm.machine = h.machine;
  vm.accel = h.accel;
  vm.cpu = h.cpu_model;
  vm.memory_mib = static_cast<int>(h.memory_mib);
  vm.vcpus = static_cast<int>(h.vcpus);
  vm.tcg_tb_size_mib = static_cast<int>(h.tcg_tb_size_mib);
  vm.kernel = h.kernel;
  vm.initrd = h.initrd;
  vm.firmware = h.firmware;
  vm.tee = config.tee.type;
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
  vm.agent_channel = config.agent.channel;
  vm.vsock_guest_cid = GuestCid(sandbox_id);
  vm.vsock_port = static_cast<uint32_t>(config.agent.vsock_port);
  vm.serial_socket_path = absl::StrCat(state_dir, "/agent.sock");
  vm.qmp_socket_path = absl::StrCat(state_dir, "/qmp.sock");
  vm.console_log_path = absl::StrCat(state_dir, "/console.log");
  vm.vmm_log_path = absl::StrCat(state_dir, "/qemu.log");
  // Both ends must agree on the channel: resolve it first, then tell the
  // guest what the host chose.
  ASSIGN_OR_RETURN(hv::ChannelChoice channel, hv::ResolveChannel(vm, caps));
  vm.agent_channel = channel.channel;
  // Class-level constants only: the measurement of a runtime class is one
  // value (shim/hypervisor/guest_cmdline.h); per-pod settings are in the
  // init-data (PodInitData).
  vm.kernel_cmdline = hv::GuestKernelCmdline(config, vm.agent_channel);
  vm.user_network = network.user_mode;
  vm.taps = network.taps;
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

SandboxNetwork UserModeNetwork() {
  SandboxNetwork net;
  net.user_mode = true;
  net.interfaces.push_back({.name = "eth0",
                            .mac = std::string(kQemuUserNetMac),
                            .addresses = {{.address = "10.0.2.15", .prefix_length = 24}},
                            .mtu = 0});
  net.routes.push_back(
      {.destination = "", .gateway = std::string(kHostLoopbackFromGuest), .device = "eth0"});
  net.dns.push_back("nameserver 10.0.2.3");
  return net;
}

SandboxOptions BuildSandboxOptions(const config::Config& config, const SandboxRequest& request,
                                   const std::string& state_dir, const SandboxNetwork& network) {
  SandboxOptions options;
  options.id = request.sandbox_id;
  options.state_dir = state_dir;
  options.boot_timeout = config.agent.boot_timeout;
  options.request_timeout = config.agent.request_timeout;
  options.health_interval = config.agent.health_interval;
  options.health_timeout = config.agent.health_timeout;
  options.console_log_path = absl::StrCat(state_dir, "/console.log");
  options.console_log_max_bytes = config.hypervisor.console_log_max_bytes;
  options.pull_timeout = config.image.pull_timeout;
  auto name = request.pod.annotations.find(std::string(kCriSandboxName));
  options.hostname = name != request.pod.annotations.end() ? name->second : "";
  if (options.hostname.size() > 63) options.hostname.resize(63);
  options.interfaces = network.interfaces;
  options.routes = network.routes;
  options.dns = network.dns;
  options.host_loopback_reachable = network.user_mode;
  return options;
}

bool AttestsEarly(const config::Config& cfg) {
  return cfg.tee.type != config::TeeType::kNone || !cfg.tee.simulated_snp_chain.empty();
}

absl::Status RequireInitDataForEarlyAttestation(const config::Config& cfg, bool has_initdata) {
  if (has_initdata || !AttestsEarly(cfg)) return absl::OkStatus();
  const std::string what = cfg.tee.type != config::TeeType::kNone
                               ? std::string("a TEE runtime class (tee.type is not \"none\")")
                               : std::string("a dev runtime class with the simulated SNP "
                                             "(tee.simulated_snp_chain)");
  return absl::FailedPreconditionError(absl::StrCat(
      "this pod has no init-data, but ", what,
      " attests at sandbox creation and needs the key broker its init-data names: give the pod "
      "init-data (annotation io.cloak.initdata, or kbs.url in the runtime class config for a "
      "default one; "
      "docs/attestation.md \"Early attestation\")"));
}

SizingRules SizingRulesFor(const config::Config& cfg,
                           const std::map<std::string, std::string>& annotations) {
  SizingRules rules;
  rules.default_memory_mib = cfg.hypervisor.memory_mib;
  rules.memory_overhead_mib = cfg.hypervisor.pod_memory_overhead_mib;
  rules.default_vcpus = cfg.hypervisor.vcpus;
  rules.max_vcpus = std::max<int64_t>(1, std::thread::hardware_concurrency());
  // SEV-SNP's launch digest holds one VMSA per vCPU, and the simulated SP
  // computes it the same way; TDX keeps the class's count too.
  rules.vcpus_measured =
      cfg.tee.type != config::TeeType::kNone || !cfg.tee.simulated_snp_chain.empty();
  rules.memory_pinned = annotations.count("io.cloak.hypervisor.memory_mib") != 0;
  rules.vcpus_pinned = annotations.count("io.cloak.hypervisor.vcpus") != 0;
  return rules;
}

std::optional<VmSize> PodVmSize(const config::Config& cfg, const PodInfo& pod) {
  if (!cfg.hypervisor.size_from_pod) return std::nullopt;
  return SizeVm(pod.resources, SizingRulesFor(cfg, pod.annotations));
}

absl::StatusOr<std::unique_ptr<Sandbox>> MakeSandbox(const SandboxRequest& request) {
  ASSIGN_OR_RETURN(config::ConfigFile file, config::LoadConfigFromSearchPath(request.config_path));
  Logger("shim")->info("sandbox={} config {}", request.sandbox_id,
                       file.path.empty() ? std::string("(built-in defaults)") : file.path);
  absl::StatusOr<config::Config> cfg = config::ApplyAnnotations(file.config, request.pod.annotations);
  if (!cfg.ok()) return Annotate(cfg.status(), "pod annotations");
  // runtime.log_level: the shim logs to stderr (the bundle's log fifo).
  RETURN_IF_ERROR(InitLogging({.level = ShimLogLevel(cfg->runtime.log_level, request.debug),
                               .file = "",
                               .component = kShimBinaryName}));
  const std::string state_dir = SandboxStateDir(*cfg, request.sandbox_id);
  const bool libvirt = cfg->hypervisor.driver == config::HypervisorDriver::kLibvirt;
  if (!cfg->tee.simulated_snp_chain.empty() && cfg->tee.type != config::TeeType::kNone) {
    return absl::InvalidArgumentError(
        "tee.simulated_snp_chain is for the dev fallback only: set tee.type = \"none\" or "
        "remove tee.simulated_snp_chain");
  }

  // The guest's network, once: a pod with its own network namespace (CRI +
  // CNI) gets its NICs wired into it, anything else QEMU's user network.
  SandboxNetwork network = UserModeNetwork();
  std::shared_ptr<PodNetworkAttachment> pod_network;
  if (!request.pod.netns_path.empty()) {
    // libvirt opens taps by name in the host's namespace (pod_network.h).
    ASSIGN_OR_RETURN(std::unique_ptr<PodNetworkAttachment> attached,
                     PodNetworkAttachment::Attach(
                         request.pod.netns_path, request.sandbox_id,
                         libvirt ? PodNetworkAttachment::TapMode::kByName
                                 : PodNetworkAttachment::TapMode::kFd));
    pod_network = std::move(attached);
    network.user_mode = false;
    network.taps = pod_network->Taps();
    network.interfaces = pod_network->GuestInterfaces();
    network.routes = pod_network->GuestRoutes();
    network.dns.clear();
    if (!request.pod.resolv_conf_source.empty()) {
      absl::StatusOr<std::string> resolv =
          ReadFile(request.pod.resolv_conf_source, 64 << 10);
      if (resolv.ok()) {
        network.dns = ResolvConfLines(*resolv);
      } else {
        Logger("shim")->warn("sandbox={} the pod's resolv.conf: {} (the guest gets no DNS)",
                             request.sandbox_id, resolv.status().ToString());
      }
    }
  }

  const hv::HostCapabilities& caps = Capabilities(cfg->hypervisor.qemu_path);
  ASSIGN_OR_RETURN(hv::VmConfig vm,
                   BuildVmConfig(*cfg, request.sandbox_id, state_dir, caps, network));
  Logger("shim")->info("sandbox={} agent channel {}", request.sandbox_id,
                       std::string(hv::AgentChannelName(vm.agent_channel)));
  if (std::optional<VmSize> size = PodVmSize(*cfg, request.pod); size.has_value()) {
    vm.memory_mib = static_cast<int>(size->memory_mib);
    vm.vcpus = static_cast<int>(size->vcpus);
    Logger("shim")->info("sandbox={} VM size {}", request.sandbox_id, size->explanation);
  }
  const GuestAgentSettings agent_settings = GuestAgentSettingsFor(
      *cfg, GuestInsecureRegistries(cfg->image.insecure_registries, request.pod.image,
                                    network.user_mode));
  ASSIGN_OR_RETURN(std::optional<InitData> initdata,
                   PodInitData(*cfg, request.pod.annotations, agent_settings));
  // Early attestation needs a key broker: the pod's own init-data, or the
  // class's [kbs] default (the shim's own init-data otherwise carries only
  // agent settings).
  const bool pod_initdata =
      request.pod.annotations.count(std::string(kInitDataAnnotation)) != 0 ||
      request.pod.annotations.count(std::string(kKataInitDataAnnotation)) != 0;
  RETURN_IF_ERROR(
      RequireInitDataForEarlyAttestation(*cfg, pod_initdata || !cfg->kbs.url.empty()));
  if (initdata.has_value()) {
    // Bound into the launch: what the TEE evidence will carry.
    vm.snp.host_data = tee::DigestForField(initdata->digest, tee::kSnpHostDataSize);
    vm.tdx.mrconfigid = tee::DigestForField(initdata->digest, tee::kTdxMrConfigIdSize);
    Logger("shim")->info("sandbox={} init-data: {} bytes, {} {}", request.sandbox_id,
                         initdata->document.size(), initdata->algorithm,
                         absl::BytesToHexString(initdata->digest));
  }
  std::shared_ptr<SimulatedSpHost> sp;
  if (!cfg->tee.simulated_snp_chain.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("create ", state_dir, ": ", ec.message()));
    vm.sp_socket_path = absl::StrCat(state_dir, "/sp.sock");
    ASSIGN_OR_RETURN(sp, SimulatedSpHost::Start(
                             cfg->tee.simulated_snp_chain, vm.sp_socket_path, vm.kernel, vm.initrd,
                             vm.kernel_cmdline, vm.vcpus, vm.firmware,
                             initdata.has_value()
                                 ? tee::DigestForField(initdata->digest, tee::kSnpHostDataSize)
                                 : ""));
  }
  std::unique_ptr<hv::Hypervisor> hypervisor;
  if (libvirt) {
    if (pod_network != nullptr) {
      vm.after_launch = [weak = std::weak_ptr<PodNetworkAttachment>(pod_network)]() {
        std::shared_ptr<PodNetworkAttachment> att = weak.lock();
        return att != nullptr ? att->MoveTapsIntoPod() : absl::OkStatus();
      };
    }
    ASSIGN_OR_RETURN(hypervisor, hv::LibvirtHypervisor::Create(
                                     vm, LibvirtCaps(vm.libvirt_uri, vm.machine), caps));
  } else {
    ASSIGN_OR_RETURN(hypervisor, hv::QemuHypervisor::Create(vm, caps));
  }
  if (!request.bundle.empty()) {
    RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(request.bundle, "/", kBundleStateDirFile),
                                    state_dir, 0600));
  }
  SandboxOptions options = BuildSandboxOptions(*cfg, request, state_dir, network);
  if (pod_network != nullptr) options.companions.push_back(pod_network);
  if (initdata.has_value()) options.initdata = std::move(initdata->document);
  if (sp != nullptr) options.companions.push_back(std::move(sp));
  return std::make_unique<Sandbox>(std::move(options), std::move(hypervisor), ConnectAgent);
}

}  // namespace cloak::shim
