// RunAgent: serving the agent API until shutdown. Everything that makes a
// guest a guest (mounts, modules, the console) is in init.h; RunAgent also
// runs as an ordinary process on a host, which is how the integration tests
// drive it.
#ifndef CLOAK_AGENT_AGENT_H_
#define CLOAK_AGENT_AGENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace cloak::agent {

struct AgentOptions {
  // Where to serve: "unix:///path", "vsock", "serial" or "auto" (vsock if an
  // AF_VSOCK socket can be made, else the virtio-serial port).
  std::string listen = "auto";
  uint32_t vsock_port = 1024;
  // Name of the virtio-serial port.
  std::string serial_port = "cloak.agent";
  // Agent state directory (bundles, sockets, sandbox files). Keep it short:
  // unix socket paths live below it.
  std::string run_dir = "/run/cloak";
  // crun binary (absolute, or looked up in PATH) and its state root
  // (default <run_dir>/crun).
  std::string crun = "crun";
  std::string crun_root;
  // "auto" (when / is an initramfs), "true" or "false".
  std::string no_pivot = "auto";
  std::string cgroup_root = "/sys/fs/cgroup";
  // Static busybox for the pause container (and the busybox provider).
  std::string busybox = "/bin/busybox";
  // How container rootfs are made: "image" (pull inside the guest) or
  // "busybox" (tests: every container is a busybox rootfs).
  std::string rootfs_provider = "image";
  // Registries ("host:port") the image puller may reach over plain HTTP.
  std::vector<std::string> insecure_registries;
  // Image layers downloaded in parallel (class default; the pod's init-data
  // [data.agent] may override it).
  int max_concurrent_downloads = 3;
  // "enforce" (the pod's measured policy, else the built-in default) or
  // "allow-all" (no policy: the runtime class opted out; docs/policy.md).
  std::string policy = "enforce";
  // PID 1 of a guest: set the hostname, power off on request.
  bool guest = false;
  // The runtime class's TEE as the measured command line names it
  // (cloak.tee): "none" is the dev class, the only one allowed plain http
  // to a key broker or registry on the host; anything else, or empty, is
  // treated as a TEE class (docs/attestation.md).
  std::string tee_class;
};

// Serves until SIGTERM/SIGINT, or DestroySandbox with power_off (a guest
// then powers off and this does not return).
absl::Status RunAgent(const AgentOptions& options);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_AGENT_H_
