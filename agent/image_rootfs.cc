#include "agent/image_rootfs.h"

#include <algorithm>
#include <filesystem>

#include "absl/synchronization/mutex.h"

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
  ImageRootfsProvider(image::PullerOptions base, std::function<PodImageSettings()> pod_settings)
      : base_(std::move(base)), pod_settings_(std::move(pod_settings)) {}

  absl::StatusOr<PreparedRootfs> Prepare(absl::string_view container_id,
                                         absl::string_view image_ref,
                                         const std::string& dir) override {
    if (image_ref.empty()) return absl::InvalidArgumentError("image reference is empty");
    ASSIGN_OR_RETURN(image::ImagePuller* puller, Puller());
    PreparedRootfs prepared;
    prepared.rootfs_dir = dir + "/rootfs";
    absl::StatusOr<image::PulledImage> pulled = puller->Pull(image_ref, prepared.rootfs_dir);
    if (!pulled.ok()) return Annotate(pulled.status(), absl::StrCat("pull ", image_ref));
    Logger("agent")->info("container {}: pulled {} ({}, {} bytes) in {}", std::string(container_id),
                          pulled->reference, pulled->manifest_digest, pulled->bytes_downloaded,
                          absl::FormatDuration(pulled->total));
    prepared.image_config_json = pulled->config_json;
    prepared.image_digest = pulled->manifest_digest;
    return prepared;
  }

  // The puller, made on first use with the pod's settings added.
  absl::StatusOr<image::ImagePuller*> Puller() {
    absl::MutexLock lock(&mu_);
    if (puller_ != nullptr) return puller_.get();
    image::PullerOptions options = base_;
    if (pod_settings_) {
      PodImageSettings pod = pod_settings_();
      for (std::string& r : pod.insecure_registries) {
        auto& list = options.registry.insecure_registries;
        if (std::find(list.begin(), list.end(), r) == list.end()) list.push_back(std::move(r));
      }
      if (pod.max_concurrent_downloads > 0) {
        options.max_concurrent_downloads = pod.max_concurrent_downloads;
      }
      if (pod.pull_retries >= 0) options.registry.retries = pod.pull_retries;
      if (pod.pull_retry_backoff_ms > 0) {
        options.registry.retry_backoff = absl::Milliseconds(pod.pull_retry_backoff_ms);
        options.registry.retry_max_backoff =
            std::max(options.registry.retry_max_backoff, options.registry.retry_backoff);
      }
    }
    ASSIGN_OR_RETURN(std::unique_ptr<image::RegistryImagePuller> puller,
                     image::RegistryImagePuller::Create(options));
    puller_ = std::move(puller);
    return puller_.get();
  }

 private:
  const image::PullerOptions base_;
  const std::function<PodImageSettings()> pod_settings_;
  absl::Mutex mu_;
  std::unique_ptr<image::ImagePuller> puller_ ABSL_GUARDED_BY(mu_);
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
  puller_options.registry.plain_http_to_host = options.plain_http_to_host;
  puller_options.signature_policy = options.signature_policy;
  // The class's settings are checked now; the pod's when the first image
  // is pulled.
  RETURN_IF_ERROR(image::RegistryImagePuller::Create(puller_options).status());
  return std::unique_ptr<RootfsProvider>(
      new ImageRootfsProvider(std::move(puller_options), options.pod_settings));
#else
  (void)options;
  return absl::UnimplementedError(
      "the image puller (agent/image) is not in this build; use --rootfs-provider=busybox");
#endif
}

}  // namespace cloak::agent
