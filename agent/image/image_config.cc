#include "agent/image/image_config.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/fd.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace cloak::agent::image {
namespace {

using nlohmann::json;

constexpr size_t kMaxEtcFileBytes = 4 << 20;

absl::Status StringArray(const json& obj, const char* key, std::vector<std::string>* out,
                         bool* present = nullptr) {
  auto it = obj.find(key);
  if (present != nullptr) *present = it != obj.end() && !it->is_null();
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat("image config field config.", key, " is not an array of strings"));
  }
  for (const json& v : *it) {
    if (!v.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("image config field config.", key, " has a non-string element"));
    }
    out->push_back(v.get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status String(const json& obj, const char* key, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("image config field ", key,
                                                   " is not a string"));
  }
  *out = it->get<std::string>();
  return absl::OkStatus();
}

struct PasswdEntry {
  std::string name;
  uint32_t uid;
  uint32_t gid;
};
struct GroupEntry {
  std::string name;
  uint32_t gid;
  std::vector<std::string> members;
};

std::vector<PasswdEntry> ParsePasswd(absl::string_view text) {
  std::vector<PasswdEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ':');
    PasswdEntry e;
    if (f.size() < 4 || f[0].empty() || !absl::SimpleAtoi(f[2], &e.uid) ||
        !absl::SimpleAtoi(f[3], &e.gid)) {
      continue;
    }
    e.name = std::string(f[0]);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<GroupEntry> ParseGroup(absl::string_view text) {
  std::vector<GroupEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ':');
    GroupEntry e;
    if (f.size() < 3 || f[0].empty() || !absl::SimpleAtoi(f[2], &e.gid)) continue;
    e.name = std::string(f[0]);
    if (f.size() >= 4) {
      for (absl::string_view m : absl::StrSplit(f[3], ',', absl::SkipEmpty())) {
        e.members.emplace_back(m);
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::string> ReadInRoot(int root, const char* path) {
  struct open_how how = {};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(syscall(SYS_openat2, root, path, &how, sizeof(how))));
  if (!fd) {
    if (errno == ENOENT) return std::string();
    return ErrnoError(errno, "open ", path, " in the rootfs");
  }
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read ", path, " in the rootfs");
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxEtcFileBytes) {
      return absl::ResourceExhaustedError(absl::StrCat(path, " in the rootfs is larger than ",
                                                       kMaxEtcFileBytes, " bytes"));
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view json_text) {
  json j = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("image config is not a JSON object");
  }
  ImageConfig c;
  RETURN_IF_ERROR(String(j, "os", &c.os));
  RETURN_IF_ERROR(String(j, "architecture", &c.architecture));
  auto cfg = j.find("config");
  if (cfg != j.end() && !cfg->is_null()) {
    if (!cfg->is_object()) return absl::InvalidArgumentError("image config field config is not an object");
    std::vector<std::string> entrypoint;
    bool has_entrypoint = false;
    RETURN_IF_ERROR(StringArray(*cfg, "Entrypoint", &entrypoint, &has_entrypoint));
    if (has_entrypoint) c.entrypoint = std::move(entrypoint);
    RETURN_IF_ERROR(StringArray(*cfg, "Cmd", &c.cmd));
    RETURN_IF_ERROR(StringArray(*cfg, "Env", &c.env));
    RETURN_IF_ERROR(String(*cfg, "WorkingDir", &c.working_dir));
    RETURN_IF_ERROR(String(*cfg, "User", &c.user));
  }
  auto rootfs = j.find("rootfs");
  if (rootfs != j.end() && rootfs->is_object()) {
    RETURN_IF_ERROR(StringArray(*rootfs, "diff_ids", &c.diff_ids));
  }
  return c;
}

