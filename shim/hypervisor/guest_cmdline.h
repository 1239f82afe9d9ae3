// The guest kernel command line of a runtime class. It is measured (SNP:
// the kernel-hashes table; TDX: RTMR2), so it holds only class-level
// constants — nothing that varies per pod — and `cloak measure --config`
// rebuilds it from the class config alone (docs/measurement.md, "One value
// per runtime class"). Per-pod agent settings travel in init-data
// (shim/host_config.h). Pure.
#ifndef CLOAK_SHIM_HYPERVISOR_GUEST_CMDLINE_H_
#define CLOAK_SHIM_HYPERVISOR_GUEST_CMDLINE_H_

#include <string>

#include "absl/strings/string_view.h"
#include "shim/config/config.h"

namespace cloak::shim::hypervisor {

// Guest kernel parameters the shim always sets (the guest image's default
// command line, see guest-image/build).
inline constexpr absl::string_view kBaseKernelCmdline =
    "console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check net.ifnames=0";

// The agent channel a class gets on a host: agent.channel when it names
// one, else (auto) vsock when the host has /dev/vhost-vsock, else serial —
// ResolveChannel's rule (host_capabilities.h), so the shim and
// `cloak measure --config` agree on one host. Set agent.channel explicitly
// for a class whose measurement is pinned.
config::AgentChannel ClassAgentChannel(config::AgentChannel configured, bool host_has_vhost_vsock);

// kBaseKernelCmdline, then
//   cloak.channel=<channel> cloak.port=<agent.vsock_port>
//   cloak.tee=<none|snp|tdx>          (tee.type: the agent's class; docs/attestation.md)
//   cloak.policy=allow-all            (only with agent.allow_all_policy)
//   <hypervisor.kernel_params>        (only when set; cloak.modules=... goes here)
// `channel` is the resolved channel (never kAuto).
std::string GuestKernelCmdline(const config::Config& config, config::AgentChannel channel);

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_GUEST_CMDLINE_H_
