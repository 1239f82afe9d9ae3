// Helpers of the agent/attest tests: running tools (openssl, skopeo,
// scripts/make-busybox-image) and reading OCI image layouts.
#ifndef CLOAK_TESTS_AGENT_ATTEST_ATTEST_TEST_UTIL_H_
#define CLOAK_TESTS_AGENT_ATTEST_ATTEST_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/image/manifest.h"

namespace cloak::agent::attest::testing {

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& data);

// Runs argv to completion (stdout+stderr to `log`); OK iff it exits 0,
// else an error with the log's tail.
absl::Status Run(const std::vector<std::string>& argv, const std::string& log);

// Missing tools, or empty when openssl, skopeo and busybox are all there.
std::string MissingTools();

// In `dir`: k.pem (RSA 2048) + pub.pem, an OCI layout `src` (tag "t") made by
// scripts/make-busybox-image, and `dst`, the same image encrypted by skopeo
// with jwe:pub.pem.
absl::Status MakeEncryptedImage(const std::string& dir);

struct LayoutLayer {
  image::Descriptor descriptor;
  std::string blob_path;
};
// The single image manifest's layers of the OCI layout at `dir`.
absl::StatusOr<std::vector<LayoutLayer>> LayoutLayers(const std::string& dir);

}  // namespace cloak::agent::attest::testing

#endif  // CLOAK_TESTS_AGENT_ATTEST_ATTEST_TEST_UTIL_H_
