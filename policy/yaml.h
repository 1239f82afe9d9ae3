// YAML ⇄ JSON trees through yaml-cpp, for policy documents and the
// Kubernetes manifests `cloak policy gen` reads and annotates. Pure.
#ifndef CLOAK_POLICY_YAML_H_
#define CLOAK_POLICY_YAML_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cloak::policy {

// Every document of a (multi-document) YAML stream; empty documents are
// skipped. InvalidArgument with yaml-cpp's message (line, column).
absl::StatusOr<std::vector<nlohmann::json>> YamlDocuments(absl::string_view text);

// One document as block YAML (strings that would read back as another type
// are quoted).
std::string ToYaml(const nlohmann::json& doc);

}  // namespace cloak::policy

#endif  // CLOAK_POLICY_YAML_H_
