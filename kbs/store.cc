#include "kbs/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "kbs/verify/openssl_util.h"

namespace cloak::kbs {
absl::StatusOr<ResourceStore> ResourceStore::Open(const std::string& state_dir) {
  if (state_dir.empty()) return absl::InvalidArgumentError("state directory not set");
  RETURN_IF_ERROR(MakeDirs(state_dir, 0700));
  RETURN_IF_ERROR(MakeDirs(state_dir + "/resources", 0700));
  RETURN_IF_ERROR(MakeDirs(state_dir + "/policies", 0700));
  return ResourceStore(state_dir);
}

absl::Status ResourceStore::PutResource(const ResourcePath& path, absl::string_view data) const {
  std::string dir = absl::StrCat(dir_, "/resources/", path.repo, "/", path.type);
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  return WriteFileAtomic(absl::StrCat(dir, "/", path.tag), data);
}

absl::StatusOr<std::string> ResourceStore::GetResource(const ResourcePath& path) const {
  std::string file = absl::StrCat(dir_, "/resources/", path.ToString());
  if (!std::filesystem::is_regular_file(file)) {
    return absl::NotFoundError(absl::StrCat("resource ", path.ToString(), " not found"));
  }
  return ReadFile(file);
}

absl::Status ResourceStore::SetPolicy(const ResourcePath* path,
                                      absl::string_view policy_json) const {
  ASSIGN_OR_RETURN(ResourcePolicy policy, ParseResourcePolicy(policy_json));
  std::string text = policy.ToJson().dump(2) + "\n";
  if (path == nullptr) return WriteFileAtomic(dir_ + "/policies/default.json", text);
  std::string dir = absl::StrCat(dir_, "/policies/", path->repo, "/", path->type);
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  return WriteFileAtomic(absl::StrCat(dir, "/", path->tag, ".json"), text);
}

absl::StatusOr<ResourcePolicy> ResourceStore::GetPolicy(const ResourcePath& path) const {
  for (const std::string& file : {absl::StrCat(dir_, "/policies/", path.ToString(), ".json"),
                                  dir_ + "/policies/default.json"}) {
    if (!std::filesystem::is_regular_file(file)) continue;
    ASSIGN_OR_RETURN(std::string text, ReadFile(file));
    auto policy = ParseResourcePolicy(text);
    if (!policy.ok()) return Annotate(policy.status(), file);
    return policy;
  }
  return absl::NotFoundError(absl::StrCat(
      "no key-release policy for resource ", path.ToString(),
      " and no default policy; set one with `cloak-kbs admin set-policy`"));
}

absl::StatusOr<std::string> ResourceStore::TokenKey() const {
  std::string file = dir_ + "/token.key";
  if (std::filesystem::is_regular_file(file)) {
    ASSIGN_OR_RETURN(std::string key, ReadFile(file));
    if (key.size() != 32) {
      return absl::DataLossError(absl::StrCat(file, " is not 32 bytes; delete it to make a new one"));
    }
    return key;
  }
  ASSIGN_OR_RETURN(std::string key, tee::RandomBytes(32));
  RETURN_IF_ERROR(WriteFileAtomic(file, key));
  return key;
}

}  // namespace cloak::kbs
