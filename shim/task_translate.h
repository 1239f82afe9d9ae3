// Translation between containerd's Task API types and the agent API: pure
// functions from values to values (unit-tested with tables).
#ifndef CLOAK_SHIM_TASK_TRANSLATE_H_
#define CLOAK_SHIM_TASK_TRANSLATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cloak/agent/v1/agent.pb.h"
#include "containerd/types/mount.pb.h"
#include "containerd/types/task_types.pb.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace cloak::shim {

// Type URLs (containerd runtime/typeurl.go; cgroups stats registration).
inline constexpr absl::string_view kProcessSpecTypeUrl =
    "types.containerd.io/opencontainers/runtime-spec/1/Process";
inline constexpr absl::string_view kLinuxResourcesTypeUrl =
    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
inline constexpr absl::string_view kCgroupsV2MetricsTypeUrl = "io.containerd.cgroups.v2.Metrics";
inline constexpr absl::string_view kRuntimeOptionsTypeUrl = "runtimeoptions.v1.Options";

// Exit status reported for a process whose VM or agent vanished.
inline constexpr uint32_t kLostExitStatus = 255;
// Exit status a process that failed to start reports to Wait (crun's and
// runc's status for a failed exec).
inline constexpr uint32_t kStartFailedExitStatus = 255;
// What `delete` reports after a dead shim (128 + SIGKILL), as runc and kata.
inline constexpr uint32_t kKilledExitStatus = 137;

// The OCI Process JSON of an ExecProcessRequest.spec Any. InvalidArgument
// for another type, malformed JSON, or a process without args.
absl::StatusOr<std::string> ExecProcessJson(const google::protobuf::Any& spec);

// The OCI LinuxResources JSON of an UpdateTaskRequest.resources Any.
absl::StatusOr<std::string> LinuxResourcesJson(const google::protobuf::Any& resources);

// The agent's Stdio for a process: a stream is wired when its URI is set;
// stderr is dropped with a terminal (the pty merges it).
cloak::agent::v1::Stdio AgentStdio(bool terminal, absl::string_view stdin_uri,
                                   absl::string_view stdout_uri, absl::string_view stderr_uri);

google::protobuf::Timestamp ToTimestamp(absl::Time t);
absl::Time FromTimestamp(const google::protobuf::Timestamp& ts);

// A guest exit status as containerd's uint32 (negative values become 255).
uint32_t ExitStatusFromAgent(int32_t exit_status);

// Agent StatsContainer → io.containerd.cgroups.v2.Metrics packed in an Any
// with type_url kCgroupsV2MetricsTypeUrl.
google::protobuf::Any MetricsAny(const cloak::agent::v1::StatsContainerResponse& stats);

// The config path in containerd's runtime options Any (start's stdin,
// CreateTaskRequest.options): runtimeoptions.v1.Options.config_path. "" for
// no options or options of another type (e.g. runc's); InvalidArgument for a
// runtimeoptions Any that does not decode.
absl::StatusOr<std::string> ConfigPathFromOptions(const google::protobuf::Any& options);

// An image reference as the guest must use it. QEMU's user network lets the
// guest reach the host's loopback at 10.0.2.2, so a registry on
// 127.0.0.1 / localhost / [::1] (with or without port) is rewritten to
// 10.0.2.2; such a registry is also reported in `guest_loopback_registry`
// ("10.0.2.2:5000") so the guest may use it over plain HTTP.
struct GuestImage {
  std::string reference;
  std::string guest_loopback_registry;  // empty unless rewritten
};
GuestImage GuestImageReference(absl::string_view reference);

// The image named by cloak-snapshotter's guest-pull rootfs (a mount with
// the option "cloak.image=<ref>", common/guest_pull_mount.h): such a rootfs
// is an empty directory, the image exists only for the guest to pull. ""
// when the rootfs is ordinary host layers (or absent). Cloak never mounts
// the rootfs either way.
std::string GuestPullImageFromRootfs(
    const google::protobuf::RepeatedPtrField<::containerd::types::Mount>& rootfs);

// Where the guest reaches the host's loopback through QEMU user networking.
inline constexpr absl::string_view kHostLoopbackFromGuest = "10.0.2.2";
// MAC address QEMU gives the first NIC when none is set.
inline constexpr absl::string_view kQemuUserNetMac = "52:54:00:12:34:56";

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_TASK_TRANSLATE_H_
