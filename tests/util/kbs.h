// cloak-kbs for the dev (sample / simulated SNP) e2e tests: served on the
// host's loopback over plain HTTP, where a QEMU user-network guest reaches
// it at 10.0.2.2; and the init-data a pod needs to use it.
#ifndef CLOAK_TESTS_UTIL_KBS_H_
#define CLOAK_TESTS_UTIL_KBS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/process.h"

namespace cloak::testutil {

struct DevKbs {
  Subprocess process;  // stopped when destroyed
  std::string port;
};

// Starts `kbs_binary serve` with its state in `state_dir`, on 127.0.0.1 at a
// free port, plus `extra_args`; output in `dir`/kbs.log. Waits for the port.
absl::StatusOr<DevKbs> StartDevKbs(const std::string& kbs_binary, const std::string& state_dir,
                                   const std::string& dir,
                                   const std::vector<std::string>& extra_args = {});

// The SHA-384 of `document`, hex: the init_data_digests value of a
// key-release policy for sample evidence of an init-data with algorithm
// sha384.
std::string Sha384Hex(const std::string& document);

struct DevInitData {
  std::string document;    // TOML, algorithm sha384
  std::string sha384_hex;  // its digest, as a key-release policy names it
};
// Init-data pointing the guest at the KBS on `port` (as 10.0.2.2) for the
// image key resource `resource`.
// `extra_data`: more [data] lines (e.g. a "policy.json" for the agent).
DevInitData DevInitDataFor(const std::string& port, const std::string& resource,
                           const std::string& extra_data = "");

}  // namespace cloak::testutil

#endif  // CLOAK_TESTS_UTIL_KBS_H_
