#include "common/tee/resource_path.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cloak::tee {
namespace {

bool ValidPart(absl::string_view part) {
  if (part.empty() || part.size() > 128 || part == "." || part == "..") return false;
  for (char c : part) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<ResourcePath> ParseResourcePath(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '/');
  if (parts.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("resource path \"", text, "\" must be <repository>/<type>/<tag>"));
  }
  for (absl::string_view part : parts) {
    if (!ValidPart(part)) {
      return absl::InvalidArgumentError(
          absl::StrCat("resource path \"", text, "\": part \"", part,
                       "\" must be 1-128 characters of [A-Za-z0-9._-] and not . or .."));
    }
  }
  return ResourcePath{std::string(parts[0]), std::string(parts[1]), std::string(parts[2])};
}

}  // namespace cloak::tee
