#include "agent/attest/initdata.h"

// Debian's toml++ is built with exceptions (see shim/config/config.cc);
// this is the attest library's only translation unit that includes it, and
// toml::parse_error is caught right here.
#include <toml++/toml.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace cloak::agent::attest {
namespace {

absl::Status Wrong(absl::string_view key, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat("init-data: ", key, " must be ", want));
}

}  // namespace

absl::Status ValidateResourcePath(absl::string_view path) {
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
  if (parts.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("KBS resource path \"", path, "\" is not repo/type/tag"));
  }
  for (absl::string_view p : parts) {
    bool ok = !p.empty() && p.size() <= 128 && p != "." && p != "..";
    for (char c : p) {
      ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                  c == '-');
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "KBS resource path \"", path, "\": each part is 1-128 of [A-Za-z0-9._-], not . or .."));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<InitData> ParseInitData(absl::string_view raw) {
  InitData out;
  out.raw = std::string(raw);
  toml::table doc;
  try {
    doc = toml::parse(std::string_view(raw.data(), raw.size()), std::string_view("initdata.toml"));
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("init-data is not TOML: ", std::string(e.description()),
                                                   " (line ", static_cast<int>(e.source().begin.line), ")"));
  }
  const toml::node* version = doc.get("version");
  if (version == nullptr || !version->is_string()) return Wrong("version", "a string (\"0.1.0\")");
  out.version = std::string(*version->value<std::string_view>());
  if (out.version != kInitDataVersion) {
    return absl::InvalidArgumentError(absl::StrCat("init-data: version \"", out.version,
                                                   "\" is not supported (want \"0.1.0\")"));
  }
  const toml::node* algorithm = doc.get("algorithm");
  if (algorithm == nullptr || !algorithm->is_string()) {
    return Wrong("algorithm", "a string (sha256, sha384 or sha512)");
  }
  absl::StatusOr<HashAlgorithm> alg =
      ParseHashAlgorithm(std::string(*algorithm->value<std::string_view>()));
  if (!alg.ok()) return Annotate(alg.status(), "init-data: algorithm");
  out.algorithm = *alg;
  out.digest = Hash(out.algorithm, raw);

  const toml::node* data_node = doc.get("data");
  if (data_node == nullptr) return out;  // no settings: nothing to attest to
  const toml::table* data = data_node->as_table();
  if (data == nullptr) return Wrong("data", "a table");
  if (const toml::node* n = data->get("kbs_url")) {
    if (!n->is_string()) return Wrong("data.kbs_url", "a string");
    out.kbs_url = std::string(*n->value<std::string_view>());
  }
  if (const toml::node* n = data->get("kbs_cert")) {
    if (!n->is_string()) return Wrong("data.kbs_cert", "a string (PEM)");
    out.kbs_cert = std::string(*n->value<std::string_view>());
    if (!out.kbs_cert.empty() && out.kbs_cert.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return Wrong("data.kbs_cert", "a PEM certificate");
    }
  }
  if (const toml::node* n = data->get("image_keys")) {
    const toml::array* keys = n->as_array();
    if (keys == nullptr) return Wrong("data.image_keys", "an array of strings");
    for (size_t i = 0; i < keys->size(); ++i) {
      const toml::node& k = *keys->get(i);
      if (!k.is_string()) {
        return Wrong(absl::StrCat("data.image_keys[", i, "]"), "a string (\"repo/type/tag\")");
      }
      std::string path(*k.value<std::string_view>());
      if (absl::Status s = ValidateResourcePath(path); !s.ok()) {
        return Annotate(s, absl::StrCat("init-data: data.image_keys[", i, "]"));
      }
      out.image_keys.push_back(std::move(path));
    }
  }
  if (const toml::node* n = data->get("policy.json")) {
    if (!n->is_string()) return Wrong("data.\"policy.json\"", "a string (the policy document)");
    out.policy = std::string(*n->value<std::string_view>());
  }
  if (!out.image_keys.empty() && out.kbs_url.empty()) {
    return absl::InvalidArgumentError("init-data: data.image_keys is set but data.kbs_url is not");
  }
  return out;
}

std::string DigestForField(absl::string_view digest, size_t size) {
  std::string out(digest.substr(0, size));
  out.resize(size, '\0');
  return out;
}

}  // namespace cloak::agent::attest
