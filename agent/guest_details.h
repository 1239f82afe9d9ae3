// What the guest is: kernel, TEE, memory, vCPUs.
#ifndef CLOAK_AGENT_GUEST_DETAILS_H_
#define CLOAK_AGENT_GUEST_DETAILS_H_

#include <string>

namespace cloak::agent {

// The agent's version: the build's VersionString() (common/version.h).
const char* AgentVersion();

// "snp" if /dev/sev-guest exists or configfs-tsm reports provider sev_guest,
// "tdx" for /dev/tdx_guest or provider tdx_guest, else "none". `root`
// prefixes every path (tests).
std::string DetectTee(const std::string& root = "");

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_GUEST_DETAILS_H_
