// `cloak policy gen` flags for image signatures (docs/policy.md "Image
// signatures"): the policy's "image_signatures" object from
// --signature-key SCOPE=PEM_FILE, --signature-default and --accept-unsigned.
#ifndef CLOAK_CLI_CLOAK_POLICY_SIGNATURES_H_
#define CLOAK_CLI_CLOAK_POLICY_SIGNATURES_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cloak::cli {

struct SignatureGenOptions {
  // "SCOPE=PEM_FILE": images of SCOPE need a sigstore signature by that key
  // (repeatable; several keys for one scope: any of them).
  std::vector<std::string> keys;
  // For images no scope names: "reject" (the default once a key is given)
  // or "accept" (insecureAcceptAnything).
  std::string default_action;
  // "IMAGE@sha256:<hex>": that image, pinned by digest, runs unsigned.
  std::vector<std::string> accept_unsigned;

  bool empty() const { return keys.empty() && default_action.empty() && accept_unsigned.empty(); }
};

// "busybox" → "docker.io/library/busybox", "quay.io/a/b:1" unchanged: the
// name the guest's puller gives an image, which is what scopes match.
// Pure.
std::string NormalizeImageName(absl::string_view name);

// Pure: the "image_signatures" object. `keys` maps a scope to PEM public
// keys. InvalidArgument for a bad default or an --accept-unsigned entry
// without a digest.
absl::StatusOr<nlohmann::json> ImageSignaturesJson(
    const std::map<std::string, std::vector<std::string>>& keys, absl::string_view default_action,
    const std::vector<std::string>& accept_unsigned);

// Reads the key files named by `options.keys`, then ImageSignaturesJson.
absl::StatusOr<nlohmann::json> ImageSignaturesFromFlags(const SignatureGenOptions& options);

}  // namespace cloak::cli

#endif  // CLOAK_CLI_CLOAK_POLICY_SIGNATURES_H_
