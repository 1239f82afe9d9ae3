// `cloak pull`: the guest's image puller (agent/image/puller.h) and ocicrypt
// decryptor (agent/attest/ocicrypt.h) run on the host, with private keys
// given as PEM files instead of released by a key broker. It pulls,
// verifies, decrypts and unpacks an image into DIR/rootfs and prints the
// time of every step: the same code the guest runs, measured without
// emulation (docs/performance.md, docs/cli.md).
#ifndef CLOAK_CLI_CLOAK_PULL_CMD_H_
#define CLOAK_CLI_CLOAK_PULL_CMD_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/attest/ocicrypt.h"
#include "agent/image/puller.h"
#include "common/jose/jose.h"
#include "nlohmann/json.hpp"

namespace cloak::cli {

struct PullFlags {
  std::string reference;
  std::string dir;
  std::vector<std::string> decryption_keys;      // PEM files
  std::vector<std::string> insecure_registries;  // "host:port" spoken to over plain HTTP
  bool plain_http = false;                       // plain HTTP to a loopback registry
  int max_concurrent_downloads = agent::image::kDefaultMaxConcurrentDownloads;
  std::string work_dir;  // empty: a temporary directory inside `dir`
  std::string log_level = "warn";
  bool json = false;
};

struct PullCommand {
  CLI::App* pull = nullptr;
  PullFlags flags;
};

void AddPullCommand(CLI::App& app, PullCommand& cmd);
// Exit code as cli.h documents.
int RunPull(const PullCommand& cmd);

// Keys given on the command line; ImageKeys() hands them all out.
class StaticKeySource final : public agent::attest::KeySource {
 public:
  explicit StaticKeySource(std::vector<jose::PrivateKey> keys) : keys_(std::move(keys)) {}
  absl::StatusOr<agent::attest::KeySet> ImageKeys() override;

 private:
  std::vector<jose::PrivateKey> keys_;
};

// Parses each (file name, PEM text) pair; InvalidArgument naming the file
// that holds no usable private key. Pure.
absl::StatusOr<std::vector<jose::PrivateKey>> ParseDecryptionKeys(
    const std::vector<std::pair<std::string, std::string>>& named_pems);

// The puller's options for `flags` (keys already parsed; none: encrypted
// layers fail with the puller's FailedPrecondition). InvalidArgument for
// --max-concurrent-downloads out of range. Pure.
absl::StatusOr<agent::image::PullerOptions> PullerOptionsFor(const PullFlags& flags,
                                                             std::vector<jose::PrivateKey> keys,
                                                             const std::string& work_dir);

// FailedPrecondition when `rootfs` exists and is not an empty directory
// (a pull applies layers onto what is there, so old files would mix in).
absl::Status CheckRootfsTarget(const std::string& rootfs);

// What `cloak pull` prints: digests, bytes, every step with its time and
// the whole pull. Pure.
std::string PullReportText(const agent::image::PulledImage& image, absl::Duration wall);
nlohmann::json PullReportJson(const agent::image::PulledImage& image, absl::Duration wall);

}  // namespace cloak::cli

#endif  // CLOAK_CLI_CLOAK_PULL_CMD_H_
