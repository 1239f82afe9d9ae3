// Fuzzes the registry's answers the agent parses (agent/image/manifest.h and
// www_authenticate.h): manifests and indexes come from an untrusted registry
// and host, as does the WWW-Authenticate header of a 401.
//
// Input: the first byte selects the parser; the rest is the body.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "agent/image/manifest.h"
#include "agent/image/www_authenticate.h"

namespace image = cloak::agent::image;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  absl::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (selector % 4) {
    case 0: {
      (void)image::ParseWwwAuthenticate(body);
      break;
    }
    case 1: {
      auto kind = image::ClassifyManifest(body, "application/vnd.oci.image.manifest.v1+json");
      (void)kind;
      auto manifest = image::ParseImageManifest(body, "manifest (fuzz)");
      if (manifest.ok()) {
        for (const auto& layer : manifest->layers) {
          (void)image::ClassifyLayerMediaType(layer.media_type);
        }
      }
      break;
    }
    case 2: {
      (void)image::ClassifyManifest(body, "");
      auto index = image::ParseImageIndex(body, "index (fuzz)");
      if (index.ok()) {
        (void)image::SelectPlatform(*index, "linux", "amd64");
        (void)image::SelectPlatform(*index, "linux", "arm64", "v8");
      }
      break;
    }
    default:
      (void)image::ClassifyLayerMediaType(body);
      break;
  }
  return 0;
}
