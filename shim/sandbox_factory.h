// The production SandboxFactory: Cloak's TOML config (plus the pod's
// allowlisted annotations) → VmConfig → the configured Hypervisor driver
// (QEMU or libvirt), with the agent reached through common/transport.
#ifndef CLOAK_SHIM_SANDBOX_FACTORY_H_
#define CLOAK_SHIM_SANDBOX_FACTORY_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "shim/config/config.h"
#include "shim/hypervisor/guest_cmdline.h"
#include "shim/hypervisor/host_capabilities.h"
#include "shim/hypervisor/vm_config.h"
#include "shim/sandbox.h"
#include "shim/task_service.h"
#include "shim/vm_sizing.h"

namespace cloak::shim {

// File in the sandbox container's bundle naming the sandbox state dir, so
// `delete` finds the VM when the daemon is gone.
inline constexpr absl::string_view kBundleStateDirFile = "cloak-sandbox-state";
// Guest kernel parameters the shim always sets (the guest image's default
// command line, see guest-image/build).
inline constexpr absl::string_view kBaseKernelCmdline = hypervisor::kBaseKernelCmdline;

// <runtime.state_dir>/<sandbox id>.
std::string SandboxStateDir(const config::Config& config, const std::string& sandbox_id);

// The guest's network, decided once per sandbox: QEMU's user-mode network
// (ctr, host-network pods) or the pod's CNI namespace wired to tap NICs
// (shim/pod_network.h).
struct SandboxNetwork {
  // User-mode networking: the guest reaches the host's loopback at
  // 10.0.2.2. False for a pod network.
  bool user_mode = true;
  std::vector<hypervisor::VmConfig::TapNic> taps;
  std::vector<GuestInterface> interfaces;
  std::vector<GuestRoute> routes;
  std::vector<std::string> dns;  // resolv.conf lines
};

// Pure: QEMU user-mode networking as the guest sees it (10.0.2.15/24 on
// the first NIC, gateway 10.0.2.2 = the host's loopback, DNS 10.0.2.3).
SandboxNetwork UserModeNetwork();

// Pure: the VM of one sandbox. Sockets and logs go under `state_dir`. The
// agent channel is resolved against `caps` here, before the kernel command
// line is built, so the guest is told the channel the host chose. The
// command line is hypervisor::GuestKernelCmdline: class-level constants
// only, nothing per pod.
// The sizing rules of a runtime class (shim/vm_sizing.h); io.cloak.hypervisor.*
// annotations the class allowed pin the size.
SizingRules SizingRulesFor(const config::Config& cfg,
                           const std::map<std::string, std::string>& annotations);

// The VM's size for this pod (docs/performance.md, "VM size from the
// pod"); nullopt when the class gives every VM its fixed size
// (hypervisor.size_from_pod = false).
std::optional<VmSize> PodVmSize(const config::Config& cfg, const PodInfo& pod);

absl::StatusOr<hypervisor::VmConfig> BuildVmConfig(
    const config::Config& config, const std::string& sandbox_id, const std::string& state_dir,
    const hypervisor::HostCapabilities& caps, const SandboxNetwork& network);

// Pure: the sandbox's options (timeouts, hostname, the guest's network).
SandboxOptions BuildSandboxOptions(const config::Config& config, const SandboxRequest& request,
                                   const std::string& state_dir, const SandboxNetwork& network);

// The guest's view of the configured insecure registries (loopback →
// 10.0.2.2), plus `image`'s registry when it is on the host's loopback
// (plain HTTP is allowed there, as containerd allows it for localhost).
// They reach the agent in the init-data ([data.agent], PodInitData).
// Deduplicated, in order.
// With `host_loopback` false (a pod on its own network) the configured
// list is used as it is.
std::vector<std::string> GuestInsecureRegistries(const std::vector<std::string>& configured,
                                                 const std::string& image,
                                                 bool host_loopback = true);

// Pure: whether the guest of this class attests at CreateSandbox (early
// attestation, docs/attestation.md): a TEE class (tee.type snp or tdx) or a
// dev class with the simulated SNP. The guest agent decides the same from
// the evidence it can produce; the shim uses it only to refuse a pod that
// cannot attest (no init-data) with a clear error before booting a VM.
bool AttestsEarly(const config::Config& config);
// FailedPrecondition, saying what to do, for such a class without init-data.
absl::Status RequireInitDataForEarlyAttestation(const config::Config& config, bool has_initdata);

// Loads the config (request.config_path, else /etc/cloak/config.toml, else
// the installed default), applies the pod's annotations, probes the host
// once, and makes a Sandbox on the configured driver (hypervisor.driver).
// Writes kBundleStateDirFile into the bundle.
absl::StatusOr<std::unique_ptr<Sandbox>> MakeSandbox(const SandboxRequest& request);

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_SANDBOX_FACTORY_H_
