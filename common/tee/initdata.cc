#include "common/tee/initdata.h"

// Debian's toml++ is built with exceptions; toml::parse_error is caught
// right here and never leaves this file.
#include <toml++/toml.h>

#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cloak::tee {
namespace {

absl::Status Wrong(absl::string_view key, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat("init-data: ", key, " must be ", want));
}

nlohmann::json ToJson(const toml::node& node) {
  if (const toml::table* t = node.as_table()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : *t) out[std::string(key.str())] = ToJson(value);
    return out;
  }
  if (const toml::array* a = node.as_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const toml::node& value : *a) out.push_back(ToJson(value));
    return out;
  }
  if (auto s = node.value_exact<std::string>()) return *s;
  if (auto i = node.value_exact<int64_t>()) return *i;
  if (auto d = node.value_exact<double>()) return *d;
  if (auto b = node.value_exact<bool>()) return *b;
  std::ostringstream text;  // dates and times
  node.visit([&text](const auto& v) { text << v; });
  return text.str();
}

}  // namespace

absl::StatusOr<InitData> ParseInitData(absl::string_view raw) {
  if (raw.size() > kMaxInitDataBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("init-data: the document is larger than ", kMaxInitDataBytes, " bytes"));
  }
  InitData out;
  out.raw = std::string(raw);
  toml::table doc;
  try {
    doc = toml::parse(std::string_view(raw.data(), raw.size()), std::string_view("initdata.toml"));
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("init-data is not valid TOML: ", std::string(e.description()), " (line ",
                     static_cast<int>(e.source().begin.line), ")"));
  }
  const toml::node* version = doc.get("version");
  if (version == nullptr || !version->is_string()) {
    return Wrong("version", "a string (\"0.1.0\")");
  }
  out.version = std::string(*version->value<std::string_view>());
  if (out.version != kInitDataVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "init-data: version \"", out.version, "\" is not supported (version must be \"0.1.0\")"));
  }
  const toml::node* algorithm = doc.get("algorithm");
  if (algorithm == nullptr || !algorithm->is_string()) {
    return Wrong("algorithm", "\"sha256\", \"sha384\" or \"sha512\"");
  }
  const std::string name(*algorithm->value<std::string_view>());
  absl::StatusOr<HashAlgorithm> alg = ParseHashAlgorithm(name);
  if (!alg.ok()) {
    return Wrong("algorithm",
                 absl::StrCat("\"sha256\", \"sha384\" or \"sha512\", not \"", name, "\""));
  }
  out.algorithm = *alg;
  out.digest = Hash(out.algorithm, raw);
  if (const toml::node* data = doc.get("data")) {
    if (!data->is_table()) return Wrong("data", "a table");
    out.data = ToJson(*data);
  }
  return out;
}

std::string DigestForField(absl::string_view digest, size_t size) {
  std::string out(digest.substr(0, size));
  out.resize(size, '\0');
  return out;
}

absl::StatusOr<std::string> InitDataFieldValue(absl::string_view raw, size_t field_size) {
  ASSIGN_OR_RETURN(InitData doc, ParseInitData(raw));
  return DigestForField(doc.digest, field_size);
}

}  // namespace cloak::tee
