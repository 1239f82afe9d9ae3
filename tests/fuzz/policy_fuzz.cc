// Fuzzes the agent policy document parser (policy/policy.h): the policy
// reaches the guest in init-data, JSON or YAML.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto policy = cloak::policy::ParsePolicy(text);
  if (policy.ok()) (void)cloak::policy::Explain(*policy);
  return 0;
}
