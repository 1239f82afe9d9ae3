// A client of one repository on an OCI distribution registry (libcurl):
// manifests and blobs, anonymous / bearer-token / basic auth, digest and
// size verification of everything it returns. Not thread-safe: one client
// per pull.
#ifndef CLOAK_AGENT_IMAGE_REGISTRY_CLIENT_H_
#define CLOAK_AGENT_IMAGE_REGISTRY_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/image/manifest.h"
#include "agent/image/reference.h"

namespace cloak::agent::image {

struct Credentials {
  std::string username;
  std::string password;
};

inline constexpr int64_t kDefaultMaxManifestBytes = 4 << 20;
inline constexpr int64_t kDefaultMaxConfigBytes = 4 << 20;
inline constexpr absl::Duration kDefaultConnectTimeout = absl::Seconds(10);
inline constexpr absl::Duration kDefaultRequestTimeout = absl::Seconds(60);
inline constexpr absl::Duration kDefaultBlobTimeout = absl::Minutes(30);
inline constexpr absl::Duration kDefaultLowSpeedTime = absl::Seconds(60);
inline constexpr int kDefaultRetries = 4;
inline constexpr int kMaxRetries = 10;
inline constexpr absl::Duration kDefaultRetryBackoff = absl::Milliseconds(500);
inline constexpr absl::Duration kDefaultRetryMaxBackoff = absl::Seconds(8);

struct RegistryOptions {
  // Registries ("host:port" exactly as in references) spoken to over plain
  // HTTP. Every other registry is HTTPS only, including its redirects.
  std::vector<std::string> insecure_registries;
  // Dev class only: also plain HTTP to a registry on a loopback address,
  // "localhost" or 10.0.2.2 (IsHostRegistry).
  bool plain_http_to_host = false;
  // PEM CA bundle for HTTPS; empty: the system store.
  std::string ca_file;
  // Basic credentials by registry ("docker.io", "127.0.0.1:5000"); used for
  // the token request of a bearer challenge, or for a basic challenge.
  std::map<std::string, Credentials> credentials;
  // Proxy URL; empty: no proxy (the environment's *_proxy are ignored).
  std::string proxy;
  absl::Duration connect_timeout = kDefaultConnectTimeout;
  // Whole-request limit for manifests, configs and tokens.
  absl::Duration request_timeout = kDefaultRequestTimeout;
  // Whole-request limit for a layer blob.
  absl::Duration blob_timeout = kDefaultBlobTimeout;
  // A transfer slower than 1 KiB/s for this long is aborted.
  absl::Duration low_speed_time = kDefaultLowSpeedTime;
  int64_t max_manifest_bytes = kDefaultMaxManifestBytes;
  std::string user_agent = "cloak-agent/0.1";
  // A manifest, config or layer request that fails for a reason that may
  // pass (connection refused, reset or timed out, a body cut short, HTTP 429
  // or 5xx) is tried again up to `retries` times (0: never), the n-th retry
  // after retry_backoff × 2^(n-1), at most retry_max_backoff, each wait
  // scaled by a random factor in [0.5, 1.5) (jitter). A layer starts over
  // from its first byte. Per pod: init-data [data.agent] pull_retries and
  // pull_retry_backoff_ms (docs/agent.md, "Registry retries").
  int retries = kDefaultRetries;
  absl::Duration retry_backoff = kDefaultRetryBackoff;
  absl::Duration retry_max_backoff = kDefaultRetryMaxBackoff;
};

// The wait before retry number `retry` (1-based): retry_backoff ×
// 2^(retry-1), at most retry_max_backoff, times `jitter` (in [0.5, 1.5)).
// Pure.
absl::Duration RetryDelay(const RegistryOptions& options, int retry, double jitter);

struct FetchedManifest {
  std::string body;
  std::string content_type;
  std::string digest;  // sha256 of body, computed here
};

// True when `registry` ("host" or "host:port", as in a reference) names
// the host itself: a loopback address, "localhost", or 10.0.2.2 (the host's
// loopback under QEMU user networking). Pure.
bool IsHostRegistry(absl::string_view registry);

class RegistryClient {
 public:
  static absl::StatusOr<std::unique_ptr<RegistryClient>> Create(const RegistryOptions& options,
                                                                const Reference& reference);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // GET /v2/<repo>/manifests/<tag or digest>. When `ref` is a digest the
  // body must hash to it (DataLoss otherwise). NotFound naming the image
  // when the registry does not know it.
  absl::StatusOr<FetchedManifest> GetManifest(absl::string_view ref);

  // GET /v2/<repo>/blobs/<digest> into memory (at most `max_bytes`),
  // verified against `blob`. `what` names it in errors ("config", "layer").
  absl::StatusOr<std::string> GetBlob(const Descriptor& blob, absl::string_view what,
                                      int64_t max_bytes);

  // GET the blob, streaming it into `fd`, verified while streaming: DataLoss
  // naming the digest on a size or digest mismatch or a truncated transfer.
  absl::Status DownloadBlob(const Descriptor& blob, absl::string_view what, int fd);

  // "http" or "https" for this registry.
  const std::string& scheme() const { return scheme_; }

 private:
  struct Response;
  using Sink = std::function<absl::Status(absl::string_view)>;

  RegistryClient(const RegistryOptions& options, const Reference& reference, void* curl);
  std::string BaseUrl() const;
  // One request with the current auth; the body of a 2xx answer goes to
  // `sink`, other bodies are kept (bounded) for the error message.
  absl::StatusOr<Response> Perform(const std::string& url, const std::vector<std::string>& headers,
                                   bool blob, const Sink& sink);
  // Perform with one round of authentication on 401.
  absl::StatusOr<Response> PerformWithAuth(const std::string& url,
                                           const std::vector<std::string>& headers, bool blob,
                                           const Sink& sink);
  absl::Status Authenticate(absl::string_view www_authenticate);
  absl::Status HttpError(const Response& response, absl::string_view what) const;
  // Runs `attempt` until it succeeds, fails for a reason that will not
  // pass, or options_.retries are spent; then the error names `what`, the
  // registry and the attempts made.
  absl::Status Retrying(absl::string_view what, const std::function<absl::Status()>& attempt);
  absl::StatusOr<FetchedManifest> GetManifestOnce(absl::string_view ref);
  absl::StatusOr<std::string> GetBlobOnce(const Descriptor& blob, absl::string_view what,
                                          int64_t max_bytes);
  absl::Status DownloadBlobOnce(const Descriptor& blob, absl::string_view what, int fd);

  RegistryOptions options_;
  Reference reference_;
  std::string scheme_;
  void* curl_;  // CURL*
  std::string authorization_;  // "Authorization: ..." header or empty
};

}  // namespace cloak::agent::image

#endif  // CLOAK_AGENT_IMAGE_REGISTRY_CLIENT_H_
