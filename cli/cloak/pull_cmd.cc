#include "cli/cloak/pull_cmd.h"

#include <sys/stat.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/temp_dir.h"

namespace cloak::cli {
namespace {

namespace fs = std::filesystem;
using agent::image::PulledImage;

constexpr int64_t kMaxKeyFileBytes = 1 << 20;

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

double MiBPerSecond(int64_t bytes, absl::Duration d) {
  double s = absl::ToDoubleSeconds(d);
  return s > 0 ? static_cast<double>(bytes) / (1024.0 * 1024.0) / s : 0.0;
}

absl::Status Pull(const PullFlags& flags) {
  if (flags.reference.empty() || flags.dir.empty()) {
    return absl::InvalidArgumentError("usage: cloak pull [options] REFERENCE DIR");
  }
  std::vector<std::pair<std::string, std::string>> pems;
  for (const std::string& path : flags.decryption_keys) {
    absl::StatusOr<std::string> pem = ReadFile(path, kMaxKeyFileBytes);
    if (!pem.ok()) {
      return absl::Status(pem.status().code(),
                          absl::StrCat("--decryption-key ", path, ": ", pem.status().message()));
    }
    pems.emplace_back(path, *std::move(pem));
  }
  ASSIGN_OR_RETURN(std::vector<jose::PrivateKey> keys, ParseDecryptionKeys(pems));

  const std::string rootfs = (fs::path(flags.dir) / "rootfs").string();
  RETURN_IF_ERROR(CheckRootfsTarget(rootfs));
  RETURN_IF_ERROR(MakeDirs(flags.dir));
  // Staged blobs live beside the result by default, on the same file system
  // as what `skopeo copy` to an oci: layout in DIR would write.
  std::optional<TempDir> staging;
  std::string work_dir = flags.work_dir;
  if (work_dir.empty()) {
    absl::StatusOr<TempDir> t = TempDir::Create(".cloak-pull-", flags.dir);
    if (!t.ok()) {
      return absl::Status(t.status().code(), absl::StrCat("cannot make a staging directory in ",
                                                          flags.dir, ": ", t.status().message()));
    }
    staging.emplace(*std::move(t));
    work_dir = staging->path().string();
  }
  ASSIGN_OR_RETURN(agent::image::PullerOptions options,
                   PullerOptionsFor(flags, std::move(keys), work_dir));
  ASSIGN_OR_RETURN(std::unique_ptr<agent::image::RegistryImagePuller> puller,
                   agent::image::RegistryImagePuller::Create(options));
  const absl::Time start = absl::Now();
  absl::StatusOr<PulledImage> image = puller->Pull(flags.reference, rootfs);
  const absl::Duration wall = absl::Now() - start;
  if (!image.ok()) {
    return absl::Status(image.status().code(),
                        absl::StrCat(image.status().message(), " (", rootfs,
                                     " is incomplete: remove it before pulling again)"));
  }
  RETURN_IF_ERROR(WriteFileAtomic((fs::path(flags.dir) / "image-config.json").string(),
                                  image->config_json, 0644));
  if (flags.json) {
    std::cout << PullReportJson(*image, wall).dump(2) << "\n";
  } else {
    std::cout << PullReportText(*image, wall);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<agent::attest::KeySet> StaticKeySource::ImageKeys() {
  agent::attest::KeySet set;
  set.keys = keys_;
  if (keys_.empty()) {
    set.refusals.push_back("no --decryption-key was given to cloak pull");
  }
  return set;
}

absl::StatusOr<std::vector<jose::PrivateKey>> ParseDecryptionKeys(
    const std::vector<std::pair<std::string, std::string>>& named_pems) {
  std::vector<jose::PrivateKey> keys;
  for (const auto& [name, pem] : named_pems) {
    absl::StatusOr<jose::PrivateKey> key = jose::PrivateKey::FromPem(pem);
    if (!key.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--decryption-key ", name, " holds no usable private key (", key.status().message(),
          "); give the unencrypted PEM private key whose public half encrypted the image"));
    }
    keys.push_back(*std::move(key));
  }
  return keys;
}

absl::StatusOr<agent::image::PullerOptions> PullerOptionsFor(const PullFlags& flags,
                                                             std::vector<jose::PrivateKey> keys,
                                                             const std::string& work_dir) {
  if (flags.max_concurrent_downloads < 1 ||
      flags.max_concurrent_downloads > agent::image::kMaxConcurrentDownloads) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-concurrent-downloads ", flags.max_concurrent_downloads,
                     " is out of range: give 1 to ", agent::image::kMaxConcurrentDownloads));
  }
  agent::image::PullerOptions options;
  options.registry.insecure_registries = flags.insecure_registries;
  options.registry.plain_http_to_host = flags.plain_http;
  options.registry.user_agent = "cloak-pull/0.1";
  options.work_dir = work_dir;
  options.max_concurrent_downloads = flags.max_concurrent_downloads;
  options.decryptor = std::make_shared<agent::attest::OcicryptDecryptor>(
      std::make_shared<StaticKeySource>(std::move(keys)));
  return options;
}

