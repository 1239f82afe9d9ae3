// What this host can run: KVM (and whether it is the nested kvm_pvm flavour),
// SEV-SNP, TDX, vhost-vsock, and what the installed QEMU supports. Probed
// once (ProbeHost) and then consulted by pure resolution functions that turn
// `auto` settings into concrete choices with a reason, or fail at once with
// an error that says exactly what is missing.
#ifndef CLOAK_SHIM_HYPERVISOR_HOST_CAPABILITIES_H_
#define CLOAK_SHIM_HYPERVISOR_HOST_CAPABILITIES_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shim/hypervisor/vm_config.h"

namespace cloak::shim::hypervisor {

struct QemuVersion {
  int major = 0;
  int minor = 0;
  int micro = 0;
  friend bool operator==(const QemuVersion&, const QemuVersion&) = default;
  friend auto operator<=>(const QemuVersion&, const QemuVersion&) = default;
};
std::string QemuVersionString(const QemuVersion& v);

inline constexpr QemuVersion kMinQemuForSnp{9, 1, 0};
inline constexpr QemuVersion kMinQemuForTdx{10, 1, 0};

struct QemuInfo {
  bool found = false;
  // Absolute path of the binary (PATH resolved), or the configured name.
  std::string path;
  QemuVersion version;
  // First line of `-version`, e.g. "QEMU emulator version 7.2.22 (Debian …)".
  std::string version_line;
  // From `-object help`.
  bool has_sev_guest = false;
  bool has_sev_snp_guest = false;
  bool has_tdx_guest = false;
  // Why the probe failed, when !found or the output could not be parsed.
  std::string error;
};

struct HostCapabilities {
  bool kvm_present = false;   // /dev/kvm exists
  bool kvm_openable = false;  // and opens read-write
  bool kvm_pvm = false;       // /sys/module/kvm_pvm: nested PVM, no VT-x/SVM
  bool sev_snp = false;       // /sys/module/kvm_amd/parameters/sev_snp = Y
  bool sev_device = false;    // /dev/sev
  bool tdx = false;           // /sys/module/kvm_intel/parameters/tdx = Y
  bool vhost_vsock = false;   // /dev/vhost-vsock
  QemuInfo qemu;

  // KVM can run a stock guest kernel.
  bool KvmUsable() const { return kvm_openable && !kvm_pvm; }
  // One line for logs: "kvm=pvm sev-snp=no tdx=no vhost-vsock=no qemu=7.2.22 …".
  std::string Summary() const;
};

// Runs `qemu argv...` and returns its standard output.
using QemuRunner =
    std::function<absl::StatusOr<std::string>(const std::vector<std::string>& argv)>;

struct ProbeOptions {
  // Prefix for /dev and /sys, for tests with a fake tree. "" or "/": the host.
  std::string root;
  // A path or a name looked up in PATH.
  std::string qemu_path = "qemu-system-x86_64";
  // Empty: run the binary for real (with a 10 s limit each).
  QemuRunner run_qemu;
};

// Never fails: whatever cannot be probed reads as absent, with the reason in
// QemuInfo::error or the log ("hypervisor" logger).
HostCapabilities ProbeHost(const ProbeOptions& options = {});

// Pure parsers for QEMU's output (exposed for tests).
absl::StatusOr<QemuVersion> ParseQemuVersion(absl::string_view version_output);
// Object type names listed by `-object help`.
std::vector<std::string> ParseObjectHelp(absl::string_view help_output);

struct AccelChoice {
  Accel accel = Accel::kTcg;
  std::string reason;
};
// Resolves config.accel (and checks an explicit choice). A TEE needs KVM.
// FailedPrecondition when the host cannot provide what is asked for.
absl::StatusOr<AccelChoice> ResolveAccel(const VmConfig& config, const HostCapabilities& caps);

struct ChannelChoice {
  AgentChannel channel = AgentChannel::kSerial;
  std::string reason;
};
absl::StatusOr<ChannelChoice> ResolveChannel(const VmConfig& config,
                                             const HostCapabilities& caps);

// OK for kNone. For SNP/TDX: FailedPrecondition naming every missing piece,
// e.g. "tee=snp needs QEMU ≥ 9.1 with the sev-snp-guest object;
// /usr/bin/qemu-system-x86_64 is 7.2.22".
absl::Status CheckTeeSupport(TeeType tee, const HostCapabilities& caps);

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_HOST_CAPABILITIES_H_
