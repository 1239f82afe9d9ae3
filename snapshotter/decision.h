// Which layers the host never unpacks (pure; docs/snapshotter.md).
//
// containerd's unpacker asks the snapshotter to Prepare each layer of an
// image (docs/snapshotter.md). A layer the guest pulls itself is recorded as a
// committed snapshot with no content and Prepare answers AlreadyExists, so
// containerd fetches and applies nothing.
#ifndef CLOAK_SNAPSHOTTER_DECISION_H_
#define CLOAK_SNAPSHOTTER_DECISION_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "snapshotter/snapshot.h"

namespace cloak::snapshotter {

enum class GuestPullMode {
  // Layers whose media type ends in "+encrypted", and every layer above one
  // (containerd 1.6: one snapshotter serves runc pods too).
  kEncrypted,
  // Every layer of every image pulled through CRI (containerd >= 1.7, where
  // the snapshotter is bound to the cloak runtime handlers only).
  kAll,
};

absl::StatusOr<GuestPullMode> ParseGuestPullMode(absl::string_view text);  // "encrypted" | "all"

struct ManifestLayer {
  std::string media_type;
  std::string digest;
};

// The layers of an OCI or Docker schema 2 image manifest. InvalidArgument
// for anything else (an index, bad JSON, a layer without digest).
absl::StatusOr<std::vector<ManifestLayer>> ParseManifestLayers(absl::string_view json);

bool IsEncryptedMediaType(absl::string_view media_type);

// What is known when a snapshot is created.
struct LayerFacts {
  // The request's labels (containerd.io/snapshot.ref marks a layer unpack;
  // the cri.* labels name the image, its manifest and the layer).
  Labels labels;
  // The parent snapshot's content is guest-only (so is every child's).
  bool parent_guest_pull = false;
  std::string parent_image;
  // The manifest's layers, when looked up (NeedsManifest).
  std::optional<std::vector<ManifestLayer>> manifest;
};

struct Decision {
  bool guest_pull = false;
  std::string image;   // the image reference the guest pulls (guest_pull)
  std::string reason;  // for the log
};

// Whether Decide needs the manifest named by kLabelManifestDigest.
bool NeedsManifest(GuestPullMode mode, const LayerFacts& facts);

// The decision for one new snapshot. FailedPrecondition when the manifest
// was needed but is missing, or does not list the layer.
absl::StatusOr<Decision> Decide(GuestPullMode mode, const LayerFacts& facts);

}  // namespace cloak::snapshotter

#endif  // CLOAK_SNAPSHOTTER_DECISION_H_
