#include "shim/bundle.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/fd.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "containerd/task/v2/shim.pb.h"
#include "nlohmann/json.hpp"

namespace cloak::shim {

std::string CleanPath(absl::string_view path) {
  if (path.empty()) return ".";
  const bool rooted = path[0] == '/';
  std::vector<absl::string_view> out;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (!out.empty() && out.back() != "..") {
        out.pop_back();
      } else if (!rooted) {
        out.push_back(part);
      }
      continue;
    }
    out.push_back(part);
  }
  std::string joined = absl::StrJoin(out, "/");
  if (rooted) return absl::StrCat("/", joined);
  return joined.empty() ? "." : joined;
}

std::string SocketPath(absl::string_view containerd_address, absl::string_view namespace_name,
                       absl::string_view group_id, absl::string_view socket_dir) {
  // filepath.Join skips empty elements, then cleans.
  std::vector<absl::string_view> parts;
  for (absl::string_view p : {containerd_address, namespace_name, group_id}) {
    if (!p.empty()) parts.push_back(p);
  }
  const std::string joined = CleanPath(absl::StrJoin(parts, "/"));
  return absl::StrCat(socket_dir, "/", tee::HexEncode(tee::Sha256(joined)));
}

std::string SocketAddress(absl::string_view containerd_address, absl::string_view namespace_name,
                          absl::string_view group_id, absl::string_view socket_dir) {
  return absl::StrCat("unix://",
                      SocketPath(containerd_address, namespace_name, group_id, socket_dir));
}

std::string SocketPathFromAddress(absl::string_view address) {
  absl::ConsumePrefix(&address, "unix://");
  return std::string(address);
}

absl::StatusOr<PodInfo> ParsePodInfo(absl::string_view config_json, absl::string_view id) {
  nlohmann::json spec = nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded() || !spec.is_object()) {
    return absl::InvalidArgumentError("config.json: not a JSON object (malformed OCI spec)");
  }
  PodInfo info;
  if (auto it = spec.find("annotations"); it != spec.end() && !it->is_null()) {
    if (!it->is_object()) {
      return absl::InvalidArgumentError("config.json: \"annotations\" is not an object");
    }
    for (const auto& [key, value] : it->items()) {
      if (!value.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("config.json: annotation \"", key, "\" is not a string"));
      }
      info.annotations[key] = value.get<std::string>();
    }
  }
  auto get = [&](absl::string_view key) -> std::string {
    auto it = info.annotations.find(std::string(key));
    return it == info.annotations.end() ? "" : it->second;
  };
  const std::string type = get(kCriContainerType);
  if (type == "container") {
    info.is_sandbox = false;
    info.sandbox_id = get(kCriSandboxId);
    if (info.sandbox_id.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "container ", id, " has ", kCriContainerType, "=container but no ", kCriSandboxId));
    }
  } else {
    info.is_sandbox = true;
    info.sandbox_id = std::string(id);
  }
  info.image = get(kCriImageName);
  if (info.image.empty()) info.image = get(kCloakImage);
  // String members only: a malformed spec yields "" rather than an exception.
  auto str = [](const nlohmann::json& o, const char* key) -> std::string {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : "";
  };
  if (auto lin = spec.find("linux"); lin != spec.end() && lin->is_object()) {
    if (auto ns = lin->find("namespaces"); ns != lin->end() && ns->is_array()) {
      for (const nlohmann::json& n : *ns) {
        if (n.is_object() && str(n, "type") == "network") info.netns_path = str(n, "path");
      }
    }
  }
  if (auto mounts = spec.find("mounts"); mounts != spec.end() && mounts->is_array()) {
    for (const nlohmann::json& m : *mounts) {
      if (m.is_object() && str(m, "destination") == "/etc/resolv.conf") {
        info.resolv_conf_source = str(m, "source");
      }
    }
  }
  if (info.is_sandbox) {
    // The VM's size follows the pod (shim/vm_sizing.h).
    absl::StatusOr<PodResources> resources = PodResourcesFromSpec(config_json);
    if (!resources.ok()) return resources.status();
    info.resources = *std::move(resources);
  }
  return info;
}

absl::StatusOr<PodInfo> ReadPodInfo(absl::string_view bundle, absl::string_view id) {
  const std::string path = absl::StrCat(bundle, "/config.json");
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  absl::StatusOr<PodInfo> info = ParsePodInfo(text, id);
  if (!info.ok()) return Annotate(info.status(), path);
  return info;
}

std::string EncodeDeleteResponse(uint32_t pid, uint32_t exit_status, absl::Time exited_at) {
  containerd::task::v2::DeleteResponse response;
  response.set_pid(pid);
  response.set_exit_status(exit_status);
  const int64_t nanos = absl::ToUnixNanos(exited_at);
  response.mutable_exited_at()->set_seconds(nanos / 1000000000);
  response.mutable_exited_at()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  std::string out;
  response.SerializeToString(&out);
  return out;
}

}  // namespace cloak::shim
