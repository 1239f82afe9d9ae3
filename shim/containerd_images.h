// What image a container was made from, asked of containerd itself: the
// Containers service gives the container's image name, the Images service
// the digest that name points at (containerd's gRPC socket, the shim's
// -address; namespace from -namespace). This is how a plain
// `ctr run --runtime io.containerd.cloak.v2 IMAGE ID` reaches the guest:
// the guest pulls IMAGE pinned to the digest containerd resolved, and the
// rootfs containerd unpacked on the host is never used (docs/shim.md).
#ifndef CLOAK_SHIM_CONTAINERD_IMAGES_H_
#define CLOAK_SHIM_CONTAINERD_IMAGES_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cloak::shim {

// gRPC metadata key naming the containerd namespace of a request.
inline constexpr absl::string_view kContainerdNamespaceHeader = "containerd-namespace";
inline constexpr absl::Duration kContainerdLookupTimeout = absl::Seconds(10);
// Annotation and label on a sandbox whose agent enforces no policy.
inline constexpr absl::string_view kAgentPolicyAnnotation = "io.cloak.agent-policy";
inline constexpr absl::string_view kAgentPolicyAllowAll = "allow-all";

struct ContainerImage {
  std::string name;    // containerd's image name, "docker.io/library/busybox:latest"
  std::string digest;  // the image's target (manifest or index), "sha256:<hex>"
};

// Finds the image of container `container_id`. NotFound when the container
// has no image (made with --rootfs) or the image is gone; Unavailable when
// containerd does not answer. Messages name the socket, namespace and ids.
using ContainerImageLookup =
    std::function<absl::StatusOr<ContainerImage>(const std::string& container_id)>;

// A ContainerImageLookup over containerd's gRPC socket `address` in
// namespace `namespace_name`.
ContainerImageLookup ContainerdImageLookup(std::string address, std::string namespace_name,
                                           absl::Duration timeout = kContainerdLookupTimeout);

// Sets annotation and label `key`=`value` on container `container_id`'s
// record in containerd (its stored OCI spec and its labels). containerd's
// CRI plugin shows a sandbox's stored spec in `crictl inspectp` (info.
// runtimeSpec.annotations) and `ctr container info` shows both, so this is
// how a fact about a running pod reaches the tools an operator reads.
using ContainerAnnotator = std::function<absl::Status(
    const std::string& container_id, const std::string& key, const std::string& value)>;

// A ContainerAnnotator over containerd's gRPC socket `address` in namespace
// `namespace_name`.
ContainerAnnotator ContainerdAnnotator(std::string address, std::string namespace_name,
                                       absl::Duration timeout = kContainerdLookupTimeout);

// `spec_json` (an OCI runtime spec) with annotations[key] = value. Pure.
// InvalidArgument when the spec is not a JSON object.
absl::StatusOr<std::string> SpecWithAnnotation(absl::string_view spec_json, absl::string_view key,
                                               absl::string_view value);

// `name` pinned to `digest`: "name@digest". A name that already carries a
// digest must carry this one. InvalidArgument for a digest that is not
// "sha256:<64 lower-case hex>" or a name pinned to another digest. Pure.
absl::StatusOr<std::string> PinnedImageReference(absl::string_view name, absl::string_view digest);

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_CONTAINERD_IMAGES_H_
