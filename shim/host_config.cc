#include "shim/host_config.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "shim/bundle.h"

namespace cloak::shim {
namespace {

// spdlog's order, most verbose first.
int Verbosity(absl::string_view level) {
  constexpr absl::string_view kOrder[] = {"trace", "debug", "info", "warn", "error", "off"};
  for (int i = 0; i < 6; ++i) {
    if (level == kOrder[i]) return i;
  }
  return 2;
}

// Largest CA bundle accepted from kbs.ca_file.
constexpr size_t kMaxCaBytes = 64 * 1024;

}  // namespace

std::string ShimLogLevel(absl::string_view configured, bool debug) {
  if (debug && Verbosity(configured) > Verbosity("debug")) return "debug";
  return std::string(configured);
}

GuestAgentSettings GuestAgentSettingsFor(const config::Config& config,
                                         std::vector<std::string> insecure_registries) {
  GuestAgentSettings out;
  out.log_level = config.agent.log_level;
  out.max_downloads = config.image.max_concurrent_downloads;
  out.insecure_registries = std::move(insecure_registries);
  return out;
}

absl::StatusOr<std::string> AgentSettingsTable(const GuestAgentSettings& settings) {
  auto plain = [](absl::string_view key, absl::string_view v) -> absl::Status {
    for (char c : v) {
      if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
        return absl::InvalidArgumentError(
            absl::StrCat("agent setting ", key, " \"", v,
                         "\" contains a quote, a backslash or a control character"));
      }
    }
    return absl::OkStatus();
  };
  if (absl::Status s = plain("log_level", settings.log_level); !s.ok()) return s;
  std::string out = absl::StrCat("[data.agent]\nlog_level = \"", settings.log_level,
                                 "\"\nmax_downloads = ", settings.max_downloads,
                                 "\ninsecure_registries = [");
  for (size_t i = 0; i < settings.insecure_registries.size(); ++i) {
    const std::string& r = settings.insecure_registries[i];
    if (absl::Status s = plain("insecure_registries", r); !s.ok()) return s;
    absl::StrAppend(&out, i == 0 ? "" : ", ", "\"", r, "\"");
  }
  absl::StrAppend(&out, "]\n");
  return out;
}

absl::StatusOr<std::string> DefaultInitDataDocument(const config::KbsConfig& kbs,
                                                    absl::string_view ca_pem,
                                                    const GuestAgentSettings& agent) {
  std::string doc = "version = \"0.1.0\"\nalgorithm = \"sha384\"\n\n[data]\n";
  if (!kbs.url.empty()) {
    // TOML literal strings: no escapes, so the bytes are exactly these.
    if (absl::StrContains(kbs.url, "'") || kbs.url.find_first_of("\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("kbs.url \"", kbs.url, "\" contains a quote or a line break"));
    }
    absl::StrAppend(&doc, "kbs_url = '", kbs.url, "'\n");
    if (!ca_pem.empty()) {
      if (!absl::StrContains(ca_pem, "-----BEGIN CERTIFICATE-----")) {
        return absl::InvalidArgumentError(
            absl::StrCat("kbs.ca_file ", kbs.ca_file, " holds no PEM certificate"));
      }
      if (absl::StrContains(ca_pem, "'''")) {
        return absl::InvalidArgumentError(
            absl::StrCat("kbs.ca_file ", kbs.ca_file, " contains ''' (not PEM)"));
      }
      absl::StrAppend(&doc, "kbs_cert = '''\n", ca_pem, absl::EndsWith(ca_pem, "\n") ? "" : "\n",
                      "'''\n");
    }
  }
  absl::StatusOr<std::string> table = AgentSettingsTable(agent);
  if (!table.ok()) return table.status();
  absl::StrAppend(&doc, "\n", *table);
  return doc;
}

absl::StatusOr<std::optional<InitData>> PodInitData(
    const config::Config& config, const std::map<std::string, std::string>& annotations,
    const GuestAgentSettings& agent) {
  if (annotations.count(std::string(kInitDataAnnotation)) != 0 ||
      annotations.count(std::string(kKataInitDataAnnotation)) != 0) {
    return InitDataFromAnnotations(annotations);
  }
  std::string ca_pem;
  if (!config.kbs.url.empty() && !config.kbs.ca_file.empty()) {
    absl::StatusOr<std::string> read = ReadFile(config.kbs.ca_file, kMaxCaBytes);
    if (!read.ok()) {
      return absl::Status(read.status().code(),
                          absl::StrCat("kbs.ca_file: ", read.status().message(),
                                       " (fix the path in the shim's config, or empty it to "
                                       "use the guest's trust store)"));
    }
    ca_pem = std::move(*read);
  }
  absl::StatusOr<std::string> doc = DefaultInitDataDocument(config.kbs, ca_pem, agent);
  if (!doc.ok()) return doc.status();
  // The same decoding and digest as a pod's own document.
  absl::StatusOr<std::optional<InitData>> parsed = InitDataFromAnnotations(
      {{std::string(kInitDataAnnotation), absl::Base64Escape(*doc)}});
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the init-data made from [kbs] and the agent settings: ",
                     parsed.status().message()));
  }
  return parsed;
}

}  // namespace cloak::shim
