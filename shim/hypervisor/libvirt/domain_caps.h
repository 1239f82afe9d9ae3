// What a libvirt daemon can launch, from libvirt itself: its version, and
// per virtualization type ("kvm", "qemu" = TCG) the domain capabilities
// (virConnectGetDomainCapabilities): emulator, machine, launch-security
// types, firmware. Parsing and the decisions made from it are pure; the
// probe that asks a daemon lives in libvirt_connection.h.
#ifndef CLOAK_SHIM_HYPERVISOR_LIBVIRT_DOMAIN_CAPS_H_
#define CLOAK_SHIM_HYPERVISOR_LIBVIRT_DOMAIN_CAPS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shim/hypervisor/host_capabilities.h"
#include "shim/hypervisor/vm_config.h"

namespace cloak::shim::hypervisor {

// major.minor.micro, as libvirt numbers its releases.
using LibvirtVersion = QemuVersion;

// The first libvirt releases whose domain XML has the launch-security types
// Cloak needs (docs/hypervisor.md): <launchSecurity type='sev-snp'> came in
// 10.5.0; <launchSecurity type='tdx'> in the 11.x series, first shipped as a
// whole (with QEMU 10.1) in 11.8.0.
inline constexpr LibvirtVersion kMinLibvirtForSnp{10, 5, 0};
inline constexpr LibvirtVersion kMinLibvirtForTdx{11, 8, 0};

// One virtualization type's <domainCapabilities>.
struct DomainCapabilities {
  bool available = false;  // libvirt answered for this type
  std::string error;       // why not, when !available
  std::string emulator;    // <path>
  std::string machine;     // canonical machine, e.g. pc-q35-7.2
  // Launch-security types libvirt can start here: "sev" (<features><sev
  // supported='yes'>), "s390-pv", and the values of
  // <launchSecurity supported='yes'><enum name='sectype'> (libvirt ≥ 10.x:
  // "sev", "sev-snp", "tdx", ...). Sorted, unique.
  std::vector<std::string> launch_security;
  // <os><enum name='firmware'> values ("efi", "bios"); empty when libvirt
  // has no firmware descriptors.
  std::vector<std::string> firmware;
};

struct LibvirtCapabilities {
  std::string uri;
  bool reachable = false;
  std::string error;                // why the daemon could not be asked
  LibvirtVersion version;           // the daemon's libvirt (virConnectGetLibVersion)
  QemuVersion hypervisor_version;   // its QEMU (virConnectGetVersion)
  DomainCapabilities kvm;           // virttype "kvm"
  DomainCapabilities tcg;           // virttype "qemu"

  // One line for logs and `cloak check`:
  // "qemu:///system libvirt 9.0.0 qemu 7.2.22 kvm=no tcg=yes launch-security=none".
  std::string Summary() const;
};

// libvirt's version numbers: major * 1,000,000 + minor * 1,000 + micro.
LibvirtVersion LibvirtVersionFromNumber(unsigned long number);

// Parses one <domainCapabilities> document. InvalidArgument if it is not
// one.
absl::StatusOr<DomainCapabilities> ParseDomainCapabilities(absl::string_view xml);

// Resolves config.accel against what libvirt offers: kAuto takes KVM when
// libvirt has the kvm type and the host's KVM runs stock guests (not
// kvm_pvm, host_capabilities.h), else TCG (domain type 'qemu'). A TEE needs
// KVM. FailedPrecondition, saying what is missing, otherwise.
absl::StatusOr<AccelChoice> ResolveLibvirtAccel(const VmConfig& config,
                                                const LibvirtCapabilities& libvirt,
                                                const HostCapabilities& host);

// OK for kNone. For SNP / TDX: FailedPrecondition naming the libvirt
// version at `uri`, the version needed, and what its domain capabilities
// lack, e.g. "tee=snp through libvirt needs libvirt ≥ 10.5.0
// (<launchSecurity type='sev-snp'>) with sev-snp in its kvm domain
// capabilities; qemu:///system runs libvirt 9.0.0 whose kvm domain
// capabilities list launch security: none".
absl::Status CheckLibvirtTeeSupport(TeeType tee, const LibvirtCapabilities& libvirt);

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_LIBVIRT_DOMAIN_CAPS_H_
