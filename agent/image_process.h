// Applying a pulled image's config (Entrypoint, Cmd, Env, WorkingDir, User)
// to the sanitised init process, with agent/image's containerd rules.
#ifndef CLOAK_AGENT_IMAGE_PROCESS_H_
#define CLOAK_AGENT_IMAGE_PROCESS_H_

#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace cloak::agent {

// `process` is a sanitised OCI process object (SanitizeProcess). The host's
// args, when not empty, are the command (they replace Entrypoint and Cmd);
// its env is merged over the image's; its cwd wins unless empty or "/"; its
// user wins unless it is 0:0, else the image's User is resolved in
// `rootfs_dir`. No-op when `image_config_json` is empty. InvalidArgument if
// the result has no command.
absl::Status ApplyImageConfigToProcess(const std::string& image_config_json,
                                       const std::string& rootfs_dir, nlohmann::json* process);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_IMAGE_PROCESS_H_
