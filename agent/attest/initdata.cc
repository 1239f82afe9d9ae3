#include "agent/attest/initdata.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/tee/resource_path.h"

namespace cloak::agent::attest {
namespace {

absl::Status Wrong(absl::string_view key, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat("init-data: ", key, " must be ", want));
}

bool HostPortChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
         c == '[' || c == ']';
}

absl::StatusOr<AgentSettings> ParseAgentSettings(const nlohmann::json& t) {
  AgentSettings out;
  if (auto n = t.find("log_level"); n != t.end()) {
    const std::string v = n->is_string() ? n->get<std::string>() : "";
    if (v != "trace" && v != "debug" && v != "info" && v != "warn" && v != "error" && v != "off") {
      return Wrong("data.agent.log_level", "trace, debug, info, warn, error or off");
    }
    out.log_level = v;
  }
  if (auto n = t.find("max_downloads"); n != t.end()) {
    if (!n->is_number_integer() || n->get<int64_t>() < 1 || n->get<int64_t>() > 16) {
      return Wrong("data.agent.max_downloads", "an integer from 1 to 16");
    }
    out.max_downloads = static_cast<int>(n->get<int64_t>());
  }
  if (auto n = t.find("pull_retries"); n != t.end()) {
    if (!n->is_number_integer() || n->get<int64_t>() < 0 || n->get<int64_t>() > 10) {
      return Wrong("data.agent.pull_retries", "an integer from 0 to 10");
    }
    out.pull_retries = static_cast<int>(n->get<int64_t>());
  }
  if (auto n = t.find("pull_retry_backoff_ms"); n != t.end()) {
    if (!n->is_number_integer() || n->get<int64_t>() < 10 || n->get<int64_t>() > 60000) {
      return Wrong("data.agent.pull_retry_backoff_ms", "an integer from 10 to 60000");
    }
    out.pull_retry_backoff_ms = n->get<int64_t>();
  }
  if (auto n = t.find("insecure_registries"); n != t.end()) {
    if (!n->is_array()) return Wrong("data.agent.insecure_registries", "an array of \"host:port\"");
    for (size_t i = 0; i < n->size(); ++i) {
      const nlohmann::json& r = (*n)[i];
      const std::string v = r.is_string() ? r.get<std::string>() : "";
      if (v.empty() || v.size() > 255 || !std::all_of(v.begin(), v.end(), HostPortChar)) {
        return Wrong(absl::StrCat("data.agent.insecure_registries[", i, "]"),
                     "a registry \"host\" or \"host:port\"");
      }
      out.insecure_registries.push_back(v);
    }
  }
  return out;
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
  if (auto n = data.find("agent"); n != data.end()) {
    if (!n->is_object()) return Wrong("data.agent", "a table");
    ASSIGN_OR_RETURN(out.agent, ParseAgentSettings(*n));
  }
  if (!out.image_keys.empty() && out.kbs_url.empty()) {
    return absl::InvalidArgumentError("init-data: data.image_keys is set but data.kbs_url is not");
  }
  return out;
}

}  // namespace cloak::agent::attest
