// Agent requests as containerd sends them, for the policy tests: the OCI
// spec `ctr run` makes (containerd's default spec) and the one CRI makes for
// a pod's container, plus the policy of a two-container pod.
#ifndef CLOAK_TESTS_POLICY_SPECS_H_
#define CLOAK_TESTS_POLICY_SPECS_H_

#include <string>
#include <vector>

#include "cloak/agent/v1/agent.pb.h"
#include "nlohmann/json.hpp"

namespace cloak::policy_test {

inline constexpr char kSandboxId[] =
    "5e1f0c0ffee0000000000000000000000000000000000000000000000000abcd";
inline constexpr char kPodUid[] = "0b4f1c2e-3a5d-4e6f-8a9b-0c1d2e3f4a5b";

// containerd's default spec for `ctr run IMAGE ID ARGS...`.
nlohmann::json CtrSpec(const std::vector<std::string>& args);
// The spec CRI makes for container `name` of a pod (bind mounts of the
// pod's hosts/hostname/resolv.conf/shm, annotations, joined namespaces).
nlohmann::json CriSpec(const std::string& name, const std::vector<std::string>& args,
                       const std::vector<std::string>& env);
// The spec of the pod's sandbox (pause) container.
nlohmann::json CriSandboxSpec();

agent::v1::CreateContainerRequest Create(const std::string& id, const std::string& image,
                                         const nlohmann::json& spec, bool sandbox = false);
agent::v1::ExecProcessRequest Exec(const std::string& id, const std::string& exec_id,
                                   const std::vector<std::string>& argv,
                                   const std::vector<std::string>& env = {"PATH=/usr/bin:/bin"});

// A policy for pod "web": init container "setup" (must exit 0 first), app
// "app" (exec of its health probe allowed, logs readable), and "sidecar"
// (logs off).
const char* WebPodPolicy();

}  // namespace cloak::policy_test

#endif  // CLOAK_TESTS_POLICY_SPECS_H_
