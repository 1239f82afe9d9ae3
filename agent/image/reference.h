// Image references: `[registry[:port]/]repository[:tag][@sha256:<hex>]`,
// normalised the way Docker and containerd do (docker.io, library/, latest).
#ifndef CLOAK_AGENT_IMAGE_REFERENCE_H_
#define CLOAK_AGENT_IMAGE_REFERENCE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::agent::image {

inline constexpr char kDockerHubDomain[] = "docker.io";
inline constexpr char kDockerHubRegistryHost[] = "registry-1.docker.io";

struct Reference {
  // Registry as written (or "docker.io"), e.g. "127.0.0.1:5000", "quay.io".
  std::string registry;
  // Repository path, e.g. "library/busybox", "cloak/test".
  std::string repository;
  // Tag; "latest" when neither a tag nor a digest was given.
  std::string tag;
  // "sha256:<64 hex>" or empty.
  std::string digest;

  // Host[:port] to contact: registry-1.docker.io for docker.io.
  std::string RegistryHost() const;
  // What goes after /manifests/: the digest if any, else the tag.
  std::string ManifestReference() const;
  // Fully qualified form, e.g. "docker.io/library/busybox:latest".
  std::string String() const;
};

// Parses and normalises `text`. InvalidArgument, naming the reference and
// the offending part, for anything the distribution spec does not allow.
// Pure.
absl::StatusOr<Reference> ParseReference(absl::string_view text);

// True for "sha256:" followed by exactly 64 lowercase hex digits — the only
// digest algorithm accepted (it also makes digests safe in URLs and paths).
bool IsValidSha256Digest(absl::string_view digest);

}  // namespace cloak::agent::image

#endif  // CLOAK_AGENT_IMAGE_REFERENCE_H_
