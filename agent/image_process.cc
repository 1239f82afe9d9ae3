#include "agent/image_process.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

#ifdef CLOAK_HAVE_AGENT_IMAGE
#include "agent/image/image_config.h"
#endif

namespace cloak::agent {

absl::Status ApplyImageConfigToProcess(const std::string& image_config_json,
                                       const std::string& rootfs_dir, nlohmann::json* process) {
  if (image_config_json.empty()) {
    if ((*process)["args"].empty()) return absl::InvalidArgumentError("process.args is empty");
    return absl::OkStatus();
  }
#ifdef CLOAK_HAVE_AGENT_IMAGE
  ASSIGN_OR_RETURN(image::ImageConfig config, image::ParseImageConfig(image_config_json));
  image::ProcessRequest request;
  request.command = (*process)["args"].get<std::vector<std::string>>();
  request.env = (*process)["env"].get<std::vector<std::string>>();
  std::string cwd = (*process)["cwd"].get<std::string>();
  if (cwd != "/") request.cwd = cwd;
  ASSIGN_OR_RETURN(image::ProcessConfig applied, image::ApplyImageConfig(config, request));
  (*process)["args"] = applied.args;
  (*process)["env"] = applied.env;
  (*process)["cwd"] = applied.cwd.empty() ? "/" : applied.cwd;
  const nlohmann::json& user = (*process)["user"];
  bool host_user_is_root = user["uid"].get<uint64_t>() == 0 && user["gid"].get<uint64_t>() == 0 &&
                           !user.contains("additionalGids");
  if (host_user_is_root && !config.user.empty()) {
    ASSIGN_OR_RETURN(image::ResolvedUser resolved,
                     image::ResolveUserInRootfs(config.user, rootfs_dir));
    nlohmann::json u = {{"uid", resolved.uid}, {"gid", resolved.gid}};
    if (!resolved.additional_gids.empty()) u["additionalGids"] = resolved.additional_gids;
    if (user.contains("umask")) u["umask"] = user["umask"];
    (*process)["user"] = u;
  }
  return absl::OkStatus();
#else
  (void)rootfs_dir;
  return absl::UnimplementedError("image config support (agent/image) is not built in");
#endif
}

}  // namespace cloak::agent
