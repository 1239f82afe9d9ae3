// Effects of host configuration keys that are not part of the VM itself
// (those are in BuildVmConfig, shim/sandbox_factory.h): the shim's own log
// level and the key broker a pod without init-data attests to. Pure
// functions, except PodInitData, which reads kbs.ca_file.
#ifndef CLOAK_SHIM_HOST_CONFIG_H_
#define CLOAK_SHIM_HOST_CONFIG_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shim/config/config.h"
#include "shim/initdata.h"

namespace cloak::shim {

// runtime.log_level, made at least "debug" when containerd passed -debug
// (containerd runs with debug logging). Pure.
std::string ShimLogLevel(absl::string_view configured, bool debug);

// The agent's per-pod settings. They used to be kernel parameters
// (cloak.log, cloak.max_downloads, cloak.insecure_registries) and made the
// launch measurement vary per pod; now they are the [data.agent] table of
// the init-data, measured through SNP HOST_DATA / TDX MRCONFIGID
// (docs/measurement.md, "One value per runtime class").
struct GuestAgentSettings {
  std::string log_level = "info";                // agent.log_level (pod-overridable)
  int64_t max_downloads = 3;                     // image.max_concurrent_downloads
  std::vector<std::string> insecure_registries;  // guest names (GuestInsecureRegistries)

  friend bool operator==(const GuestAgentSettings&, const GuestAgentSettings&) = default;
};

// The settings of a pod from its (annotation-applied) config and the
// guest's view of its insecure registries. Pure.
GuestAgentSettings GuestAgentSettingsFor(const config::Config& config,
                                         std::vector<std::string> insecure_registries);

// The [data.agent] table:
//
//   [data.agent]
//   log_level = "info"
//   max_downloads = 3
//   insecure_registries = ["10.0.2.2:5000"]
//
// InvalidArgument for a value that cannot be a TOML basic string. Pure.
absl::StatusOr<std::string> AgentSettingsTable(const GuestAgentSettings& settings);

// The init-data document of a pod that brings none:
//
//   version = "0.1.0"
//   algorithm = "sha384"
//   [data]
//   kbs_url = '<kbs.url>'                         (only with kbs.url)
//   kbs_cert = '''<the PEM of kbs.ca_file>'''    (only with kbs.url and kbs.ca_file)
//   [data.agent] ...                              (AgentSettingsTable)
//
// It is bound into the launch like a pod's own init-data (SNP HOST_DATA,
// TDX MRCONFIGID, sample evidence), so the host's KBS default and the
// agent's settings stay inside what is measured (docs/shim.md).
// InvalidArgument when `ca_pem` holds no PEM certificate or a value cannot
// be put in a TOML string. Pure.
absl::StatusOr<std::string> DefaultInitDataDocument(const config::KbsConfig& kbs,
                                                    absl::string_view ca_pem,
                                                    const GuestAgentSettings& agent = {});

// The pod's init-data: its annotation (shim/initdata.h) when present, which
// replaces the default whole (its digest is what the pod's key broker
// policy names; the pod's author sets [data.agent] in it); else
// DefaultInitDataDocument with kbs.ca_file read from the host and `agent`.
// Errors name the annotation or kbs.ca_file.
absl::StatusOr<std::optional<InitData>> PodInitData(
    const config::Config& config, const std::map<std::string, std::string>& annotations,
    const GuestAgentSettings& agent = {});

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_HOST_CONFIG_H_
