// PID 1 duties of cloak-agent in the guest: mounts, kernel modules, the
// console, the loopback interface, power off. Only used when getpid() == 1.
#ifndef CLOAK_AGENT_INIT_H_
#define CLOAK_AGENT_INIT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::agent {

// Modules loaded when the command line names none.
const std::vector<std::string>& DefaultModules();
// TEE modules: failing to load them is expected outside a TEE.
bool IsOptionalModule(absl::string_view name);

struct KernelCmdline {
  // cloak.channel=serial|vsock|auto
  std::string channel = "auto";
  // cloak.port=1024 (vsock port)
  uint32_t port = 1024;
  // cloak.log=trace|debug|info|warn|error|off. The shim no longer sets it,
  // nor cloak.max_downloads / cloak.insecure_registries: they are per-pod
  // and come in the init-data ([data.agent]); on the command line they are
  // class-level (hypervisor.kernel_params) and measured.
  std::string log_level = "info";
  // cloak.modules=a,b,c (empty list: load none); unset: DefaultModules().
  std::vector<std::string> modules;
  // cloak.insecure_registries=host:port,... (plain-HTTP registries; dev)
  std::vector<std::string> insecure_registries;
  // cloak.max_downloads=N (1-16): image layers downloaded in parallel
  // (the host's image.max_concurrent_downloads).
  int max_downloads = 3;
  // cloak.policy=enforce|allow-all: allow-all turns the agent policy off
  // (a runtime class's agent.allow_all_policy; measured with the command
  // line, docs/policy.md).
  std::string policy = "enforce";
  // cloak.tee=none|snp|tdx: the runtime class's TEE (the shim's tee.type),
  // measured with the command line. "none" is the dev class, the only one
  // that may speak plain http to a key broker or a registry on the host
  // (docs/attestation.md). Empty when absent: treated as a TEE class.
  std::string tee;
};

// Parses /proc/cmdline text. Unknown keys are ignored; bad values are
// InvalidArgument naming the key. Pure.
absl::StatusOr<KernelCmdline> ParseKernelCmdline(absl::string_view cmdline);

// Mounts proc, sysfs, devtmpfs, devpts, shm, cgroup2 (+cpu +memory +pids
// +io), /run; points stdio at /dev/console. Errors are fatal.
absl::Status MountEssentials();
// Loads `modules` with modprobe, then mounts configfs if it is available.
// Failures of optional modules are logged at info, others at warn.
void LoadModulesAndConfigfs(const std::vector<std::string>& modules);
// Brings the loopback interface up.
absl::Status LoopbackUp();
// sync() and reboot(RB_POWER_OFF). Does not return when it works.
void PowerOff();

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_INIT_H_
