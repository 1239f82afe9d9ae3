#include "agent/image_rootfs.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

#ifdef CLOAK_HAVE_AGENT_IMAGE
#include "agent/image/puller.h"
#endif

namespace cloak::agent {

#ifdef CLOAK_HAVE_AGENT_IMAGE
namespace {

class ImageRootfsProvider final : public RootfsProvider {
 public:
  explicit ImageRootfsProvider(std::unique_ptr<image::ImagePuller> puller)
      : puller_(std::move(puller)) {}

  absl::StatusOr<PreparedRootfs> Prepare(absl::string_view container_id,
                                         absl::string_view image_ref,
                                         const std::string& dir) override {
    if (image_ref.empty()) return absl::InvalidArgumentError("image reference is empty");
    PreparedRootfs prepared;
    prepared.rootfs_dir = dir + "/rootfs";
    absl::StatusOr<image::PulledImage> pulled = puller_->Pull(image_ref, prepared.rootfs_dir);
    if (!pulled.ok()) return Annotate(pulled.status(), absl::StrCat("pull ", image_ref));
    Logger("agent")->info("container {}: pulled {} ({}, {} bytes) in {}", std::string(container_id),
                          pulled->reference, pulled->manifest_digest, pulled->bytes_downloaded,
                          absl::FormatDuration(pulled->total));
    prepared.image_config_json = pulled->config_json;
    prepared.image_digest = pulled->manifest_digest;
    return prepared;
  }

 private:
  std::unique_ptr<image::ImagePuller> puller_;
};

}  // namespace
#endif

absl::StatusOr<std::unique_ptr<RootfsProvider>> MakeImageRootfsProvider(
    const ImageRootfsOptions& options) {
#ifdef CLOAK_HAVE_AGENT_IMAGE
  std::error_code ec;
  std::filesystem::create_directories(options.work_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir ", options.work_dir, ": ", ec.message()));
  image::PullerOptions puller_options;
  puller_options.registry.insecure_registries = options.insecure_registries;
  puller_options.work_dir = options.work_dir;
  puller_options.max_concurrent_downloads = options.max_concurrent_downloads;
  puller_options.decryptor = options.decryptor;
  ASSIGN_OR_RETURN(std::unique_ptr<image::RegistryImagePuller> puller,
                   image::RegistryImagePuller::Create(puller_options));
  return std::unique_ptr<RootfsProvider>(new ImageRootfsProvider(std::move(puller)));
#else
  (void)options;
  return absl::UnimplementedError(
      "the image puller (agent/image) is not in this build; use --rootfs-provider=busybox");
#endif
}

}  // namespace cloak::agent
