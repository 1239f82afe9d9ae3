// cloak-cri's command line (docs/cri.md): a crictl-like subset over
// cloak::cri::Client. Pod and container configs are JSON in crictl's format
// (the CRI messages' protobuf JSON; snake_case or lowerCamel field names).
#ifndef CLOAK_CLI_CRI_CLI_H_
#define CLOAK_CLI_CRI_CLI_H_

#include <string>

#include "absl/status/statusor.h"
#include "k8s/cri/v1/api.pb.h"

namespace cloak::cri {

// Parses a PodSandboxConfig / ContainerConfig from JSON. Fields this client
// does not model are ignored (crictl's files may carry them).
absl::StatusOr<runtime::v1::PodSandboxConfig> ParsePodSandboxConfig(const std::string& json);
absl::StatusOr<runtime::v1::ContainerConfig> ParseContainerConfig(const std::string& json);

// Exit codes: 0 success; 1 a CRI call failed; 2 bad usage or unreadable
// config; for exec-sync, the command's own exit code when it ran.
int RunCriCli(int argc, char** argv);

}  // namespace cloak::cri

#endif  // CLOAK_CLI_CRI_CLI_H_
