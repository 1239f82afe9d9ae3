// The QEMU command line for one VM: a pure function of VmConfig and
// HostCapabilities (which resolves the `auto` settings). No file system or
// process access, so it is golden-tested (tests/shim/hypervisor/testdata).
// docs/hypervisor.md shows the result for each TEE type.
#ifndef CLOAK_SHIM_HYPERVISOR_QEMU_QEMU_ARGS_H_
#define CLOAK_SHIM_HYPERVISOR_QEMU_QEMU_ARGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shim/hypervisor/host_capabilities.h"
#include "shim/hypervisor/vm_config.h"

namespace cloak::shim::hypervisor {

// Fixed device and object ids on the command line.
inline constexpr char kQemuConsoleChardevId[] = "console0";
inline constexpr char kQemuAgentChardevId[] = "agent0";
inline constexpr char kQemuSnpObjectId[] = "snp0";
inline constexpr char kQemuTdxObjectId[] = "tdx0";
inline constexpr char kQemuMemoryBackendId[] = "ram1";
// sun_path is 108 bytes including the NUL.
inline constexpr size_t kMaxUnixSocketPath = 107;

// argv for QEMU, argv[0] being config.qemu_path (or caps.qemu.path when it
// was resolved). InvalidArgument for a bad config value (saying which key),
// FailedPrecondition when the host or QEMU cannot provide what is asked
// (CheckTeeSupport, ResolveAccel, ResolveChannel).
absl::StatusOr<std::vector<std::string>> BuildQemuArgs(const VmConfig& config,
                                                       const HostCapabilities& caps);

// Shell-quoted, space-separated, for logs and error messages.
std::string QemuArgsToString(const std::vector<std::string>& args);

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_QEMU_QEMU_ARGS_H_
