#include "agent/image/manifest.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/image/reference.h"
#include "nlohmann/json.hpp"

namespace cloak::agent::image {
namespace {

using nlohmann::json;

absl::StatusOr<json> ParseJsonObject(absl::string_view body, absl::string_view what) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is not a JSON object; the registry sent something else"));
  }
  return j;
}

std::string GetString(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

absl::StatusOr<Descriptor> ParseDescriptor(const json& j, absl::string_view what) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, " is not an object"));
  Descriptor d;
  d.media_type = GetString(j, "mediaType");
  d.digest = GetString(j, "digest");
  if (!IsValidSha256Digest(d.digest)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has digest \"", d.digest.substr(0, 80), "\"; only sha256:<64 hex> is accepted"));
  }
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " (", d.digest, ") has no valid non-negative size"));
  }
  d.size = size->get<int64_t>();
  if (auto p = j.find("platform"); p != j.end() && p->is_object()) {
    d.platform.os = GetString(*p, "os");
    d.platform.architecture = GetString(*p, "architecture");
    d.platform.variant = GetString(*p, "variant");
  }
  if (auto a = j.find("annotations"); a != j.end() && a->is_object()) {
    for (const auto& [k, v] : a->items()) {
      if (v.is_string()) d.annotations[k] = v.get<std::string>();
    }
  }
  return d;
}

}  // namespace

std::string ManifestAcceptHeader() {
  return absl::StrCat("Accept: ", kOciIndex, ", ", kOciManifest, ", ", kDockerManifestList, ", ",
                      kDockerManifest);
}

absl::StatusOr<ManifestKind> ClassifyManifest(absl::string_view body,
                                              absl::string_view content_type) {
  auto j = ParseJsonObject(body, "manifest");
  if (!j.ok()) return j.status();
  std::string media_type = GetString(*j, "mediaType");
  if (media_type.empty()) {
    // Content-Type may carry parameters.
    media_type = std::string(content_type.substr(0, content_type.find(';')));
  }
  if (media_type == kOciIndex || media_type == kDockerManifestList) return ManifestKind::kIndex;
  if (media_type == kOciManifest || media_type == kDockerManifest) return ManifestKind::kManifest;
  if (absl::StartsWith(media_type, "application/vnd.docker.distribution.manifest.v1") ||
      (j->contains("schemaVersion") && (*j)["schemaVersion"] == 1)) {
    return absl::UnimplementedError(
        "the image has a Docker schema 1 manifest, which is not supported; push it again "
        "with a current tool (schema 2 or OCI)");
  }
  if (j->contains("manifests")) return ManifestKind::kIndex;
  if (j->contains("layers") && j->contains("config")) return ManifestKind::kManifest;
  return absl::InvalidArgumentError(absl::StrCat(
      "manifest has unknown media type \"", media_type.substr(0, 100),
      "\"; expected an OCI or Docker v2 image manifest or index"));
}

absl::StatusOr<ImageIndex> ParseImageIndex(absl::string_view body, absl::string_view what) {
  auto j = ParseJsonObject(body, what);
  if (!j.ok()) return j.status();
  ImageIndex index;
  index.media_type = GetString(*j, "mediaType");
  auto ms = j->find("manifests");
  if (ms == j->end() || !ms->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has no \"manifests\" array"));
  }
  for (size_t i = 0; i < ms->size(); ++i) {
    auto d = ParseDescriptor((*ms)[i], absl::StrCat(what, " entry ", i));
    if (!d.ok()) return d.status();
    index.manifests.push_back(std::move(*d));
  }
  return index;
}

absl::StatusOr<ImageManifest> ParseImageManifest(absl::string_view body, absl::string_view what) {
  auto j = ParseJsonObject(body, what);
  if (!j.ok()) return j.status();
  ImageManifest m;
  m.media_type = GetString(*j, "mediaType");
  auto config = j->find("config");
  if (config == j->end()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has no \"config\" descriptor"));
  }
  auto c = ParseDescriptor(*config, absl::StrCat(what, " config"));
  if (!c.ok()) return c.status();
  m.config = std::move(*c);
  if (!m.config.media_type.empty() && m.config.media_type != kOciConfig &&
      m.config.media_type != kDockerConfig) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " config has media type \"", m.config.media_type.substr(0, 100),
                     "\", which is not a container image config (is this an artifact?)"));
  }
  auto layers = j->find("layers");
  if (layers == j->end() || !layers->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has no \"layers\" array"));
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    auto d = ParseDescriptor((*layers)[i], absl::StrCat(what, " layer ", i));
    if (!d.ok()) return d.status();
    m.layers.push_back(std::move(*d));
  }
  return m;
}

absl::StatusOr<Descriptor> SelectPlatform(const ImageIndex& index, absl::string_view os,
                                          absl::string_view architecture,
                                          absl::string_view variant) {
  std::vector<std::string> offered;
  for (const Descriptor& d : index.manifests) {
    // Attestation manifests (buildkit) carry platform unknown/unknown.
    if (d.platform.os == os && d.platform.architecture == architecture &&
        (variant.empty() || d.platform.variant == variant)) {
      return d;
    }
    std::string p = absl::StrCat(d.platform.os, "/", d.platform.architecture);
    if (!d.platform.variant.empty()) absl::StrAppend(&p, "/", d.platform.variant);
    offered.push_back(p);
  }
  std::string want = absl::StrCat(os, "/", architecture);
  if (!variant.empty()) absl::StrAppend(&want, "/", variant);
  return absl::NotFoundError(absl::StrCat("the image index has no manifest for ", want,
                                          "; it offers [", absl::StrJoin(offered, ", "), "]"));
}

absl::StatusOr<LayerType> ClassifyLayerMediaType(absl::string_view media_type) {
  LayerType t;
  absl::string_view m = media_type;
  if (absl::ConsumeSuffix(&m, "+encrypted")) t.encrypted = true;
  if (m == "application/vnd.oci.image.layer.v1.tar" ||
      m == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
      m == "application/vnd.docker.image.rootfs.diff.tar") {
    t.compression = Compression::kNone;
  } else if (m == "application/vnd.oci.image.layer.v1.tar+gzip" ||
             m == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
             m == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
             m == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") {
    t.compression = Compression::kGzip;
  } else if (m == "application/vnd.oci.image.layer.v1.tar+zstd" ||
             m == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd") {
    t.compression = Compression::kZstd;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("layer media type \"", media_type.substr(0, 120),
                     "\" is not a supported layer type (OCI tar, tar+gzip, tar+zstd or Docker "
                     "rootfs.diff.tar.gzip, optionally +encrypted)"));
  }
  return t;
}

}  // namespace cloak::agent::image
