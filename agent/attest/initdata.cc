#include "agent/attest/initdata.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/tee/resource_path.h"

namespace cloak::agent::attest {
namespace {

absl::Status Wrong(absl::string_view key, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat("init-data: ", key, " must be ", want));
}

}  // namespace

absl::StatusOr<InitData> ParseInitData(absl::string_view raw) {
  ASSIGN_OR_RETURN(tee::InitData doc, tee::ParseInitData(raw));
  InitData out;
  out.raw = std::move(doc.raw);
  out.version = std::move(doc.version);
  out.algorithm = doc.algorithm;
  out.digest = std::move(doc.digest);
  const nlohmann::json& data = doc.data;
  if (auto n = data.find("kbs_url"); n != data.end()) {
    if (!n->is_string()) return Wrong("data.kbs_url", "a string");
    out.kbs_url = n->get<std::string>();
  }
  if (auto n = data.find("kbs_cert"); n != data.end()) {
    if (!n->is_string()) return Wrong("data.kbs_cert", "a string (PEM)");
    out.kbs_cert = n->get<std::string>();
    if (!out.kbs_cert.empty() && out.kbs_cert.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return Wrong("data.kbs_cert", "a PEM certificate");
    }
  }
  if (auto n = data.find("image_keys"); n != data.end()) {
    if (!n->is_array()) return Wrong("data.image_keys", "an array of strings");
    for (size_t i = 0; i < n->size(); ++i) {
      const nlohmann::json& k = (*n)[i];
      if (!k.is_string()) {
        return Wrong(absl::StrCat("data.image_keys[", i, "]"), "a string (\"repo/type/tag\")");
      }
      std::string path = k.get<std::string>();
      if (absl::Status s = tee::ParseResourcePath(path).status(); !s.ok()) {
        return Annotate(s, absl::StrCat("init-data: data.image_keys[", i, "]"));
      }
      out.image_keys.push_back(std::move(path));
    }
  }
  if (auto n = data.find("policy.json"); n != data.end()) {
    if (!n->is_string()) return Wrong("data.\"policy.json\"", "a string (the policy document)");
    out.policy = n->get<std::string>();
  }
  if (!out.image_keys.empty() && out.kbs_url.empty()) {
    return absl::InvalidArgumentError("init-data: data.image_keys is set but data.kbs_url is not");
  }
  return out;
}

}  // namespace cloak::agent::attest
