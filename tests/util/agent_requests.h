// Building blocks of agent API requests for tests that drive cloak-agent
// directly (tests/agent, tests/guest).
#ifndef CLOAK_TESTS_UTIL_AGENT_REQUESTS_H_
#define CLOAK_TESTS_UTIL_AGENT_REQUESTS_H_

#include <string>
#include <vector>

#include "cloak/agent/v1/agent.pb.h"

namespace cloak::testutil {

// A minimal OCI spec running `args` as root in `/`, PATH=/bin; the agent
// decides the real root, so `root_path` is only what the host would send.
std::string ContainerSpecJson(const std::vector<std::string>& args,
                              const std::string& root_path = "rootfs");

// Which streams the process gets; a terminal starts at 80x24.
agent::v1::Stdio AgentStdio(bool in, bool out, bool err, bool terminal = false);

}  // namespace cloak::testutil

#endif  // CLOAK_TESTS_UTIL_AGENT_REQUESTS_H_
