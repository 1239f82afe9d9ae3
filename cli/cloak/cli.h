// The `cloak` operator CLI: flag parsing and file handling around the pure
// cores (host_check.h, containerd_config.h, common/tee). docs/kubernetes.md.
//
// Exit codes: 0 success (for `check`: at least one RuntimeClass is usable),
// 1 a failure (or, for `check`, no usable RuntimeClass), 2 bad usage.
#ifndef CLOAK_CLI_CLOAK_CLI_H_
#define CLOAK_CLI_CLOAK_CLI_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cloak::cli {

int RunCloakCli(int argc, char** argv);

// Writes `text` to `path` with cloak::WriteFileAtomic, keeping the old
// file's mode (0644 for a new file).
absl::Status WriteFileAtomically(const std::string& path, absl::string_view text);

// `cloak initdata`: the checked document's algorithm and digest (hex), the
// SNP HOST_DATA and TDX MRCONFIGID a pod launched with it carries, and the
// `io.cloak.initdata=<base64>` annotation. InvalidArgument as
// tee::ParseInitData. Pure.
absl::StatusOr<nlohmann::json> InitDataSummary(absl::string_view document);

}  // namespace cloak::cli

#endif  // CLOAK_CLI_CLOAK_CLI_H_
