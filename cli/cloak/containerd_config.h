// Merging Cloak's settings into a containerd configuration (version 2 TOML,
// containerd 1.6 and 1.7; version 3, containerd 2.x, where the same keys live
// under io.containerd.cri.v1.runtime and io.containerd.cri.v1.images) and
// taking them out again. Pure functions from
// file text to file text; `cloak containerd-config` is the shell around them.
//
// What is added (docs/kubernetes.md, docs/snapshotter.md):
//   [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<handler>]
//     runtime_type = "io.containerd.cloak.v2", pod_annotations = ["io.cloak.*"],
//     options.ConfigPath = "<shim_config_dir>/<handler>.toml",
//     and on 1.7+ snapshotter = "cloak";
//   [proxy_plugins.cloak] type = "snapshot", address = <snapshotter socket>;
//   plugins."io.containerd.grpc.v1.cri".containerd.disable_snapshot_annotations = false;
//   on 1.6 only: plugins."io.containerd.grpc.v1.cri".containerd.snapshotter = "cloak"
//   (1.6 has one snapshotter for every pod);
//   runtimes.runc (io.containerd.runc.v2) when runc is the default runtime and
//   the file does not list it: containerd drops its built-in runtimes map
//   once the file has one, and CRI would not load without its default.
//
// Values of keys that existed before and were changed are kept in one comment
// line of the output ("# cloak-containerd-config: {json}"), with the list of
// what was added, so Remove takes out exactly that and puts the old values
// back. Comments and layout of the original are not kept by a merge (the
// installer keeps a byte-for-byte backup for that).
#ifndef CLOAK_CLI_CLOAK_CONTAINERD_CONFIG_H_
#define CLOAK_CLI_CLOAK_CONTAINERD_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::cli {

inline constexpr char kCloakRuntimeType[] = "io.containerd.cloak.v2";
inline constexpr char kSnapshotterName[] = "cloak";
inline constexpr char kDefaultSnapshotterAddress[] = "/run/cloak-snapshotter/snapshotter.sock";
inline constexpr char kDefaultShimConfigDir[] = "/etc/cloak";
inline constexpr char kCriPlugin[] = "io.containerd.grpc.v1.cri";

struct ContainerdVersion {
  int major = 1;
  int minor = 6;
  friend bool operator==(const ContainerdVersion&, const ContainerdVersion&) = default;
  friend auto operator<=>(const ContainerdVersion&, const ContainerdVersion&) = default;
};

// "1.6", "1.7", "2.0"...: InvalidArgument otherwise.
absl::StatusOr<ContainerdVersion> ParseContainerdVersionFlag(absl::string_view text);
// The first "[v]MAJOR.MINOR[.PATCH...]" word of `containerd --version`, e.g.
// "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3".
absl::StatusOr<ContainerdVersion> ParseContainerdVersionOutput(absl::string_view output);

struct ContainerdConfigOptions {
  // RuntimeClass handler names; each must be "cloak-" followed by
  // [a-z0-9-] (they are also file names under shim_config_dir).
  std::vector<std::string> handlers = {"cloak-dev", "cloak-snp", "cloak-tdx"};
  // ConfigPath of a handler is <shim_config_dir>/<handler>.toml. Absolute.
  std::string shim_config_dir = kDefaultShimConfigDir;
  // Empty: no proxy snapshotter (containerd's own unpacks every image).
  std::string snapshotter_address = kDefaultSnapshotterAddress;
  ContainerdVersion version;
};

// The shim configuration file of one handler.
std::string HandlerConfigPath(const ContainerdConfigOptions& options, absl::string_view handler);

// Adds Cloak to `text` (empty text: containerd's defaults, written as
// version 2, or 3 for containerd 2.x). Idempotent: adding to its own output
// with the same options returns the same text. InvalidArgument for a file
// that is not TOML (the message names the line), version 1, a version the
// given containerd cannot read, bad options; FailedPrecondition when a runtime of the
// same name exists that is not Cloak's.
absl::StatusOr<std::string> AddCloakToContainerdConfig(absl::string_view text,
                                                       const ContainerdConfigOptions& options);

// Takes out what AddCloakToContainerdConfig recorded and restores the values
// it had changed. A text without the record is returned unchanged.
absl::StatusOr<std::string> RemoveCloakFromContainerdConfig(absl::string_view text);

}  // namespace cloak::cli

#endif  // CLOAK_CLI_CLOAK_CONTAINERD_CONFIG_H_
