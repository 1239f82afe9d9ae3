// Effects of host configuration keys that are not part of the VM itself
// (those are in BuildVmConfig, shim/sandbox_factory.h): the shim's own log
// level and the key broker a pod without init-data attests to. Pure
// functions, except PodInitData, which reads kbs.ca_file.
#ifndef CLOAK_SHIM_HOST_CONFIG_H_
#define CLOAK_SHIM_HOST_CONFIG_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shim/config/config.h"
#include "shim/initdata.h"

namespace cloak::shim {

// runtime.log_level, made at least "debug" when containerd passed -debug
// (containerd runs with debug logging). Pure.
std::string ShimLogLevel(absl::string_view configured, bool debug);

// The init-data document of a pod that brings none, from [kbs]: empty when
// kbs.url is empty, else
//
//   version = "0.1.0"
//   algorithm = "sha384"
//   [data]
//   kbs_url = "<kbs.url>"
//   kbs_cert = '''<the PEM of kbs.ca_file>'''    (only with kbs.ca_file)
//
// It is bound into the launch like a pod's own init-data (SNP HOST_DATA,
// TDX MRCONFIGID, sample evidence), so the host's KBS default stays inside
// the measurement (docs/shim.md). InvalidArgument when `ca_pem` holds no
// PEM certificate or either value cannot be put in a TOML literal string.
// Pure.
absl::StatusOr<std::string> DefaultInitDataDocument(const config::KbsConfig& kbs,
                                                    absl::string_view ca_pem);

// The pod's init-data: its annotation (shim/initdata.h) when present, which
// replaces the [kbs] default whole (its digest is what the pod's key broker
// policy names); else DefaultInitDataDocument with kbs.ca_file read from
// the host; else none. Errors name the annotation or kbs.ca_file.
absl::StatusOr<std::optional<InitData>> PodInitData(
    const config::Config& config, const std::map<std::string, std::string>& annotations);

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_HOST_CONFIG_H_
