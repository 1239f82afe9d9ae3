// OCI / Docker v2 manifests and indexes: media types, descriptors, parsing
// (non-throwing) and platform selection. Pure.
#ifndef CLOAK_AGENT_IMAGE_MANIFEST_H_
#define CLOAK_AGENT_IMAGE_MANIFEST_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloak::agent::image {

inline constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kOciConfig[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerConfig[] = "application/vnd.docker.container.image.v1+json";

// The Accept header sent when resolving a reference.
std::string ManifestAcceptHeader();

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
};

struct Descriptor {
  std::string media_type;
  std::string digest;  // validated sha256:<hex>
  int64_t size = 0;
  Platform platform;  // index entries only; empty otherwise
  std::map<std::string, std::string> annotations;
};

struct ImageIndex {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

struct ImageManifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
};

enum class ManifestKind { kIndex, kManifest };

// Decides whether `body` is an index/manifest list or an image manifest,
// from its mediaType field, else the Content-Type, else its shape.
// InvalidArgument for bad JSON; Unimplemented for Docker schema 1.
absl::StatusOr<ManifestKind> ClassifyManifest(absl::string_view body,
                                              absl::string_view content_type);

// Parse and validate (digests are sha256:<hex>, sizes non-negative, media
// types known). `what` names the object in errors (e.g. "manifest sha256:..").
absl::StatusOr<ImageIndex> ParseImageIndex(absl::string_view body, absl::string_view what);
absl::StatusOr<ImageManifest> ParseImageManifest(absl::string_view body, absl::string_view what);

// The entry of `index` for os/architecture (variant ignored unless given).
// NotFound listing the platforms the index offers.
absl::StatusOr<Descriptor> SelectPlatform(const ImageIndex& index, absl::string_view os,
                                          absl::string_view architecture,
                                          absl::string_view variant = "");

enum class Compression { kNone, kGzip, kZstd };

struct LayerType {
  Compression compression = Compression::kNone;
  bool encrypted = false;  // ocicrypt "+encrypted"
};

// Classifies a layer media type (OCI tar/+gzip/+zstd, non-distributable
// variants, Docker rootfs.diff and foreign layers, each optionally
// +encrypted). InvalidArgument naming the type for anything else.
absl::StatusOr<LayerType> ClassifyLayerMediaType(absl::string_view media_type);

}  // namespace cloak::agent::image

#endif  // CLOAK_AGENT_IMAGE_MANIFEST_H_
