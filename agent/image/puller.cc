#include "agent/image/puller.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/image/reference.h"
#include "agent/image/signature.h"
#include "agent/image/unpack.h"
#include "common/fd.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/temp_dir.h"

namespace cloak::agent::image {
namespace {

std::string Ms(absl::Duration d) { return absl::StrCat(absl::ToInt64Milliseconds(d), " ms"); }

std::string ShortDigest(absl::string_view digest) {
  return std::string(digest.substr(0, 7 + 12));
}

class StepClock {
 public:
  explicit StepClock(PulledImage* image) : image_(image), start_(absl::Now()) {}
  absl::Duration Lap(std::string step) {
    absl::Time now = absl::Now();
    absl::Duration d = now - last_;
    last_ = now;
    image_->timings.push_back({std::move(step), d});
    return d;
  }
  void Restart() { last_ = absl::Now(); }
  absl::Duration Total() const { return absl::Now() - start_; }

 private:
  PulledImage* image_;
  absl::Time start_;
  absl::Time last_ = absl::Now();
};

// Downloads the layers of one image into <work>/layer-<i> with up to
// `parallel` workers, each with its own RegistryClient (a client is not
// thread-safe). A worker starts layer i only while i < taken + parallel, so
// at most `parallel` blobs wait in the staging directory. After an error
// no new download starts; the destructor waits for those in flight.
class LayerDownloads {
 public:
  LayerDownloads(const RegistryOptions& registry, const Reference& ref,
                 const std::vector<Descriptor>& layers, const TempDir& work, size_t parallel)
      : layers_(layers), work_(work), parallel_(std::max<size_t>(parallel, 1)),
        results_(layers.size()) {
    const size_t workers = std::min(parallel_, layers.size());
    for (size_t w = 0; w < workers; ++w) {
      threads_.emplace_back([this, registry, ref] { Work(registry, ref); });
    }
  }
  ~LayerDownloads() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    for (std::thread& t : threads_) t.join();
  }
  LayerDownloads(const LayerDownloads&) = delete;
  LayerDownloads& operator=(const LayerDownloads&) = delete;

  // Waits for layer `i` (taken in order 0, 1, ...); its download time, or
  // the error that ended it.
  absl::StatusOr<absl::Duration> Take(size_t i) {
    absl::MutexLock lock(&mu_);
    taken_ = i;
    mu_.Await(absl::Condition(
        +[](Result* r) { return r->done; }, &results_[i]));
    taken_ = i + 1;
    if (!results_[i].status.ok()) {
      stop_ = true;
      return results_[i].status;
    }
    return results_[i].took;
  }

  int peak() const {
    absl::MutexLock lock(&mu_);
    return peak_;
  }

 private:
  struct Result {
    bool done = false;
    absl::Status status;
    absl::Duration took;
  };

  void Work(const RegistryOptions& registry, const Reference& ref) {
    absl::StatusOr<std::unique_ptr<RegistryClient>> client = RegistryClient::Create(registry, ref);
    while (true) {
      size_t i;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this] { return stop_ || next_ >= layers_.size() || next_ < taken_ + parallel_; };
        mu_.Await(absl::Condition(&ready));
        if (stop_ || next_ >= layers_.size()) return;
        i = next_++;
        peak_ = std::max(peak_, ++in_flight_);
      }
      const absl::Time start = absl::Now();
      absl::Status s = client.ok() ? Download(**client, i) : client.status();
      absl::MutexLock lock(&mu_);
      --in_flight_;
      results_[i] = Result{true, std::move(s), absl::Now() - start};
      if (!results_[i].status.ok()) stop_ = true;
    }
  }

  absl::Status Download(RegistryClient& client, size_t i) {
    const std::string path = work_.Join(absl::StrCat("layer-", i));
    UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) return ErrnoError(errno, "create staging file ", path);
    return client.DownloadBlob(layers_[i], "layer", fd.get());
  }

  const std::vector<Descriptor>& layers_;
  const TempDir& work_;
  const size_t parallel_;
  mutable absl::Mutex mu_;
  std::vector<Result> results_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  size_t taken_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int peak_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RegistryImagePuller>> RegistryImagePuller::Create(
    const PullerOptions& options) {
  if (!options.registry.ca_file.empty() && access(options.registry.ca_file.c_str(), R_OK) != 0) {
    return ErrnoError(errno, "image puller: CA file ", options.registry.ca_file);
  }
  if (!options.work_dir.empty()) {
    struct stat st;
    if (stat(options.work_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image puller: work_dir ", options.work_dir, " is not an existing directory"));
    }
  }
  for (const std::string& r : options.registry.insecure_registries) {
    if (r.empty() || r.find_first_of("/ ") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image puller: insecure registry \"", r, "\" must be host or host:port"));
    }
  }
  if (options.max_concurrent_downloads < 1 ||
      options.max_concurrent_downloads > kMaxConcurrentDownloads) {
    return absl::InvalidArgumentError(
        absl::StrCat("image puller: max_concurrent_downloads is ", options.max_concurrent_downloads,
                     "; it must be from 1 to ", kMaxConcurrentDownloads));
  }
  if (options.os.empty() || options.architecture.empty()) {
    return absl::InvalidArgumentError("image puller: os and architecture must be set");
  }
  if (options.registry.max_manifest_bytes <= 0 || options.max_config_bytes <= 0 ||
      options.max_layer_bytes <= 0 || options.max_layers == 0) {
    return absl::InvalidArgumentError("image puller: size limits must be positive");
  }
  return std::unique_ptr<RegistryImagePuller>(new RegistryImagePuller(options));
}

