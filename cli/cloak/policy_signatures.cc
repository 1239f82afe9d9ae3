#include "cli/cloak/policy_signatures.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "policy/image_signatures.h"

namespace cloak::cli {

using nlohmann::json;

std::string NormalizeImageName(absl::string_view name) {
  const size_t slash = name.find('/');
  const absl::string_view first = slash == absl::string_view::npos ? name : name.substr(0, slash);
  const bool has_registry = slash != absl::string_view::npos &&
                            (absl::StrContains(first, ".") || absl::StrContains(first, ":") ||
                             first == "localhost");
  if (has_registry) return std::string(name);
  if (first == name && absl::StrContains(name, ".") && !absl::StrContains(name, "@") &&
      !absl::StrContains(name, ":")) {
    return std::string(name);  // a registry alone, as a scope ("quay.io")
  }
  return absl::StrCat("docker.io/", slash == absl::string_view::npos ? "library/" : "", name);
}

absl::StatusOr<json> ImageSignaturesJson(const std::map<std::string, std::vector<std::string>>& keys,
                                         absl::string_view default_action,
                                         const std::vector<std::string>& accept_unsigned) {
  std::string def(default_action);
  if (def.empty()) def = keys.empty() ? "accept" : "reject";
  if (def != "reject" && def != "accept") {
    return absl::InvalidArgumentError(absl::StrCat("--signature-default \"", def,
                                                   "\": reject or accept"));
  }
  json out = json::object();
  out["default"] = json::array({{{"type", def == "reject" ? "reject" : "insecureAcceptAnything"}}});
  json scopes = json::object();
  for (const auto& [scope, pems] : keys) {
    scopes[NormalizeImageName(scope)] = json::array(
        {{{"type", "sigstoreSigned"},
          {"keys", pems},
          {"signedIdentity", {{"type", "matchRepoDigestOrExact"}}}}});
  }
  for (const std::string& ref : accept_unsigned) {
    const size_t at = ref.find("@sha256:");
    if (at == std::string::npos || ref.size() != at + 8 + 64) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--accept-unsigned \"", ref, "\": name an image pinned by digest, IMAGE@sha256:<hex>"));
    }
    scopes[NormalizeImageName(ref)] = json::array({{{"type", "insecureAcceptAnything"}}});
  }
  if (!scopes.empty()) out["scopes"] = scopes;
  // What the agent will parse: catch a bad key or scope here.
  RETURN_IF_ERROR(policy::ParseImageSignatures(out, "image_signatures").status());
  return out;
}

absl::StatusOr<json> ImageSignaturesFromFlags(const SignatureGenOptions& options) {
  std::map<std::string, std::vector<std::string>> keys;
  for (const std::string& k : options.keys) {
    const size_t eq = k.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == k.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--signature-key \"", k, "\": SCOPE=PEM_FILE (e.g. quay.io/org/app=cosign.pub)"));
    }
    ASSIGN_OR_RETURN(std::string pem, ReadFile(k.substr(eq + 1)));
    keys[k.substr(0, eq)].push_back(std::move(pem));
  }
  return ImageSignaturesJson(keys, options.default_action, options.accept_unsigned);
}

}  // namespace cloak::cli
