// Reads blobs (image manifests) from containerd's content store over its
// gRPC API (containerd.services.content.v1.Content/Read).
#ifndef CLOAK_SNAPSHOTTER_CONTENT_CLIENT_H_
#define CLOAK_SNAPSHOTTER_CONTENT_CLIENT_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "snapshotter/snapshotter.h"

namespace cloak::snapshotter {

// A ManifestSource over containerd's socket `address` (a path). Each read
// has `timeout`, and blobs larger than `max_bytes` are refused.
std::unique_ptr<ManifestSource> NewContentClient(const std::string& address,
                                                 absl::Duration timeout = absl::Seconds(30),
                                                 size_t max_bytes = 4 << 20);

}  // namespace cloak::snapshotter

#endif  // CLOAK_SNAPSHOTTER_CONTENT_CLIENT_H_
