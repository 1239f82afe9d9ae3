// `cloak check`: what this host can run, and a verdict per RuntimeClass.
//
// Probing (ProbeHostFacts) reads files under an injectable root (/dev, /sys,
// /proc, /etc) and runs QEMU and containerd through injectable runners, so
// unit tests feed fake trees. KVM, SEV-SNP, TDX, vhost-vsock and QEMU come
// from the shim's own probe (shim/hypervisor/host_capabilities.h), so
// `cloak check` and the shim decide alike. Evaluate is pure.
#ifndef CLOAK_CLI_CLOAK_HOST_CHECK_H_
#define CLOAK_CLI_CLOAK_HOST_CHECK_H_

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "shim/hypervisor/host_capabilities.h"
#include "shim/hypervisor/libvirt/domain_caps.h"

namespace cloak::cli {

// Runs argv and returns its standard output.
using CommandRunner =
    std::function<absl::StatusOr<std::string>(const std::vector<std::string>& argv)>;

struct CheckOptions {
  // Prefix for /dev, /sys, /proc and the containerd config. "": the host.
  std::string root;
  std::string qemu_path = "qemu-system-x86_64";
  std::string containerd_path = "containerd";
  // Read under `root`.
  std::string containerd_config = "/etc/containerd/config.toml";
  // Empty: run the binaries for real. Tests pass canned output.
  CommandRunner run;
  // The libvirt daemon the libvirt driver would use (hypervisor.libvirt_uri);
  // empty: libvirt is not asked.
  std::string libvirt_uri = "qemu:///system";
  // Empty: ask libvirt for real (ProbeLibvirt). Tests pass canned answers.
  std::function<shim::hypervisor::LibvirtCapabilities(const std::string& uri)> probe_libvirt;
};

struct ContainerdFacts {
  bool found = false;
  std::string version;  // e.g. "1.6.20~ds1", or the error
  int major = 0, minor = 0;
  std::string config_path;
  bool config_exists = false;
  std::string config_error;  // unreadable or not TOML
  // Runtime handler -> runtime_type, for every runtime of the CRI plugin.
  std::map<std::string, std::string> runtimes;
  std::string snapshotter_address;  // proxy_plugins.cloak.address, if any
};

struct HostFacts {
  shim::hypervisor::HostCapabilities caps;
  std::set<std::string> cpu_flags;  // from /proc/cpuinfo
  std::string cpu_vendor;           // "AuthenticAMD", "GenuineIntel", ...
  bool kvm_amd_loaded = false;      // /sys/module/kvm_amd
  bool kvm_intel_loaded = false;    // /sys/module/kvm_intel
  ContainerdFacts containerd;
  // The libvirt driver's view (hypervisor.driver = "libvirt"); uri empty
  // when it was not asked.
  shim::hypervisor::LibvirtCapabilities libvirt;
};

HostFacts ProbeHostFacts(const CheckOptions& options);

// One line of the report.
struct Finding {
  std::string name;    // "kvm", "sev-snp", "tdx", "vhost-vsock", "qemu", "libvirt", "containerd"
  std::string state;   // short: "pvm", "yes", "no", "7.2.22", ...
  std::string detail;  // the reason, and what to do
};

struct RuntimeVerdict {
  std::string runtime_class;  // cloak-dev, cloak-snp, cloak-tdx
  bool usable = false;
  std::string reason;
  // Whether containerd's config has this handler with runtime_type
  // io.containerd.cloak.v2.
  bool configured = false;
};

struct CheckReport {
  std::vector<Finding> findings;
  std::vector<RuntimeVerdict> verdicts;
  // Node labels the installer sets: cloak.io/runtime-<class> = "true"|"false".
  std::map<std::string, std::string> node_labels;
  bool AnyUsable() const;
};

inline constexpr char kNodeLabelPrefix[] = "cloak.io/runtime-";

CheckReport Evaluate(const HostFacts& facts);

nlohmann::json ReportToJson(const CheckReport& report);
std::string ReportToText(const CheckReport& report);

}  // namespace cloak::cli

#endif  // CLOAK_CLI_CLOAK_HOST_CHECK_H_
