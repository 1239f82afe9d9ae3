// Debian's docker-registry on the host's loopback, for integration and e2e
// tests: storage and log under a directory the test owns.
#ifndef CLOAK_TESTS_UTIL_REGISTRY_H_
#define CLOAK_TESTS_UTIL_REGISTRY_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/process.h"

namespace cloak::testutil {

// Starts `docker-registry serve` on `address`:`port` (an address of this
// machine: loopback, or a bridge made for the test) with its storage in
// `dir`/registry and its output in `dir`/registry.log. The Subprocess stops
// it when destroyed.
absl::StatusOr<Subprocess> StartLocalRegistry(const std::string& dir, int port,
                                              const std::string& address = "127.0.0.1");

}  // namespace cloak::testutil

#endif  // CLOAK_TESTS_UTIL_REGISTRY_H_
