// The `cloak` operator CLI: flag parsing and file handling around the pure
// cores (host_check.h, containerd_config.h). docs/kubernetes.md.
//
// Exit codes: 0 success (for `check`: at least one RuntimeClass is usable),
// 1 a failure (or, for `check`, no usable RuntimeClass), 2 bad usage.
#ifndef CLOAK_CLI_CLOAK_CLI_H_
#define CLOAK_CLI_CLOAK_CLI_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cloak::cli {

int RunCloakCli(int argc, char** argv);

// Writes `text` to `path` through a temporary file in the same directory and
// a rename, keeping the old file's mode (0644 for a new file).
absl::Status WriteFileAtomically(const std::string& path, absl::string_view text);

}  // namespace cloak::cli

#endif  // CLOAK_CLI_CLOAK_CLI_H_
