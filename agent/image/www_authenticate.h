// WWW-Authenticate challenges (RFC 7235) as registries send them, e.g.
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",
//          scope="repository:library/busybox:pull"
#ifndef CLOAK_AGENT_IMAGE_WWW_AUTHENTICATE_H_
#define CLOAK_AGENT_IMAGE_WWW_AUTHENTICATE_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::agent::image {

struct AuthChallenge {
  std::string scheme;                         // lowercased: "bearer", "basic"
  std::map<std::string, std::string> params;  // keys lowercased, values unquoted
};

// Parses the first challenge of a WWW-Authenticate header value.
// InvalidArgument on malformed input. Pure.
absl::StatusOr<AuthChallenge> ParseWwwAuthenticate(absl::string_view header);

}  // namespace cloak::agent::image

#endif  // CLOAK_AGENT_IMAGE_WWW_AUTHENTICATE_H_
