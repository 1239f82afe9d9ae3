// The KBS state directory:
//   <state>/resources/<repo>/<type>/<tag>        resource bytes (0600)
//   <state>/policies/<repo>/<type>/<tag>.json    per-resource key-release policy
//   <state>/policies/default.json                policy for resources without one
//   <state>/token.key                            HMAC key signing attestation tokens
#ifndef CLOAK_KBS_STORE_H_
#define CLOAK_KBS_STORE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tee/resource_path.h"
#include "kbs/policy.h"

namespace cloak::kbs {

// A resource's address and its parser are common/tee's (resource_path.h).
using tee::ParseResourcePath;
using tee::ResourcePath;

class ResourceStore {
 public:
  // Creates the directory layout (0700) if missing.
  static absl::StatusOr<ResourceStore> Open(const std::string& state_dir);

  absl::Status PutResource(const ResourcePath& path, absl::string_view data) const;
  // NotFound if the resource does not exist.
  absl::StatusOr<std::string> GetResource(const ResourcePath& path) const;

  // Validates `policy_json`, then stores it for `path` (nullptr: default).
  absl::Status SetPolicy(const ResourcePath* path, absl::string_view policy_json) const;
  // The resource's own policy, else the default one; NotFound if neither.
  absl::StatusOr<ResourcePolicy> GetPolicy(const ResourcePath& path) const;

  // The token signing key; created (32 random bytes, 0600) on first use.
  absl::StatusOr<std::string> TokenKey() const;

  const std::string& dir() const { return dir_; }

 private:
  explicit ResourceStore(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_STORE_H_
