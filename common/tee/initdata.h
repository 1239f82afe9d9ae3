// Init-data: the pod's trust settings as the TOML document Kata and
// Confidential Containers define (docs/formats.md, "Init-data"):
//
//   version = "0.1.0"
//   algorithm = "sha384"            # sha256 | sha384 | sha512
//   [data]                          # optional; what each party reads from it
//   kbs_url = "https://kbs.example:8080"
//
// Its digest is hash(algorithm, the exact document bytes). The shim binds it
// into the launch (SNP HOST_DATA, 32 bytes; TDX MRCONFIGID, 48 bytes),
// fitted to the field by zero-padding or truncation as Trustee does; the
// agent compares it with what its evidence carries; the key broker and the
// simulated SP recompute it. This is the one place that parses and hashes
// the document. Pure.
#ifndef CLOAK_COMMON_TEE_INITDATA_H_
#define CLOAK_COMMON_TEE_INITDATA_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tee/digest.h"
#include "nlohmann/json.hpp"

namespace cloak::tee {

inline constexpr char kInitDataVersion[] = "0.1.0";
// Largest document accepted.
inline constexpr size_t kMaxInitDataBytes = 256 * 1024;

struct InitData {
  std::string raw;  // the exact bytes, as hashed
  std::string version;
  HashAlgorithm algorithm = HashAlgorithm::kSha384;
  std::string digest;  // Hash(algorithm, raw), raw bytes
  // The [data] table converted to a JSON object (strings, numbers, booleans,
  // arrays, tables; dates and times as their TOML text); {} when absent.
  nlohmann::json data = nlohmann::json::object();
};

// Parses and validates `raw`: TOML, `version` "0.1.0", `algorithm` one of
// sha256/sha384/sha512, `data` (if present) a table. InvalidArgument
// starting "init-data" and naming the key at fault (or the TOML error with
// its line). Each party checks the [data] keys it uses itself.
absl::StatusOr<InitData> ParseInitData(absl::string_view raw);

// `digest` zero-padded or truncated to a launch field of `size` bytes.
std::string DigestForField(absl::string_view digest, size_t size);

// What a TEE field of `field_size` bytes holds for the document `raw`:
// DigestForField(ParseInitData(raw)->digest, field_size).
absl::StatusOr<std::string> InitDataFieldValue(absl::string_view raw, size_t field_size);

}  // namespace cloak::tee

#endif  // CLOAK_COMMON_TEE_INITDATA_H_