absl::Status CheckRootfsTarget(const std::string& rootfs) {
  std::error_code ec;
  fs::file_status st = fs::symlink_status(rootfs, ec);
  if (ec || !fs::exists(st)) return absl::OkStatus();
  if (!fs::is_directory(st)) {
    return absl::FailedPreconditionError(
        absl::StrCat(rootfs, " exists and is not a directory: remove it or choose another DIR"));
  }
  if (!fs::is_empty(rootfs, ec) || ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        rootfs, " is not empty: a pull would mix the image with what is there; remove it or "
                "choose another DIR"));
  }
  return absl::OkStatus();
}

std::string PullReportText(const PulledImage& image, absl::Duration wall) {
  std::string out = absl::StrCat("pulled ", image.reference, "\n  manifest ",
                                 image.manifest_digest, "\n  config   ", image.config_digest, "\n");
  absl::StrAppendFormat(&out, "  layers   %d, %d bytes downloaded, %d downloads at once at most\n",
                        image.layer_digests.size(), image.bytes_downloaded,
                        image.peak_concurrent_downloads);
  for (const agent::image::StepTiming& t : image.timings) {
    absl::StrAppendFormat(&out, "  %-22s %10.1f ms\n", t.step, Ms(t.duration));
  }
  absl::StrAppendFormat(&out, "  %-22s %10.1f ms (%.1f MiB/s of layer blobs)\n", "total",
                        Ms(wall), MiBPerSecond(image.bytes_downloaded, wall));
  return out;
}

nlohmann::json PullReportJson(const PulledImage& image, absl::Duration wall) {
  nlohmann::json steps = nlohmann::json::array();
  for (const agent::image::StepTiming& t : image.timings) {
    steps.push_back({{"step", t.step}, {"ms", Ms(t.duration)}});
  }
  return {{"reference", image.reference},
          {"manifest_digest", image.manifest_digest},
          {"config_digest", image.config_digest},
          {"layers", image.layer_digests},
          {"bytes_downloaded", image.bytes_downloaded},
          {"peak_concurrent_downloads", image.peak_concurrent_downloads},
          {"steps", steps},
          {"total_ms", Ms(wall)}};
}

void AddPullCommand(CLI::App& app, PullCommand& cmd) {
  PullFlags& f = cmd.flags;
  cmd.pull = app.add_subcommand(
      "pull",
      "pull, verify, decrypt and unpack an image into DIR/rootfs on this host with the guest's "
      "puller and ocicrypt decryptor, printing the time of every step");
  cmd.pull->add_option("reference", f.reference, "image reference, e.g. 127.0.0.1:5000/app:1")
      ->required();
  cmd.pull->add_option("dir", f.dir, "output directory (rootfs/ and image-config.json)")
      ->required();
  cmd.pull->add_option("--decryption-key", f.decryption_keys,
                       "PEM private key for JWE-wrapped layer keys (repeatable), as skopeo's "
                       "--decryption-key");
  cmd.pull->add_option("--insecure-registry", f.insecure_registries,
                       "host:port spoken to over plain HTTP (repeatable)");
  cmd.pull->add_flag("--plain-http", f.plain_http,
                     "plain HTTP to a registry on a loopback address or localhost");
  cmd.pull->add_option("--max-concurrent-downloads", f.max_concurrent_downloads,
                       "layers downloaded at once")
      ->capture_default_str();
  cmd.pull->add_option("--work-dir", f.work_dir,
                       "where layer blobs are staged (default: a temporary directory in DIR)");
  cmd.pull->add_option("--log-level", f.log_level, "the puller's log: info shows every step")
      ->capture_default_str();
  cmd.pull->add_flag("--json", f.json, "print the report as JSON");
}

int RunPull(const PullCommand& cmd) {
  LogOptions log;
  log.level = cmd.flags.log_level;
  log.component = "cloak pull";
  absl::Status s = InitLogging(log);
  if (s.ok()) s = Pull(cmd.flags);
  if (!s.ok()) {
    std::cerr << "cloak pull: " << s.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace cloak::cli
