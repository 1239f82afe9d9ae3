#include "shim/task_translate.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/guest_pull_mount.h"
#include "nlohmann/json.hpp"
#include "shim/proto/cgroups_metrics.pb.h"
#include "shim/proto/runtime_options.pb.h"

namespace cloak::shim {
namespace {

namespace agentpb = ::cloak::agent::v1;

// typeurl accepts the bare name and any "<prefix>/<name>" form.
bool TypeUrlIs(absl::string_view url, absl::string_view want) {
  if (url == want) return true;
  size_t slash = want.rfind('/');
  absl::string_view tail = slash == absl::string_view::npos ? want : want.substr(slash + 1);
  return absl::EndsWith(url, absl::StrCat("/", tail)) &&
         (absl::StartsWith(url, "types.containerd.io/") || absl::StartsWith(url, "type.googleapis.com/"));
}

absl::StatusOr<nlohmann::json> ParseObject(absl::string_view what, absl::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not a JSON object"));
  }
  return j;
}

}  // namespace

absl::StatusOr<std::string> ExecProcessJson(const google::protobuf::Any& spec) {
  if (!TypeUrlIs(spec.type_url(), kProcessSpecTypeUrl)) {
    return absl::InvalidArgumentError(absl::StrCat("exec spec has type \"", spec.type_url(),
                                                   "\", want ", kProcessSpecTypeUrl));
  }
  absl::StatusOr<nlohmann::json> process = ParseObject("exec spec (OCI process)", spec.value());
  if (!process.ok()) return process.status();
  auto args = process->find("args");
  if (args == process->end() || !args->is_array() || args->empty()) {
    return absl::InvalidArgumentError("exec spec: process.args is empty; give a command to run");
  }
  for (const auto& a : *args) {
    if (!a.is_string()) return absl::InvalidArgumentError("exec spec: process.args must be strings");
  }
  return spec.value();
}

absl::StatusOr<std::string> LinuxResourcesJson(const google::protobuf::Any& resources) {
  if (!TypeUrlIs(resources.type_url(), kLinuxResourcesTypeUrl)) {
    return absl::InvalidArgumentError(absl::StrCat("update resources have type \"",
                                                   resources.type_url(), "\", want ",
                                                   kLinuxResourcesTypeUrl));
  }
  absl::StatusOr<nlohmann::json> r = ParseObject("update resources (OCI LinuxResources)",
                                                 resources.value());
  if (!r.ok()) return r.status();
  return resources.value();
}

agentpb::Stdio AgentStdio(bool terminal, absl::string_view stdin_uri,
                          absl::string_view stdout_uri, absl::string_view stderr_uri) {
  agentpb::Stdio stdio;
  stdio.set_terminal(terminal);
  stdio.set_stdin(!stdin_uri.empty());
  stdio.set_stdout(!stdout_uri.empty());
  stdio.set_stderr(!terminal && !stderr_uri.empty());
  return stdio;
}

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(t);
  int64_t seconds = nanos / 1000000000;
  int64_t rem = nanos % 1000000000;
  if (rem < 0) {
    rem += 1000000000;
    --seconds;
  }
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>(rem));
  return ts;
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

uint32_t ExitStatusFromAgent(int32_t exit_status) {
  if (exit_status < 0 || exit_status > 255) return kLostExitStatus;
  return static_cast<uint32_t>(exit_status);
}

google::protobuf::Any MetricsAny(const agentpb::StatsContainerResponse& stats) {
  io::containerd::cgroups::v2::Metrics m;
  m.mutable_pids()->set_current(stats.pids_current());
  m.mutable_pids()->set_limit(stats.pids_limit());
  m.mutable_cpu()->set_usage_usec(stats.cpu_usage_usec());
  m.mutable_cpu()->set_user_usec(stats.cpu_user_usec());
  m.mutable_cpu()->set_system_usec(stats.cpu_system_usec());
  m.mutable_memory()->set_usage(stats.memory_usage_bytes());
  m.mutable_memory()->set_usage_limit(stats.memory_limit_bytes());
  m.mutable_memory()->set_anon(stats.memory_anon_bytes());
  m.mutable_memory()->set_file(stats.memory_file_bytes());
  m.mutable_memory_events()->set_oom(stats.oom_events());
  m.mutable_memory_events()->set_oom_kill(stats.oom_kill_events());
  google::protobuf::Any any;
  any.set_type_url(std::string(kCgroupsV2MetricsTypeUrl));
  m.SerializeToString(any.mutable_value());
  return any;
}

absl::StatusOr<std::string> ConfigPathFromOptions(const google::protobuf::Any& options) {
  if (options.type_url().empty() && options.value().empty()) return std::string();
  if (!TypeUrlIs(options.type_url(), kRuntimeOptionsTypeUrl) &&
      !absl::EndsWith(options.type_url(), "/runtimeoptions.v1.Options")) {
    return std::string();
  }
  runtimeoptions::v1::Options decoded;
  if (!decoded.ParseFromString(options.value())) {
    return absl::InvalidArgumentError("runtime options (runtimeoptions.v1.Options) do not decode");
  }
  return decoded.config_path();
}

GuestImage GuestImageReference(absl::string_view reference) {
  GuestImage out{std::string(reference), ""};
  size_t slash = reference.find('/');
  if (slash == absl::string_view::npos) return out;  // docker.io/library short name
  absl::string_view host = reference.substr(0, slash);
  absl::string_view rest = reference.substr(slash);
  absl::string_view port;
  absl::string_view name = host;
  if (absl::StartsWith(host, "[")) {
    size_t close = host.find(']');
    if (close == absl::string_view::npos) return out;
    name = host.substr(0, close + 1);
    port = host.substr(close + 1);
  } else if (size_t colon = host.find(':'); colon != absl::string_view::npos) {
    name = host.substr(0, colon);
    port = host.substr(colon);
  }
  if (name != "127.0.0.1" && name != "localhost" && name != "[::1]") return out;
  const std::string guest_host = absl::StrCat(kHostLoopbackFromGuest, port);
  out.reference = absl::StrCat(guest_host, rest);
  out.guest_loopback_registry = guest_host;
  return out;
}

std::string GuestPullImageFromRootfs(
    const google::protobuf::RepeatedPtrField<::containerd::types::Mount>& rootfs) {
  for (const ::containerd::types::Mount& m : rootfs) {
    for (const std::string& option : m.options()) {
      if (absl::StartsWith(option, kGuestPullImageOption)) {
        return option.substr(kGuestPullImageOption.size());
      }
    }
  }
  return "";
}

}  // namespace cloak::shim
