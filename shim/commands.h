// The three things containerd-shim-cloak-v2 does (docs/shim.md, "Contract: …"), one
// file each: cmd_start.cc, cmd_delete.cc, cmd_serve.cc. Each returns the
// process exit code.
#ifndef CLOAK_SHIM_COMMANDS_H_
#define CLOAK_SHIM_COMMANDS_H_

#include "shim/flags.h"

namespace cloak::shim {

inline constexpr char kShimBinaryName[] = "containerd-shim-cloak-v2";

// `start`: find or spawn the pod's shim daemon, write `address` into the
// bundle (the cwd) and print the address, nothing else.
int RunStart(const ShimFlags& flags);

// `delete`: clean up after a task whose shim may be gone and print the
// binary DeleteResponse. Always exits 0 once the response is printed.
int RunDelete(const ShimFlags& flags);

// No action: the daemon. Serves the Task API on fd 3 (or -socket) until
// Shutdown with no container left, or SIGTERM/SIGINT.
int RunServe(const ShimFlags& flags);

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_COMMANDS_H_
