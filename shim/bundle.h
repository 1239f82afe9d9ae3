// The bundle and the pod: what the shim learns from containerd's bundle
// directory (docs/shim.md: "Contract: start",
// "Contract: bundle") and where its ttrpc socket lives. Pure
// functions, except the small file helpers at the end.
#ifndef CLOAK_SHIM_BUNDLE_H_
#define CLOAK_SHIM_BUNDLE_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shim/vm_sizing.h"

namespace cloak::shim {

// CRI annotations (docs/shim.md, "Contract: start").
inline constexpr absl::string_view kCriContainerType = "io.kubernetes.cri.container-type";
inline constexpr absl::string_view kCriSandboxId = "io.kubernetes.cri.sandbox-id";
inline constexpr absl::string_view kCriImageName = "io.kubernetes.cri.image-name";
inline constexpr absl::string_view kCriSandboxName = "io.kubernetes.cri.sandbox-name";
// With ctr: the image the guest pulls.
inline constexpr absl::string_view kCloakImage = "io.cloak.image";

// Where containerd's shims put their sockets (defaults.DefaultStateDir + "/s").
inline constexpr absl::string_view kDefaultSocketDir = "/run/containerd/s";
// The Go shim library refuses longer socket paths.
inline constexpr size_t kMaxSocketPathLength = 106;

// Go's filepath.Clean (lexical: "//" → "/", "." dropped, ".." resolved).
std::string CleanPath(absl::string_view path);

// The shim socket path for a grouping id: <socket_dir>/<hex sha256 of
// filepath.Join(containerd_address, namespace, group_id)>.
std::string SocketPath(absl::string_view containerd_address, absl::string_view namespace_name,
                       absl::string_view group_id,
                       absl::string_view socket_dir = kDefaultSocketDir);
// "unix://" + SocketPath(...).
std::string SocketAddress(absl::string_view containerd_address, absl::string_view namespace_name,
                          absl::string_view group_id,
                          absl::string_view socket_dir = kDefaultSocketDir);
// The path of a "unix://" address (or the address itself without scheme).
std::string SocketPathFromAddress(absl::string_view address);

// A container's place in its pod.
struct PodInfo {
  // True for a pod's sandbox container, and for a container without CRI
  // annotations (plain ctr), which is its own sandbox.
  bool is_sandbox = true;
  // The pod's sandbox id: the container's own id when is_sandbox.
  std::string sandbox_id;
  // Image the guest pulls: io.kubernetes.cri.image-name under CRI, else
  // io.cloak.image; empty if neither.
  std::string image;
  // All annotations of the spec.
  std::map<std::string, std::string> annotations;
  // linux.namespaces: the path of the network namespace to join (CRI with
  // CNI: /var/run/netns/cni-…); empty for the host's network or a new,
  // empty one.
  std::string netns_path;
  // Host file bind-mounted at /etc/resolv.conf (CRI adds the pod's
  // resolv.conf to the sandbox spec for VM runtimes); empty if none.
  std::string resolv_conf_source;
  // Sandboxes only: the pod's memory and CPU limits, which size the VM.
  PodResources resources;
};

// Reads the annotations of an OCI spec (config.json text) and classifies
// the container. InvalidArgument for malformed JSON or an app container
// (container-type "container") without a sandbox id.
absl::StatusOr<PodInfo> ParsePodInfo(absl::string_view config_json, absl::string_view id);

// Reads <bundle>/config.json and calls ParsePodInfo.
absl::StatusOr<PodInfo> ReadPodInfo(absl::string_view bundle, absl::string_view id);

// The binary containerd.task.v2.DeleteResponse `delete` prints.
std::string EncodeDeleteResponse(uint32_t pid, uint32_t exit_status, absl::Time exited_at);

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_BUNDLE_H_
