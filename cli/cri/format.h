// cloak-cri's output, as crictl (v1.26) prints the same answers
// (docs/cri.md, "cloak-cri and crictl"): ps and pods tables with IDs cut to
// 13 characters, ages like "2 minutes ago", JSON in protobuf's lowerCamel
// names with every field shown, inspect's {"status": ..., <info>...}.
// Values to values; the clock is a parameter.
#ifndef CLOAK_CLI_CRI_FORMAT_H_
#define CLOAK_CLI_CRI_FORMAT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "k8s/cri/v1/api.pb.h"

namespace cloak::cri {

// crictl's cut ID length.
inline constexpr size_t kTruncatedIdLength = 13;

// `id` without `prefix` (e.g. "sha256:"), cut to 13 characters.
std::string TruncateId(absl::string_view id, absl::string_view prefix = "");

// docker/go-units' HumanDuration, which crictl prints in CREATED:
// "Less than a second", "1 second", "42 seconds", "About a minute",
// "5 minutes", "About an hour", "3 hours", "4 days", "2 weeks", ...
std::string HumanDuration(absl::Duration d);

// Go's text/tabwriter as crictl sets it up (min width 20, padding 3, spaces):
// every cell but a row's last is padded to its column's width.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// "Created", "Running", "Exited", "Unknown"; "Ready", "NotReady".
std::string ContainerStateText(runtime::v1::ContainerState state);
std::string PodStateText(runtime::v1::PodSandboxState state);

// `crictl ps`: CONTAINER IMAGE CREATED STATE NAME ATTEMPT POD ID POD.
std::string ContainersTable(const std::vector<runtime::v1::Container>& containers,
                            absl::Time now, bool no_trunc);
// `crictl pods`: POD ID CREATED STATE NAME NAMESPACE ATTEMPT RUNTIME.
std::string PodsTable(const std::vector<runtime::v1::PodSandbox>& pods, absl::Time now,
                      bool no_trunc);

// A message as crictl's JSON: protobuf JSON with lowerCamel names and every
// field shown, two-space indent, fields in proto order.
std::string MessageJson(const google::protobuf::Message& msg);

// `crictl inspect` / `inspectp`: {"status": <status>, then each info key
// (sorted) with its value as JSON where it parses (keys in the runtime's
// order), else as a string}. In status, the fields stay in proto order,
// nested objects have their keys sorted, and createdAt / startedAt /
// finishedAt are RFC 3339 times (Rfc3339Nano).
std::string StatusJson(const google::protobuf::Message& status,
                       const std::map<std::string, std::string>& info);

// Go's time.RFC3339Nano in UTC ("2026-12-07T17:34:00.495713696Z", trailing
// zeros of the fraction dropped); 0 is Go's zero time, 0001-01-01T00:00:00Z.
std::string Rfc3339Nano(int64_t unix_nanos);

// crictl's error for an exec whose command exited non-zero (crictl 1.26
// then exits 1): for ExecSync "command 'sh -c exit 7' exited with 7: <stderr>",
// for a streamed exec "command terminated with exit code 4".
std::string ExecSyncExitMessage(const std::vector<std::string>& cmd, int exit_code,
                                absl::string_view stderr_text);
std::string ExecStreamExitMessage(int exit_code);

}  // namespace cloak::cri

#endif  // CLOAK_CLI_CRI_FORMAT_H_
