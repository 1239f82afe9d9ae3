// Building the OCI runtime config the agent hands to crun. The host's spec is
// hostile input: only the process (args, env, cwd, user, terminal, rlimits,
// noNewPrivileges), the hostname, annotations (less those crun interprets,
// unless the policy allowed them) and linux.resources are taken from it,
// each checked; the agent decides root, mounts, namespaces,
// devices, capabilities, masked and read-only paths. Pure functions.
#ifndef CLOAK_AGENT_SPEC_BUILDER_H_
#define CLOAK_AGENT_SPEC_BUILDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cloak::agent {

// Largest spec / process / resources JSON accepted from the host.
inline constexpr size_t kMaxSpecBytes = 1 << 20;

struct SpecOptions {
  // Absolute path of the rootfs the agent prepared.
  std::string rootfs_dir;
  // cgroupsPath, e.g. "/cloak/<id>".
  std::string cgroups_path;
  // When not empty, bind-mounted read-only at /etc/resolv.conf.
  std::string resolv_conf_path;
  // Terminal wiring decided by the Stdio message, not by the spec.
  bool terminal = false;
  uint32_t console_width = 0;
  uint32_t console_height = 0;
  // Allow an empty process.args (the image config fills it in later).
  bool allow_empty_args = false;
  // Keep annotations crun interprets (run.oci.*, module.wasm.image/*,
  // org.criu.*). Only when the policy engine has checked them against the
  // measured policy, which allows them one by one (docs/policy.md);
  // otherwise they are dropped.
  bool keep_runtime_annotations = false;
};

// The capabilities every container process gets (containerd's default set).
const std::vector<std::string>& DefaultCapabilities();
// runc's default masked and read-only paths.
const std::vector<std::string>& DefaultMaskedPaths();
const std::vector<std::string>& DefaultReadonlyPaths();

// Builds the config.json for a container from the host's spec JSON.
// InvalidArgument naming the offending field on bad input.
absl::StatusOr<nlohmann::json> BuildContainerSpec(absl::string_view host_spec_json,
                                                  const SpecOptions& options);

// Sanitises an OCI process object (the init process of a spec, or an exec's
// process.json): keeps args, env, cwd, user, rlimits, noNewPrivileges; sets
// terminal/consoleSize from `options` and capabilities to the default set;
// drops everything else.
absl::StatusOr<nlohmann::json> SanitizeProcess(const nlohmann::json& process,
                                               const SpecOptions& options);

// Keeps the allowlisted parts of an OCI LinuxResources object (memory, cpu,
// pids, blockIO, hugepageLimits), type-checked; drops devices, unified,
// network and rdma.
absl::StatusOr<nlohmann::json> SanitizeResources(const nlohmann::json& resources);

// Parses JSON without exceptions; InvalidArgument naming `what` on error or
// when larger than kMaxSpecBytes.
absl::StatusOr<nlohmann::json> ParseJson(absl::string_view what, absl::string_view text);

// Serialises without throwing (invalid UTF-8 is replaced).
std::string DumpJson(const nlohmann::json& j);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_SPEC_BUILDER_H_
