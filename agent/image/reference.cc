#include "agent/image/reference.h"

#include <cstdlib>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cloak::agent::image {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTagLength = 128;

absl::Status Invalid(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid image reference \"", text, "\": ", why,
      " (expected [registry[:port]/]repository[:tag][@sha256:<64 hex digits>])"));
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool IsValidPathComponent(absl::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    // A separator run.
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    absl::string_view sep = c.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == absl::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// Tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
bool IsValidTag(absl::string_view t) {
  if (t.empty() || t.size() > kMaxTagLength) return false;
  auto word = [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(t.front())) return false;
  for (char c : t) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

// Domain: host labels [A-Za-z0-9-] separated by dots, optional :port.
bool IsValidDomain(absl::string_view d, std::string* why) {
  absl::string_view host = d;
  size_t colon = d.rfind(':');
  if (colon != absl::string_view::npos) {
    host = d.substr(0, colon);
    absl::string_view port = d.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != absl::string_view::npos ||
        std::atoi(std::string(port).c_str()) < 1 || std::atoi(std::string(port).c_str()) > 65535) {
      *why = absl::StrCat("registry port \"", port, "\" is not a number from 1 to 65535");
      return false;
    }
  }
  if (host.empty()) {
    *why = "empty registry host";
    return false;
  }
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (label.empty() || label.front() == '-' || label.back() == '-') {
      *why = absl::StrCat("registry host \"", host, "\" is not a valid host name");
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') {
        *why = absl::StrCat("registry host \"", host, "\" is not a valid host name");
        return false;
      }
    }
  }
  return true;
}

}  // namespace

bool IsValidSha256Digest(absl::string_view digest) {
  if (!absl::StartsWith(digest, "sha256:")) return false;
  absl::string_view hex = digest.substr(7);
  if (hex.size() != 64) return false;
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string Reference::RegistryHost() const {
  return registry == kDockerHubDomain ? std::string(kDockerHubRegistryHost) : registry;
}

std::string Reference::ManifestReference() const { return digest.empty() ? tag : digest; }

std::string Reference::String() const {
  std::string out = absl::StrCat(registry, "/", repository);
  if (!tag.empty()) absl::StrAppend(&out, ":", tag);
  if (!digest.empty()) absl::StrAppend(&out, "@", digest);
  return out;
}

absl::StatusOr<Reference> ParseReference(absl::string_view text) {
  if (text.empty()) return Invalid(text, "it is empty");
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f) {
      return Invalid(text, "it contains whitespace, control or non-ASCII characters");
    }
  }
  Reference ref;
  absl::string_view rest = text;

  // Digest.
  size_t at = rest.find('@');
  if (at != absl::string_view::npos) {
    absl::string_view digest = rest.substr(at + 1);
    if (!IsValidSha256Digest(digest)) {
      return Invalid(text, absl::StrCat("digest \"", digest,
                                        "\" is not sha256:<64 lowercase hex digits>"));
    }
    ref.digest = std::string(digest);
    rest = rest.substr(0, at);
  }

  // Tag: a ':' after the last '/'.
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != absl::string_view::npos && (slash == absl::string_view::npos || colon > slash)) {
    absl::string_view tag = rest.substr(colon + 1);
    if (!IsValidTag(tag)) {
      return Invalid(text, absl::StrCat("tag \"", tag,
                                        "\" must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
    }
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return Invalid(text, "the repository name is empty");

  // Registry: the first component if it looks like a host.
  absl::string_view path = rest;
  size_t first_slash = rest.find('/');
  if (first_slash != absl::string_view::npos) {
    absl::string_view first = rest.substr(0, first_slash);
    if (absl::StrContains(first, '.') || absl::StrContains(first, ':') || first == "localhost") {
      std::string why;
      if (!IsValidDomain(first, &why)) return Invalid(text, why);
      ref.registry = std::string(first);
      path = rest.substr(first_slash + 1);
    }
  }
  if (ref.registry.empty() || ref.registry == "index.docker.io") ref.registry = kDockerHubDomain;

  if (path.empty()) return Invalid(text, "the repository name is empty");
  if (path.size() > kMaxNameLength) {
    return Invalid(text, absl::StrCat("the repository name is longer than ", kMaxNameLength,
                                      " characters"));
  }
  for (absl::string_view component : absl::StrSplit(path, '/')) {
    if (!IsValidPathComponent(component)) {
      return Invalid(text, absl::StrCat("repository component \"", component,
                                        "\" must be lowercase letters and digits, separated by "
                                        "'.', '_', '__' or '-'"));
    }
  }
  ref.repository = std::string(path);
  if (ref.registry == kDockerHubDomain && !absl::StrContains(path, '/')) {
    ref.repository = absl::StrCat("library/", path);
  }
  // Docker's parser applies the limit to the normalised name, registry
  // included; so does this one, so that String() always parses again.
  if (size_t n = ref.registry.size() + 1 + ref.repository.size(); n > kMaxNameLength) {
    return Invalid(text, absl::StrCat("the normalised name ", ref.registry, "/...", " is ", n,
                                      " characters, longer than ", kMaxNameLength));
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace cloak::agent::image
