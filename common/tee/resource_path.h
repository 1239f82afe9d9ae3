// A key broker resource's address, "<repository>/<type>/<tag>" as in
// kbs:///<repo>/<type>/<tag> (docs/formats.md, "KBS protocol"). The guest
// names the resources it fetches with it (init-data image_keys) and the key
// broker stores them under it. Pure.
#ifndef CLOAK_COMMON_TEE_RESOURCE_PATH_H_
#define CLOAK_COMMON_TEE_RESOURCE_PATH_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::tee {

struct ResourcePath {
  std::string repo;
  std::string type;
  std::string tag;
  std::string ToString() const { return repo + "/" + type + "/" + tag; }
};

// Parses "repo/type/tag". Each part: 1-128 of [A-Za-z0-9._-], not "." or
// "..", so a path can never leave a directory it is joined to.
// InvalidArgument naming the part otherwise.
absl::StatusOr<ResourcePath> ParseResourcePath(absl::string_view text);

}  // namespace cloak::tee

#endif  // CLOAK_COMMON_TEE_RESOURCE_PATH_H_
