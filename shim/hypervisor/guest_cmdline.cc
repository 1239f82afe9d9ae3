#include "shim/hypervisor/guest_cmdline.h"

#include "absl/strings/str_cat.h"

namespace cloak::shim::hypervisor {

config::AgentChannel ClassAgentChannel(config::AgentChannel configured, bool host_has_vhost_vsock) {
  if (configured != config::AgentChannel::kAuto) return configured;
  return host_has_vhost_vsock ? config::AgentChannel::kVsock : config::AgentChannel::kSerial;
}

std::string GuestKernelCmdline(const config::Config& config, config::AgentChannel channel) {
  std::string out = absl::StrCat(kBaseKernelCmdline, " cloak.channel=",
                                 config::AgentChannelName(channel),
                                 " cloak.port=", config.agent.vsock_port,
                                 " cloak.tee=", config::TeeTypeName(config.tee.type));
  if (config.agent.allow_all_policy) absl::StrAppend(&out, " cloak.policy=allow-all");
  if (!config.hypervisor.kernel_params.empty()) {
    absl::StrAppend(&out, " ", config.hypervisor.kernel_params);
  }
  return out;
}

}  // namespace cloak::shim::hypervisor
