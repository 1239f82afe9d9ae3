// Fuzzes the layer applier (agent/image/unpack.h) on a real directory: the
// layer is a tar stream (plain, gzip or zstd) from the untrusted host. Each
// input is written as a layer file and applied to a fresh, empty rootfs
// with small caps; afterwards nothing beside the rootfs may have changed
// (a sentinel file and the listing of the directory that holds the rootfs).
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/string_view.h"
#include "agent/image/unpack.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/temp_dir.h"

namespace {

constexpr char kSentinel[] = "sentinel: outside the rootfs";

void Require(const absl::Status& status, const char* what) {
  if (status.ok()) return;
  std::fprintf(stderr, "layer_unpack_fuzz: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

cloak::TempDir* base = nullptr;

std::set<std::string> Listing(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.insert(e.path().filename().string());
  }
  return names;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)cloak::SetLogLevel("off");
  auto dir = cloak::TempDir::Create("layer-fuzz-");
  Require(dir.status(), "temporary directory");
  base = new cloak::TempDir(*std::move(dir));
  Require(cloak::WriteFileAtomic(base->Join("sentinel"), kSentinel), "sentinel");
  std::atexit([] { delete base; });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string layer = base->Join("layer");
  const std::string rootfs = base->Join("rootfs");
  Require(cloak::WriteFileAtomic(
              layer, absl::string_view(reinterpret_cast<const char*>(data), size)),
          "layer file");
  if (::mkdir(rootfs.c_str(), 0755) != 0) std::abort();

  cloak::agent::image::UnpackBudget budget;
  budget.limits.max_bytes = 8 << 20;
  budget.limits.max_entries = 2000;
  budget.limits.max_path_depth = 32;
  budget.limits.max_xattr_bytes = 256 << 10;
  (void)cloak::agent::image::ApplyLayer(layer, rootfs, "fuzz", &budget);

  // Nothing outside the rootfs changed.
  static const std::set<std::string> kExpected = {"layer", "rootfs", "sentinel"};
  if (Listing(base->path()) != kExpected) {
    std::fprintf(stderr, "layer_unpack_fuzz: an entry was written beside the rootfs\n");
    std::abort();
  }
  auto sentinel = cloak::ReadFile(base->Join("sentinel"));
  if (!sentinel.ok() || *sentinel != kSentinel) {
    std::fprintf(stderr, "layer_unpack_fuzz: the sentinel beside the rootfs changed\n");
    std::abort();
  }
  Require(cloak::RemoveTree(rootfs), "removing the rootfs");
  return 0;
}
