#include "agent/image/www_authenticate.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace cloak::agent::image {
namespace {

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
}

void SkipSpace(absl::string_view s, size_t* i) {
  while (*i < s.size() && (s[*i] == ' ' || s[*i] == '\t')) ++*i;
}

}  // namespace

absl::StatusOr<AuthChallenge> ParseWwwAuthenticate(absl::string_view header) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("malformed WWW-Authenticate header \"",
                                                   header.substr(0, 200), "\": ", why));
  };
  AuthChallenge c;
  size_t i = 0;
  SkipSpace(header, &i);
  size_t start = i;
  while (i < header.size() && IsTokenChar(header[i])) ++i;
  if (i == start) return bad("no authentication scheme");
  c.scheme = absl::AsciiStrToLower(header.substr(start, i - start));
  while (true) {
    SkipSpace(header, &i);
    while (i < header.size() && header[i] == ',') {
      ++i;
      SkipSpace(header, &i);
    }
    if (i >= header.size()) break;
    start = i;
    while (i < header.size() && IsTokenChar(header[i])) ++i;
    if (i == start) return bad(absl::StrCat("unexpected character at offset ", i));
    std::string key = absl::AsciiStrToLower(header.substr(start, i - start));
    SkipSpace(header, &i);
    if (i >= header.size() || header[i] != '=') {
      // A following challenge ("Bearer ..., Basic realm=...") — stop at it.
      break;
    }
    ++i;
    SkipSpace(header, &i);
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      bool closed = false;
      while (i < header.size()) {
        char ch = header[i++];
        if (ch == '\\' && i < header.size()) {
          value.push_back(header[i++]);
        } else if (ch == '"') {
          closed = true;
          break;
        } else {
          value.push_back(ch);
        }
      }
      if (!closed) return bad(absl::StrCat("unterminated quoted value for ", key));
    } else {
      start = i;
      while (i < header.size() && header[i] != ',' && header[i] != ' ' && header[i] != '\t') ++i;
      value = std::string(header.substr(start, i - start));
    }
    c.params[key] = std::move(value);
  }
  return c;
}

}  // namespace cloak::agent::image
