// Fuzzes image reference parsing (agent/image/reference.h): the reference
// comes from the untrusted host in the agent's PullImage request.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "agent/image/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto ref = cloak::agent::image::ParseReference(text);
  (void)cloak::agent::image::IsValidSha256Digest(text);
  if (ref.ok()) {
    // A parsed reference is stable: its canonical form parses to itself.
    auto again = cloak::agent::image::ParseReference(ref->String());
    if (!again.ok() || again->String() != ref->String()) __builtin_trap();
  }
  return 0;
}
