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
                         {"root", {{"path", root_path}}}};
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
