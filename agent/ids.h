// Validation of the identifiers and names a host request carries.
#ifndef CLOAK_AGENT_IDS_H_
#define CLOAK_AGENT_IDS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/ids.h"

namespace cloak::agent {

// Container, sandbox and exec ids: cloak::ValidateId (common/ids.h).
using ::cloak::kMaxIdLength;
using ::cloak::ValidateId;

// OK if `name` is a valid hostname: 1..64 chars of [A-Za-z0-9.-], labels not
// starting or ending with '-'.
absl::Status ValidateHostname(absl::string_view name);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_IDS_H_