absl::StatusOr<ProcessConfig> ApplyImageConfig(const ImageConfig& config,
                                               const ProcessRequest& request) {
  ProcessConfig p;
  // Args (containerd pkg/cri/opts WithProcessArgs, from moby).
  std::vector<std::string> command = request.command;
  std::vector<std::string> args = request.args;
  if (command.empty()) {
    if (args.empty()) args = config.cmd;
    if (config.entrypoint.has_value() &&
        !(config.entrypoint->size() == 1 && (*config.entrypoint)[0].empty())) {
      command = *config.entrypoint;
    }
  }
  if (command.empty() && args.empty()) {
    return absl::InvalidArgumentError(
        "no command specified: the request has no command or args and the image config has no "
        "Entrypoint or Cmd");
  }
  p.args = std::move(command);
  p.args.insert(p.args.end(), args.begin(), args.end());

  // Env (containerd replaceOrAppendEnvValues).
  std::vector<std::string> results =
      config.env.empty() ? std::vector<std::string>{kDefaultPathEnv} : config.env;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < results.size(); ++i) {
    index[results[i].substr(0, results[i].find('='))] = i;
  }
  std::vector<bool> removed(results.size(), false);
  for (const std::string& e : request.env) {
    size_t eq = e.find('=');
    std::string key = e.substr(0, eq);
    auto it = index.find(key);
    if (eq == std::string::npos) {
      if (it != index.end()) removed[it->second] = true;
      continue;
    }
    if (it != index.end()) {
      results[it->second] = e;
      removed[it->second] = false;
    } else {
      index[key] = results.size();
      results.push_back(e);
      removed.push_back(false);
    }
  }
  for (size_t i = 0; i < results.size(); ++i) {
    if (!removed[i]) p.env.push_back(std::move(results[i]));
  }

  p.cwd = !request.cwd.empty() ? request.cwd
          : !config.working_dir.empty() ? config.working_dir
                                        : "/";
  p.user = !request.user.empty() ? request.user : config.user;
  return p;
}

absl::StatusOr<ResolvedUser> ResolveUser(absl::string_view user, absl::string_view passwd,
                                         absl::string_view group) {
  ResolvedUser r;
  if (user.empty()) return r;
  std::vector<PasswdEntry> users = ParsePasswd(passwd);
  std::vector<GroupEntry> groups = ParseGroup(group);

  absl::string_view user_part = user;
  absl::string_view group_part;
  bool has_group = false;
  if (size_t colon = user.find(':'); colon != absl::string_view::npos) {
    user_part = user.substr(0, colon);
    group_part = user.substr(colon + 1);
    has_group = true;
    if (user_part.empty() || group_part.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("user \"", user, "\" must be uid, uid:gid, name or name:group"));
    }
  }

  std::string user_name;
  uint32_t uid;
  if (absl::SimpleAtoi(user_part, &uid)) {
    r.uid = uid;
    r.gid = 0;
    for (const PasswdEntry& e : users) {
      if (e.uid == uid) {
        r.gid = e.gid;
        user_name = e.name;
        break;
      }
    }
  } else {
    bool found = false;
    for (const PasswdEntry& e : users) {
      if (e.name == user_part) {
        r.uid = e.uid;
        r.gid = e.gid;
        user_name = e.name;
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::NotFoundError(absl::StrCat("user \"", user_part,
                                              "\" is not in the image's /etc/passwd; use a "
                                              "numeric uid or add the user to the image"));
    }
  }

  if (has_group) {
    uint32_t gid;
    if (absl::SimpleAtoi(group_part, &gid)) {
      r.gid = gid;
    } else {
      bool found = false;
      for (const GroupEntry& g : groups) {
        if (g.name == group_part) {
          r.gid = g.gid;
          found = true;
          break;
        }
      }
      if (!found) {
        return absl::NotFoundError(absl::StrCat("group \"", group_part,
                                                "\" is not in the image's /etc/group; use a "
                                                "numeric gid or add the group to the image"));
      }
    }
  }

  if (!user_name.empty()) {
    for (const GroupEntry& g : groups) {
      if (g.gid == r.gid) continue;
      for (const std::string& m : g.members) {
        if (m == user_name) {
          r.additional_gids.push_back(g.gid);
          break;
        }
      }
    }
  }
  return r;
}

absl::StatusOr<ResolvedUser> ResolveUserInRootfs(absl::string_view user,
                                                 const std::string& rootfs_dir) {
  if (user.empty()) return ResolvedUser{};
  UniqueFd root(open(rootfs_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoError(errno, "open rootfs ", rootfs_dir);
  ASSIGN_OR_RETURN(std::string passwd, ReadInRoot(root.get(), "etc/passwd"));
  ASSIGN_OR_RETURN(std::string group, ReadInRoot(root.get(), "etc/group"));
  return ResolveUser(user, passwd, group);
}

}  // namespace cloak::agent::image
