// Test helpers for the image puller: tar layers built with libarchive's
// writer, OCI images assembled in memory, an OCI layout on disk, and a
// small in-process HTTP server that plays a registry on 127.0.0.1.
#ifndef CLOAK_TESTS_AGENT_IMAGE_TEST_UTIL_H_
#define CLOAK_TESTS_AGENT_IMAGE_TEST_UTIL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/image/manifest.h"

namespace cloak::agent::image::testing {

class TarBuilder {
 public:
  TarBuilder& File(const std::string& path, const std::string& content, int mode = 0644);
  TarBuilder& Dir(const std::string& path, int mode = 0755);
  TarBuilder& Symlink(const std::string& path, const std::string& target);
  TarBuilder& Hardlink(const std::string& path, const std::string& target);
  TarBuilder& CharDevice(const std::string& path, int major, int minor);
  TarBuilder& BlockDevice(const std::string& path, int major, int minor);
  // An xattr on the entry added last.
  TarBuilder& Xattr(const std::string& name, const std::string& value);
  TarBuilder& Fifo(const std::string& path);
  // The tar stream, compressed as asked.
  std::string Build(Compression compression = Compression::kNone) const;

 private:
  struct Entry {
    std::string path;
    int type;  // AE_IF*
    int mode;
    std::string content;
    std::string link;  // symlink target
    std::string hardlink;
    int major = 0;
    int minor = 0;
    std::vector<std::pair<std::string, std::string>> xattrs = {};
  };
  std::vector<Entry> entries_;
};

std::string LayerMediaType(Compression compression);

struct TestImage {
  std::string config_json;
  std::string config_digest;
  struct Layer {
    std::string media_type;
    std::string data;
    std::string digest;
  };
  std::vector<Layer> layers;
  std::string manifest_json;
  std::string manifest_digest;
};

// Builds an OCI image: config {Entrypoint, Cmd, Env, WorkingDir, User}
// given as the JSON of the "config" object, one layer per element.
TestImage MakeImage(const std::string& config_object_json,
                    const std::vector<std::pair<std::string, std::string>>& layers /*type,data*/,
                    const std::string& architecture = "amd64",
                    const std::vector<std::string>& diff_ids = {});

// An OCI index listing `manifests` (digest, size, architecture).
std::string MakeIndex(const std::vector<std::tuple<std::string, int64_t, std::string>>& manifests);

// Writes `image` as an OCI image layout in `dir` with ref name `tag`.
absl::Status WriteOciLayout(const std::string& dir, const TestImage& image,
                            const std::string& tag);

absl::Status WriteFile(const std::string& path, const std::string& data);
std::string ReadFileOrEmpty(const std::string& path);

struct HttpRequest {
  std::string method;
  std::string target;  // path and query
  std::map<std::string, std::string> headers;  // lowercased keys
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // If >= 0, the Content-Length sent (to fake a truncated body).
  int64_t declared_length = -1;
};

// A one-request-per-connection HTTP/1.1 server on 127.0.0.1:<ephemeral>.
class FakeHttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  explicit FakeHttpServer(Handler handler);
  ~FakeHttpServer();
  absl::Status Start();
  int port() const { return port_; }
  std::string hostport() const { return "127.0.0.1:" + std::to_string(port_); }
  // The next `n` connections are closed as soon as they are accepted,
  // without an answer (a registry that refuses or drops them).
  void DropConnections(int n) { drop_.store(n); }
  int connections() const { return connections_seen_.load(); }

 private:
  void Serve();
  void HandleConnection(int fd);
  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> drop_{0};
  std::atomic<int> connections_seen_{0};
  std::thread thread_;
  std::vector<std::thread> connections_;  // touched by thread_ only, then joined
};

// A TCP proxy on 127.0.0.1:<ephemeral> in front of a real registry on
// 127.0.0.1:`upstream_port`, with faults: the next N connections closed as
// soon as they are accepted, and the next M blob responses (a request whose
// line names /blobs/) cut after a number of bytes, connection and all.
class FlakyProxy {
 public:
  explicit FlakyProxy(int upstream_port) : upstream_port_(upstream_port) {}
  ~FlakyProxy();
  absl::Status Start();
  std::string hostport() const { return "127.0.0.1:" + std::to_string(port_); }
  void DropConnections(int n) { drop_.store(n); }
  void CutBlobs(int n, int64_t after_bytes) {
    cut_after_.store(after_bytes);
    cuts_.store(n);
  }
  int dropped() const { return dropped_.load(); }
  int cut() const { return cut_.load(); }
  int connections() const { return connections_seen_.load(); }

 private:
  void Serve();
  void Pump(int client);
  const int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> drop_{0}, cuts_{0}, dropped_{0}, cut_{0}, connections_seen_{0};
  std::atomic<int64_t> cut_after_{0};
  std::thread thread_;
  std::vector<std::thread> pumps_;  // touched by thread_ only, then joined
};

// A registry built on FakeHttpServer: manifests by tag or digest, blobs by
// digest, optional bearer-token auth, blob redirects, faults.
class FakeRegistry {
 public:
  FakeRegistry();
  absl::Status Start() { return server_.Start(); }
  std::string hostport() const { return server_.hostport(); }

  void AddImage(const std::string& repo, const std::string& tag, const TestImage& image);
  void AddManifest(const std::string& repo, const std::string& ref, const std::string& body,
                   const std::string& media_type);
  void AddBlob(const std::string& digest, const std::string& data);
  // Blobs are served through a 307 to /redirected/<digest>.
  void set_redirect_blobs(bool on) { redirect_blobs_ = on; }
  // Requests need "Authorization: Bearer <token>" from GET /token.
  void set_require_token(bool on) { require_token_ = on; }
  // Serve only the first `bytes` of this blob while announcing its full
  // length: the next `times` requests for it (-1: every request).
  void TruncateBlob(const std::string& digest, int64_t bytes, int times = -1);
  // See FakeHttpServer::DropConnections.
  void DropConnections(int n) { server_.DropConnections(n); }
  int connections() const { return server_.connections(); }
  // Requests for blob `digest` served so far.
  int blob_requests(const std::string& digest) const;
  int token_requests() const { return token_requests_; }
  // Every blob answer is delayed by `delay` (set before Start).
  void set_blob_delay(absl::Duration delay) { blob_delay_ = delay; }
  // The most blob requests served at the same time.
  int peak_blobs_in_flight() const { return peak_blobs_in_flight_; }
  std::string last_scope() const;

 private:
  HttpResponse Handle(const HttpRequest& request);
  FakeHttpServer server_;
  mutable std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> manifests_;  // repo/ref → body,type
  std::map<std::string, std::string> blobs_;
  std::map<std::string, std::pair<int64_t, int>> truncate_;  // digest → bytes, times left
  std::map<std::string, int> blob_requests_;
  bool redirect_blobs_ = false;
  bool require_token_ = false;
  std::atomic<int> token_requests_{0};
  absl::Duration blob_delay_ = absl::ZeroDuration();
  std::atomic<int> blobs_in_flight_{0};
  std::atomic<int> peak_blobs_in_flight_{0};
  std::string last_scope_;
};

}  // namespace cloak::agent::image::testing

#endif  // CLOAK_TESTS_AGENT_IMAGE_TEST_UTIL_H_
