// VM size from the pod: how much memory and how many vCPUs a sandbox's VM
// gets (docs/performance.md, "VM size from the pod"). Pure: the inputs are
// read from the sandbox's OCI spec and the runtime class configuration.
#ifndef CLOAK_SHIM_VM_SIZING_H_
#define CLOAK_SHIM_VM_SIZING_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::shim {

// containerd's CRI plugin (1.6.7 and later) puts the pod's summed container
// limits, as kubelet sends them in LinuxPodSandboxConfig.resources, on the
// sandbox's spec under these annotations.
inline constexpr absl::string_view kCriSandboxMemory = "io.kubernetes.cri.sandbox-memory";
inline constexpr absl::string_view kCriSandboxCpuQuota = "io.kubernetes.cri.sandbox-cpu-quota";
inline constexpr absl::string_view kCriSandboxCpuPeriod = "io.kubernetes.cri.sandbox-cpu-period";

// What the pod asks for. Memory in bytes; CPU as a CFS quota over a period
// (both in microseconds; quota <= 0 means unlimited).
struct PodResources {
  std::optional<int64_t> memory_limit_bytes;
  std::optional<int64_t> cpu_quota_us;
  std::optional<int64_t> cpu_period_us;
  // Where the figures came from, for the log: "CRI sandbox annotations",
  // "the container's linux.resources".
  std::string source;
};

// The pod's resources from a sandbox spec (config.json text): the CRI
// sandbox annotations when present (CRI pods), else the spec's own
// linux.resources (a `ctr run` container is its own sandbox). Absent or
// zero limits stay unset. InvalidArgument for a malformed value, naming it.
absl::StatusOr<PodResources> PodResourcesFromSpec(absl::string_view config_json);

struct SizingRules {
  // VM memory for a pod that states no memory limit (hypervisor.memory_mib).
  int64_t default_memory_mib = 2048;
  // Added to the pod's memory limit: guest kernel, the agent, the unpacked
  // initramfs and the pulled image layers (hypervisor.pod_memory_overhead_mib).
  int64_t memory_overhead_mib = 384;
  // Floor and ceiling of the result.
  int64_t min_memory_mib = 128;
  int64_t max_memory_mib = int64_t{1} << 22;
  // vCPUs for a pod without a CPU limit (hypervisor.vcpus).
  int64_t default_vcpus = 1;
  // Ceiling: the host's CPUs.
  int64_t max_vcpus = 1;
  // The vCPU count is part of a launch measurement (SEV-SNP's launch digest
  // has one VMSA page per vCPU, the simulated SP computes it the same way):
  // then the class's count stands, whatever the pod asks.
  bool vcpus_measured = false;
  // The operator pinned the size through io.cloak.hypervisor.* annotations:
  // those win over the pod's limits.
  bool memory_pinned = false;
  bool vcpus_pinned = false;
};

struct VmSize {
  int64_t memory_mib = 0;
  int64_t vcpus = 0;
  // One line for the log: how each figure was reached.
  std::string explanation;
};

// memory = ceil(limit in MiB) + overhead, clamped to [min, max]; no limit:
// the default. vcpus = ceil(quota / period), clamped to [1, max]; no limit:
// the default. Pinned or measured figures keep the rule's defaults.
VmSize SizeVm(const PodResources& pod, const SizingRules& rules);

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_VM_SIZING_H_
