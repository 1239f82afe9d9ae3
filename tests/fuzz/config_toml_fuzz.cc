// Fuzzes the shim's TOML configuration (shim/config/config.h) and the pod
// annotations that override it: a malformed file or annotation must give an
// error, never a crash of the shim.
//
// Input: up to the first NUL byte a config file; after it, annotation
// lines "key=value".
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "shim/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::string_view toml = input;
  absl::string_view annotations;
  if (size_t nul = input.find('\0'); nul != absl::string_view::npos) {
    toml = input.substr(0, nul);
    annotations = input.substr(nul + 1);
  }
  auto config = cloak::config::ParseConfig(toml, "fuzz.toml");
  if (!config.ok()) return 0;
  std::map<std::string, std::string> overrides;
  for (absl::string_view line : absl::StrSplit(annotations, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    overrides[kv.first] = kv.second;
  }
  (void)cloak::config::ApplyAnnotations(*config, overrides);
  return 0;
}
