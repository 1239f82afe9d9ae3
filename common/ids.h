// containerd's identifier rule, shared by every component that takes an id
// from outside (the shim's Task API and events, the agent's requests).
#ifndef CLOAK_COMMON_IDS_H_
#define CLOAK_COMMON_IDS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cloak {

// Longest container, sandbox, exec or namespace id accepted (containerd's).
inline constexpr size_t kMaxIdLength = 76;

// OK if `id` matches ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$ and is at most
// kMaxIdLength long. InvalidArgument naming `what` otherwise. Such an id is
// safe as a single path component and as a command-line argument.
absl::Status ValidateId(absl::string_view what, absl::string_view id);

}  // namespace cloak

#endif  // CLOAK_COMMON_IDS_H_
