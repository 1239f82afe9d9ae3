// containerd-shim-cloak-v2: containerd runtime v2 shim (runtime type
// io.containerd.cloak.v2) that runs each pod in its own confidential VM.
// See docs/shim.md.
#include <cstdio>
#include <string>
#include <vector>

#include "common/version.h"
#include "shim/commands.h"
#include "shim/flags.h"
#include "shim/task_service.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<cloak::shim::ShimFlags> flags = cloak::shim::ParseShimFlags(args);
  if (!flags.ok()) {
    std::fprintf(stderr, "%s: %s\n", cloak::shim::kShimBinaryName,
                 std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->help) {
    std::fputs(cloak::shim::ShimUsage().c_str(), stdout);
    return 0;
  }
  if (flags->version) {
    std::printf("%s:\n  Version: %s\n", cloak::shim::kShimBinaryName, cloak::VersionString());
    return 0;
  }
  switch (flags->action) {
    case cloak::shim::Action::kStart:
      return cloak::shim::RunStart(*flags);
    case cloak::shim::Action::kDelete:
      return cloak::shim::RunDelete(*flags);
    case cloak::shim::Action::kServe:
      return cloak::shim::RunServe(*flags);
  }
  return 2;
}
