// Validation of the identifiers and names a host request carries.
#ifndef CLOAK_AGENT_IDS_H_
#define CLOAK_AGENT_IDS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cloak::agent {

// Longest container, sandbox or exec id accepted.
inline constexpr size_t kMaxIdLength = 76;

// OK if `id` matches ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$ and is at most
// kMaxIdLength long. InvalidArgument naming `what` otherwise. Such an id is
// safe as a single path component and as a crun argument.
absl::Status ValidateId(absl::string_view what, absl::string_view id);

// OK if `name` is a valid hostname: 1..64 chars of [A-Za-z0-9.-], labels not
// starting or ending with '-'.
absl::Status ValidateHostname(absl::string_view name);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_IDS_H_
