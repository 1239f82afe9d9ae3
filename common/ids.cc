#include "common/ids.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace cloak {

absl::Status ValidateId(absl::string_view what, absl::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (id.size() > kMaxIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is longer than ", kMaxIdLength, " characters"));
  }
  bool previous_separator = true;  // the first character must be alphanumeric
  for (char c : id) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) {
      previous_separator = false;
    } else if ((c == '.' || c == '_' || c == '-') && !previous_separator) {
      previous_separator = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " must match ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$"));
    }
  }
  if (previous_separator) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must not end with a separator"));
  }
  return absl::OkStatus();
}

}  // namespace cloak
