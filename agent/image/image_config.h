// The image config (Entrypoint, Cmd, Env, WorkingDir, User) applied to the
// process the host asked for, the way containerd's CRI plugin and `ctr run`
// do it. Pure, except ResolveUserInRootfs which reads the rootfs.
#ifndef CLOAK_AGENT_IMAGE_IMAGE_CONFIG_H_
#define CLOAK_AGENT_IMAGE_IMAGE_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::agent::image {

// containerd's default when the image has no Env.
inline constexpr char kDefaultPathEnv[] =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct ImageConfig {
  std::string os;
  std::string architecture;
  // nullopt: absent; {""}: explicitly reset (Docker's `ENTRYPOINT []`/[""]).
  std::optional<std::vector<std::string>> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
  std::vector<std::string> diff_ids;
};

// Parses the image config JSON (non-throwing). InvalidArgument naming the
// field on malformed input.
absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view json_text);

// What the host asked for. Every field may be empty, meaning "the image
// decides".
struct ProcessRequest {
  // Replaces the image's Entrypoint (CRI `command`). When set, Cmd is not used.
  std::vector<std::string> command;
  // Replaces the image's Cmd (CRI `args`, `ctr run <image> <id> args...`).
  std::vector<std::string> args;
  // Merged over the image's Env: same key → the request wins; "KEY" without
  // '=' removes KEY.
  std::vector<std::string> env;
  // Replaces the image's WorkingDir.
  std::string cwd;
  // Replaces the image's User: "uid", "uid:gid", "name", "name:group", ...
  std::string user;
};

struct ProcessConfig {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd;
  std::string user;  // the user string that was resolved (may be empty → root)
};

// Args as containerd computes them (pkg/cri WithProcessArgs):
//   command given         → command + args
//   else                  → (Entrypoint unless it is [""]) + (args, or Cmd if none)
// InvalidArgument "no command specified" if that is empty.
// Env: image Env (or PATH default) with the request's entries replacing or
// appended (containerd's replaceOrAppendEnvValues). Cwd: request, image
// WorkingDir, else "/". Pure.
absl::StatusOr<ProcessConfig> ApplyImageConfig(const ImageConfig& config,
                                               const ProcessRequest& request);

struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;  // from /etc/group membership of the user name
};

// Resolves `user` ("", "uid", "uid:gid", "name", "name:group", "uid:group",
// "name:gid") against the contents of /etc/passwd and /etc/group, like
// containerd's WithUser + WithAdditionalGIDs. A numeric uid that is not in
// passwd gets gid 0. NotFound naming the user or group if a name is unknown.
// Pure.
absl::StatusOr<ResolvedUser> ResolveUser(absl::string_view user, absl::string_view passwd,
                                         absl::string_view group);

// ResolveUser with /etc/passwd and /etc/group read from `rootfs_dir`, each
// resolved inside the rootfs (a symlink cannot lead to host files); a missing
// file counts as empty.
absl::StatusOr<ResolvedUser> ResolveUserInRootfs(absl::string_view user,
                                                 const std::string& rootfs_dir);

}  // namespace cloak::agent::image

#endif  // CLOAK_AGENT_IMAGE_IMAGE_CONFIG_H_
