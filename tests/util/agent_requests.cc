#include "tests/util/agent_requests.h"

#include "nlohmann/json.hpp"

namespace cloak::testutil {

std::string ContainerSpecJson(const std::vector<std::string>& args, const std::string& root_path) {
  nlohmann::json spec = {{"ociVersion", "1.0.2"},
                         {"process",
                          {{"args", args},
                           {"env", {"PATH=/bin", "TERM=xterm"}},
                           {"cwd", "/"},
                           {"user", {{"uid", 0}, {"gid", 0}}}}},
                         {"hostname", "ctr"},
                         {"root", {{"path", root_path}}},
                         // containerd's defaults: what the built-in agent
                         // policy expects a spec to keep (docs/policy.md).
                         {"linux",
                          {{"maskedPaths",
                            {"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                             "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                             "/proc/scsi", "/sys/firmware"}},
                           {"readonlyPaths",
                            {"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                             "/proc/sysrq-trigger"}}}}};
  return spec.dump();
}

agent::v1::Stdio AgentStdio(bool in, bool out, bool err, bool terminal) {
  agent::v1::Stdio s;
  s.set_stdin(in);
  s.set_stdout(out);
  s.set_stderr(err);
  s.set_terminal(terminal);
  if (terminal) {
    s.set_width(80);
    s.set_height(24);
  }
  return s;
}

}  // namespace cloak::testutil
