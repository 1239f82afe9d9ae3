// cloak-cri's command line (docs/cri.md): crictl's command lines for the
// subcommands the two share (args.h: how flags and arguments are read;
// format.h: what is printed), over cloak::cri::Client. Pod and container
// configs are JSON in crictl's format (the CRI messages' protobuf JSON;
// snake_case or lowerCamel field names).
#ifndef CLOAK_CLI_CRI_CLI_H_
#define CLOAK_CLI_CRI_CLI_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/cri/args.h"
#include "cli/cri/client.h"
#include "k8s/cri/v1/api.pb.h"

namespace cloak::cri {

// Parses a PodSandboxConfig / ContainerConfig from JSON. Fields this client
// does not model are ignored (crictl's files may carry them).
absl::StatusOr<runtime::v1::PodSandboxConfig> ParsePodSandboxConfig(const std::string& json);
absl::StatusOr<runtime::v1::ContainerConfig> ParseContainerConfig(const std::string& json);

// A command line read the way crictl reads it: global flags (-r, -i, -t),
// the command, its flags, its arguments (verbatim from the first one on).
struct CommandLine {
  ClientOptions options;       // -r (or $CONTAINER_RUNTIME_ENDPOINT), -t
  std::string image_endpoint;  // -i (or $IMAGE_SERVICE_ENDPOINT); empty: the runtime's
  std::string command;         // empty with help
  ParsedFlags flags;           // the command's flags and arguments
  bool help = false;           // no command, or --help before it
};

// `args` excludes the program name. NotFound for an unknown command;
// InvalidArgument for a bad flag or the wrong number of arguments.
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args);

// Exit codes, as crictl 1.26's: 0 success; 1 a CRI call failed, bad usage,
// an unreadable config, or an `exec` (with or without -s) whose command
// exited non-zero (the message names its exit code, in crictl's words);
// 3 an unknown command.
int RunCriCli(int argc, char** argv);

}  // namespace cloak::cri

#endif  // CLOAK_CLI_CRI_CLI_H_
