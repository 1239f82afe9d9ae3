// Init-data: the pod's trust settings, a TOML document (Trustee's initdata
// spec) that the host passes in CreateSandboxRequest.initdata and binds into
// the launch (SNP HOST_DATA, TDX MRCONFIGID, or the sample evidence):
//
//   version = "0.1.0"
//   algorithm = "sha384"            # sha256 | sha384 | sha512
//   [data]
//   kbs_url = "https://kbs.example:8080"
//   kbs_cert = """-----BEGIN CERTIFICATE-----..."""   # optional CA (PEM)
//   image_keys = ["default/key/image1"]             # KBS resources: PEM private keys
//   "policy.json" = '''{"version": "1", ...}'''      # the agent policy (docs/policy.md)
//   [data.agent]                                     # per-pod agent settings (all optional)
//   log_level = "info"                               # trace|debug|info|warn|error|off
//   max_downloads = 3                                # image layers in parallel, 1-16
//   insecure_registries = ["10.0.2.2:5000"]          # registries spoken to over plain http
//   pull_retries = 4                                 # retries of a failed registry request, 0-10
//   pull_retry_backoff_ms = 500                      # first retry's wait, doubling, 10-60000
//
// The document, its version, algorithm and digest are common/tee's
// (tee::ParseInitData); this file reads the [data] keys the agent uses.
// Pure (docs/attestation.md).
#ifndef CLOAK_AGENT_ATTEST_INITDATA_H_
#define CLOAK_AGENT_ATTEST_INITDATA_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tee/initdata.h"

namespace cloak::agent::attest {

// [data.agent]: the settings that were kernel parameters (cloak.log,
// cloak.max_downloads, cloak.insecure_registries) before they moved here so
// that a runtime class has one launch measurement (docs/measurement.md).
struct AgentSettings {
  std::string log_level;  // empty: unset
  int max_downloads = 0;  // 0: unset
  std::vector<std::string> insecure_registries;
  int pull_retries = -1;              // -1: unset
  int64_t pull_retry_backoff_ms = 0;  // 0: unset
};

struct InitData {
  std::string raw;  // the exact bytes, as hashed
  std::string version;
  tee::HashAlgorithm algorithm = tee::HashAlgorithm::kSha384;
  std::string digest;  // tee::Hash(algorithm, raw), raw bytes
  std::string kbs_url;
  std::string kbs_cert;                 // PEM, may be empty
  std::vector<std::string> image_keys;  // "repo/type/tag"
  std::string policy;                   // [data] "policy.json", may be empty
  AgentSettings agent;                  // [data.agent]
};

// Parses and validates `raw`. InvalidArgument naming the key at fault (bad
// TOML with its line, wrong version, unknown algorithm, a key of the wrong
// type, an image key that is not "repo/type/tag"). Unknown keys in [data]
// are ignored.
absl::StatusOr<InitData> ParseInitData(absl::string_view raw);

}  // namespace cloak::agent::attest

#endif  // CLOAK_AGENT_ATTEST_INITDATA_H_
