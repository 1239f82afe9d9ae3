#include "agent/ids.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cloak::agent {

absl::Status ValidateHostname(absl::string_view name) {
  if (name.empty() || name.size() > 64) {
    return absl::InvalidArgumentError("hostname must be 1 to 64 characters");
  }
  for (absl::string_view label : absl::StrSplit(name, '.')) {
    if (label.empty() || label.front() == '-' || label.back() == '-') {
      return absl::InvalidArgumentError("hostname has an empty label or one starting/ending with '-'");
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') {
        return absl::InvalidArgumentError("hostname may only hold [A-Za-z0-9.-]");
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace cloak::agent