absl::StatusOr<PulledImage> RegistryImagePuller::Pull(absl::string_view reference_text,
                                                      const std::string& rootfs_dir) {
  auto log = Logger("image");
  PulledImage image;
  StepClock clock(&image);

  ASSIGN_OR_RETURN(Reference ref, ParseReference(reference_text));
  image.reference = ref.String();
  const std::string name = image.reference;
  log->info("pull {}: start (rootfs {})", name, rootfs_dir);

  std::error_code ec;
  std::filesystem::create_directories(rootfs_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("pull ", name, ": cannot create rootfs ",
                                                      rootfs_dir, ": ", ec.message()));
  }

  std::string work_base = options_.work_dir;
  if (work_base.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    work_base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  ASSIGN_OR_RETURN(TempDir work, TempDir::Create("cloak-pull-", work_base));
  ASSIGN_OR_RETURN(std::unique_ptr<RegistryClient> client,
                   RegistryClient::Create(options_.registry, ref));

  // 1. Resolve the reference to an image manifest.
  ASSIGN_OR_RETURN(FetchedManifest top, client->GetManifest(ref.ManifestReference()));
  // Signatures cover the manifest the reference names (an index for a
  // multi-platform image): checked before any other request for the image.
  if (options_.signature_policy) {
    if (std::shared_ptr<const policy::ImageSignaturePolicy> rules = options_.signature_policy()) {
      absl::Status s = VerifyImageSignatures(*rules, ref, top.digest, *client);
      if (!s.ok()) {
        log->error("pull {}: {}", name, std::string(s.message()));
        return s;
      }
    }
  }
  ASSIGN_OR_RETURN(ManifestKind kind, ClassifyManifest(top.body, top.content_type));
  FetchedManifest manifest_blob = std::move(top);
  if (kind == ManifestKind::kIndex) {
    ASSIGN_OR_RETURN(ImageIndex index,
                     ParseImageIndex(manifest_blob.body, absl::StrCat("index ",
                                                                      manifest_blob.digest)));
    auto chosen = SelectPlatform(index, options_.os, options_.architecture);
    if (!chosen.ok()) return Annotate(chosen.status(), absl::StrCat("pull ", name));
    image.index_digest = manifest_blob.digest;
    log->info("pull {}: index {} → {}/{} manifest {}", name, ShortDigest(image.index_digest),
              options_.os, options_.architecture, ShortDigest(chosen->digest));
    if (chosen->size > options_.registry.max_manifest_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("pull ", name, ": manifest ",
                                                       chosen->digest, " is too large"));
    }
    ASSIGN_OR_RETURN(manifest_blob, client->GetManifest(chosen->digest));
    if (static_cast<int64_t>(manifest_blob.body.size()) != chosen->size) {
      return absl::DataLossError(absl::StrCat("manifest ", chosen->digest, " is ",
                                              manifest_blob.body.size(),
                                              " bytes but the index says ", chosen->size));
    }
    ASSIGN_OR_RETURN(ManifestKind inner,
                     ClassifyManifest(manifest_blob.body, manifest_blob.content_type));
    if (inner != ManifestKind::kManifest) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pull ", name, ": index entry ", chosen->digest, " is not an image manifest"));
    }
  }
  image.manifest_digest = manifest_blob.digest;
  ASSIGN_OR_RETURN(ImageManifest manifest,
                   ParseImageManifest(manifest_blob.body,
                                      absl::StrCat("manifest ", image.manifest_digest)));
  if (manifest.layers.size() > options_.max_layers) {
    return absl::ResourceExhaustedError(absl::StrCat("pull ", name, ": ", manifest.layers.size(),
                                                     " layers, more than the limit of ",
                                                     options_.max_layers));
  }
  // Check every layer type before downloading anything.
  std::vector<LayerType> types;
  for (const Descriptor& layer : manifest.layers) {
    auto type = ClassifyLayerMediaType(layer.media_type);
    if (!type.ok()) return Annotate(type.status(), absl::StrCat("layer ", layer.digest));
    if (type->encrypted && options_.decryptor == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("layer ", layer.digest, " is encrypted; no key available"));
    }
    if (layer.size > options_.max_layer_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("layer ", layer.digest, " is ", layer.size,
                                                       " bytes, more than the limit of ",
                                                       options_.max_layer_bytes));
    }
    types.push_back(*type);
  }
  absl::Duration d = clock.Lap("resolve");
  log->info("pull {}: resolved manifest {} ({} layers) in {}", name,
            ShortDigest(image.manifest_digest), manifest.layers.size(), Ms(d));

  // 2. Config.
  image.config_digest = manifest.config.digest;
  ASSIGN_OR_RETURN(image.config_json,
                   client->GetBlob(manifest.config, "config", options_.max_config_bytes));
  auto config = ParseImageConfig(image.config_json);
  if (!config.ok()) return Annotate(config.status(), absl::StrCat("config ", image.config_digest));
  image.config = std::move(*config);
  if ((!image.config.os.empty() && image.config.os != options_.os) ||
      (!image.config.architecture.empty() && image.config.architecture != options_.architecture)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pull ", name, ": the image is for ", image.config.os, "/", image.config.architecture,
        ", this guest runs ", options_.os, "/", options_.architecture));
  }
  d = clock.Lap("config");
  log->info("pull {}: config {} in {}", name, ShortDigest(image.config_digest), Ms(d));

  // 3. Layers: fetched (verified) in parallel, then, in order,
  // [decrypted] and unpacked.
  const size_t n = manifest.layers.size();
  LayerDownloads downloads(options_.registry, ref, manifest.layers, work,
                           static_cast<size_t>(options_.max_concurrent_downloads));
  UnpackBudget budget{.limits = options_.unpack_limits};
  for (size_t i = 0; i < n; ++i) {
    const Descriptor& layer = manifest.layers[i];
    std::string step = absl::StrCat("layer ", i + 1, "/", n);
    std::string blob_path = work.Join(absl::StrCat("layer-", i));
    ASSIGN_OR_RETURN(absl::Duration fetched, downloads.Take(i));
    image.bytes_downloaded += layer.size;
    image.timings.push_back({absl::StrCat("fetch ", step), fetched});
    clock.Restart();
    log->info("pull {}: fetched {} {} ({} bytes) in {}", name, step, ShortDigest(layer.digest),
              layer.size, Ms(fetched));

    std::string plain_path = blob_path;
    if (types[i].encrypted) {
      plain_path = absl::StrCat(blob_path, ".plain");
      ASSIGN_OR_RETURN(std::string plain_type,
                       options_.decryptor->Decrypt(layer, blob_path, plain_path));
      unlink(blob_path.c_str());
      auto t = ClassifyLayerMediaType(plain_type);
      if (!t.ok() || t->encrypted) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer ", layer.digest, ": the decryptor returned media type \"", plain_type,
            "\", which is not a plaintext layer type"));
      }
      d = clock.Lap(absl::StrCat("decrypt ", step));
      log->info("pull {}: decrypted {} in {}", name, step, Ms(d));
    }

    auto stats = ApplyLayer(plain_path, rootfs_dir, layer.digest, &budget);
    unlink(plain_path.c_str());
    if (!stats.ok()) {
      log->error("pull {}: {} refused: {}", name, step, std::string(stats.status().message()));
      return stats.status();
    }
    image.layer_digests.push_back(layer.digest);
    d = clock.Lap(absl::StrCat("unpack ", step));
    log->info("pull {}: unpacked {} ({} entries, {} files, {} bytes, {} whiteouts, {} device "
              "nodes, {} device nodes not created) in {}",
              name, step, stats->entries, stats->files, stats->bytes, stats->whiteouts,
              stats->devices, stats->skipped_devices, Ms(d));
  }
  image.peak_concurrent_downloads = downloads.peak();
  image.total = clock.Total();
  log->info("pull {}: done: manifest {}, {} layers, {} bytes downloaded ({} at once at most), "
            "total {}",
            name, ShortDigest(image.manifest_digest), n, image.bytes_downloaded,
            image.peak_concurrent_downloads, Ms(image.total));
  return image;
}

}  // namespace cloak::agent::image
