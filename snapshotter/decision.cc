#include "snapshotter/decision.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace cloak::snapshotter {
namespace {

std::string Get(const Labels& labels, absl::string_view key) {
  auto it = labels.find(std::string(key));
  return it == labels.end() ? std::string() : it->second;
}

}  // namespace

absl::StatusOr<GuestPullMode> ParseGuestPullMode(absl::string_view text) {
  if (text == "encrypted") return GuestPullMode::kEncrypted;
  if (text == "all") return GuestPullMode::kAll;
  return absl::InvalidArgumentError(
      absl::StrCat("guest-pull mode \"", text, "\": expected \"encrypted\" or \"all\""));
}

absl::StatusOr<std::vector<ManifestLayer>> ParseManifestLayers(absl::string_view text) {
  using json = nlohmann::json;
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("manifest is not a JSON object");
  }
  auto layers = doc.find("layers");
  if (layers == doc.end() || !layers->is_array()) {
    auto mt = doc.find("mediaType");
    return absl::InvalidArgumentError(absl::StrCat(
        "not an image manifest (no layers",
        mt != doc.end() && mt->is_string() ? absl::StrCat("; media type ", mt->get<std::string>())
                                           : std::string(),
        ")"));
  }
  std::vector<ManifestLayer> out;
  for (const json& l : *layers) {
    if (!l.is_object()) return absl::InvalidArgumentError("manifest layer is not an object");
    auto mt = l.find("mediaType");
    auto dg = l.find("digest");
    if (mt == l.end() || !mt->is_string() || dg == l.end() || !dg->is_string() ||
        !absl::StrContains(dg->get<std::string>(), ':')) {
      return absl::InvalidArgumentError(
          absl::StrCat("manifest layer without a media type or digest: ", l.dump()));
    }
    out.push_back({mt->get<std::string>(), dg->get<std::string>()});
  }
  return out;
}

bool IsEncryptedMediaType(absl::string_view media_type) {
  return absl::EndsWith(media_type, "+encrypted");
}

bool NeedsManifest(GuestPullMode mode, const LayerFacts& facts) {
  return mode == GuestPullMode::kEncrypted && !facts.parent_guest_pull &&
         facts.labels.count(std::string(kLabelTargetRef)) != 0 &&
         !Get(facts.labels, kLabelLayerDigest).empty();
}

absl::StatusOr<Decision> Decide(GuestPullMode mode, const LayerFacts& facts) {
  const std::string image_label = Get(facts.labels, kLabelImageRef);
  if (facts.parent_guest_pull) {
    return Decision{true, image_label.empty() ? facts.parent_image : image_label,
                    "the parent layer is pulled by the guest"};
  }
  if (facts.labels.count(std::string(kLabelTargetRef)) == 0) {
    return Decision{false, "", "not a layer unpack and the parent is on the host"};
  }
  const std::string layer = Get(facts.labels, kLabelLayerDigest);
  if (layer.empty() || image_label.empty()) {
    return Decision{false, "",
                    "no CRI image labels (disable_snapshot_annotations = false is needed for "
                    "guest pull)"};
  }
  if (mode == GuestPullMode::kAll) {
    return Decision{true, image_label, "every CRI image is pulled by the guest (mode all)"};
  }
  const std::string manifest = Get(facts.labels, kLabelManifestDigest);
  if (!facts.manifest.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "layer ", layer, " of ", image_label, ": manifest ",
        manifest.empty() ? "(no cri.manifest-digest label)" : manifest, " was not read"));
  }
  for (const ManifestLayer& l : *facts.manifest) {
    if (l.digest != layer) continue;
    if (IsEncryptedMediaType(l.media_type)) {
      return Decision{true, image_label, absl::StrCat("media type ", l.media_type)};
    }
    return Decision{false, "", absl::StrCat("media type ", l.media_type)};
  }
  return absl::FailedPreconditionError(
      absl::StrCat("layer ", layer, " of ", image_label, " is not in its manifest ", manifest));
}

}  // namespace cloak::snapshotter
