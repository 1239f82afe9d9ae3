#include "tests/agent/image/test_util.h"

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/image/digest.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace cloak::agent::image::testing {

using nlohmann::json;

TarBuilder& TarBuilder::File(const std::string& path, const std::string& content, int mode) {
  entries_.push_back({path, AE_IFREG, mode, content, "", "", 0, 0});
  return *this;
}
TarBuilder& TarBuilder::Dir(const std::string& path, int mode) {
  entries_.push_back({path, AE_IFDIR, mode, "", "", "", 0, 0});
  return *this;
}
TarBuilder& TarBuilder::Symlink(const std::string& path, const std::string& target) {
  entries_.push_back({path, AE_IFLNK, 0777, "", target, "", 0, 0});
  return *this;
}
TarBuilder& TarBuilder::Hardlink(const std::string& path, const std::string& target) {
  entries_.push_back({path, AE_IFREG, 0644, "", "", target, 0, 0});
  return *this;
}
TarBuilder& TarBuilder::CharDevice(const std::string& path, int major, int minor) {
  entries_.push_back({path, AE_IFCHR, 0666, "", "", "", major, minor});
  return *this;
}
TarBuilder& TarBuilder::BlockDevice(const std::string& path, int major, int minor) {
  entries_.push_back({path, AE_IFBLK, 0660, "", "", "", major, minor});
  return *this;
}
TarBuilder& TarBuilder::Xattr(const std::string& name, const std::string& value) {
  if (!entries_.empty()) entries_.back().xattrs.emplace_back(name, value);
  return *this;
}
TarBuilder& TarBuilder::Fifo(const std::string& path) {
  entries_.push_back({path, AE_IFIFO, 0644, "", "", "", 0, 0});
  return *this;
}

std::string TarBuilder::Build(Compression compression) const {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (compression == Compression::kGzip) archive_write_add_filter_gzip(a);
  if (compression == Compression::kZstd) archive_write_add_filter_zstd(a);
  archive_write_set_bytes_in_last_block(a, 1);
  auto write_cb = +[](struct archive*, void* user, const void* buf, size_t n) -> la_ssize_t {
    static_cast<std::string*>(user)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  };
  archive_write_open(a, &out, nullptr, write_cb, nullptr);
  for (const Entry& e : entries_) {
    struct archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_mtime(entry, 1700000000, 0);
    archive_entry_set_uid(entry, 0);
    archive_entry_set_gid(entry, 0);
    if (!e.hardlink.empty()) {
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_perm(entry, e.mode);
      archive_entry_set_hardlink(entry, e.hardlink.c_str());
      archive_entry_set_size(entry, 0);
    } else {
      archive_entry_set_filetype(entry, e.type);
      archive_entry_set_perm(entry, e.mode);
      if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.link.c_str());
      if (e.type == AE_IFCHR || e.type == AE_IFBLK) {
        archive_entry_set_rdevmajor(entry, e.major);
        archive_entry_set_rdevminor(entry, e.minor);
      }
      archive_entry_set_size(entry, e.type == AE_IFREG ? static_cast<la_int64_t>(e.content.size())
                                                       : 0);
    }
    for (const auto& [name, value] : e.xattrs) {
      archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), value.size());
    }
    archive_write_header(a, entry);
    if (e.type == AE_IFREG && e.hardlink.empty() && !e.content.empty()) {
      archive_write_data(a, e.content.data(), e.content.size());
    }
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

std::string LayerMediaType(Compression compression) {
  switch (compression) {
    case Compression::kGzip:
      return "application/vnd.oci.image.layer.v1.tar+gzip";
    case Compression::kZstd:
      return "application/vnd.oci.image.layer.v1.tar+zstd";
    case Compression::kNone:
      break;
  }
  return "application/vnd.oci.image.layer.v1.tar";
}

TestImage MakeImage(const std::string& config_object_json,
                    const std::vector<std::pair<std::string, std::string>>& layers,
                    const std::string& architecture,
                    const std::vector<std::string>& layer_diff_ids) {
  TestImage image;
  json diff_ids = json::array();
  json layer_descs = json::array();
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& [type, data] = layers[i];
    TestImage::Layer l{type, data, Sha256Digest(data)};
    // diff_ids are digests of the uncompressed tars; the puller does not
    // check them, so unless given the blob digest stands in.
    diff_ids.push_back(i < layer_diff_ids.size() ? layer_diff_ids[i] : l.digest);
    layer_descs.push_back(
        {{"mediaType", type}, {"digest", l.digest}, {"size", static_cast<int64_t>(data.size())}});
    image.layers.push_back(std::move(l));
  }
  json config = {{"architecture", architecture},
                 {"os", "linux"},
                 {"config", json::parse(config_object_json)},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  image.config_json = config.dump();
  image.config_digest = Sha256Digest(image.config_json);
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kOciManifest},
                   {"config",
                    {{"mediaType", kOciConfig},
                     {"digest", image.config_digest},
                     {"size", static_cast<int64_t>(image.config_json.size())}}},
                   {"layers", layer_descs}};
  image.manifest_json = manifest.dump();
  image.manifest_digest = Sha256Digest(image.manifest_json);
  return image;
}

std::string MakeIndex(
    const std::vector<std::tuple<std::string, int64_t, std::string>>& manifests) {
  json list = json::array();
  for (const auto& [digest, size, arch] : manifests) {
    list.push_back({{"mediaType", kOciManifest},
                    {"digest", digest},
                    {"size", size},
                    {"platform", {{"os", "linux"}, {"architecture", arch}}}});
  }
  return json({{"schemaVersion", 2}, {"mediaType", kOciIndex}, {"manifests", list}}).dump();
}

absl::Status WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status WriteOciLayout(const std::string& dir, const TestImage& image,
                            const std::string& tag) {
  std::filesystem::create_directories(dir + "/blobs/sha256");
  auto blob = [&](const std::string& digest, const std::string& data) {
    return WriteFile(absl::StrCat(dir, "/blobs/sha256/", digest.substr(7)), data);
  };
  RETURN_IF_ERROR(WriteFile(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  RETURN_IF_ERROR(blob(image.config_digest, image.config_json));
  for (const auto& l : image.layers) RETURN_IF_ERROR(blob(l.digest, l.data));
  RETURN_IF_ERROR(blob(image.manifest_digest, image.manifest_json));
  json index = {{"schemaVersion", 2},
                {"manifests",
                 {{{"mediaType", kOciManifest},
                   {"digest", image.manifest_digest},
                   {"size", static_cast<int64_t>(image.manifest_json.size())},
                   {"annotations", {{"org.opencontainers.image.ref.name", tag}}}}}}};
  return WriteFile(dir + "/index.json", index.dump());
}

// ---------------------------------------------------------------- server

FakeHttpServer::FakeHttpServer(Handler handler) : handler_(std::move(handler)) {}

FakeHttpServer::~FakeHttpServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  for (std::thread& t : connections_) t.join();
  if (listen_fd_ >= 0) close(listen_fd_);
}

absl::Status FakeHttpServer::Start() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return ErrnoError(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoError(errno, "bind");
  }
  if (listen(listen_fd_, 16) != 0) return ErrnoError(errno, "listen");
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
  return absl::OkStatus();
}

void FakeHttpServer::Serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_seen_;
    if (int left = drop_.load(); left > 0 && drop_.compare_exchange_strong(left, left - 1)) {
      close(fd);
      continue;
    }
    // One thread per connection, so parallel clients are served in parallel.
    connections_.emplace_back([this, fd] {
      HandleConnection(fd);
      close(fd);
    });
  }
}

void FakeHttpServer::HandleConnection(int fd) {
  std::string in;
  char buf[4096];
  while (!absl::StrContains(in, "\r\n\r\n")) {
    // Not HTTP (e.g. a TLS ClientHello): hang up at once.
    if (!in.empty() && !absl::ascii_isupper(static_cast<unsigned char>(in[0]))) return;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return;
    in.append(buf, static_cast<size_t>(n));
  }
  HttpRequest req;
  std::vector<std::string> lines = absl::StrSplit(in.substr(0, in.find("\r\n\r\n")), "\r\n");
  std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
  if (first.size() < 2) return;
  req.method = first[0];
  req.target = first[1];
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    req.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  HttpResponse resp = handler_(req);
  int64_t length =
      resp.declared_length >= 0 ? resp.declared_length : static_cast<int64_t>(resp.body.size());
  std::string out = absl::StrCat("HTTP/1.1 ", resp.status, " X\r\nContent-Length: ", length,
                                 "\r\nConnection: close\r\n");
  for (const auto& [k, v] : resp.headers) absl::StrAppend(&out, k, ": ", v, "\r\n");
  absl::StrAppend(&out, "\r\n");
  if (req.method != "HEAD") out += resp.body;
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
}

// ----------------------------------------------------------- flaky proxy

FlakyProxy::~FlakyProxy() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  for (std::thread& t : pumps_) t.join();
  if (listen_fd_ >= 0) close(listen_fd_);
}

absl::Status FlakyProxy::Start() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return ErrnoError(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoError(errno, "bind");
  }
  if (listen(listen_fd_, 16) != 0) return ErrnoError(errno, "listen");
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
  return absl::OkStatus();
}

void FlakyProxy::Serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_seen_;
    if (int left = drop_.load(); left > 0 && drop_.compare_exchange_strong(left, left - 1)) {
      ++dropped_;
      close(fd);
      continue;
    }
    pumps_.emplace_back([this, fd] {
      Pump(fd);
      close(fd);
    });
  }
}

void FlakyProxy::Pump(int client) {
  int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (up < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
  if (connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(up);
    return;
  }
  auto send_all = [](int fd, const char* data, size_t n) {
    while (n > 0) {
      ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      data += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  };
  int64_t cut_left = -1;  // >= 0: bytes of the response still passed on
  bool blob_request = false;
  char buf[16384];
  while (!stop_) {
    pollfd fds[2] = {{client, POLLIN, 0}, {up, POLLIN, 0}};
    if (poll(fds, 2, 100) <= 0) continue;
    if (fds[0].revents != 0) {
      ssize_t n = read(client, buf, sizeof(buf));
      if (n <= 0) break;
      // The request line names a blob: its response may be cut.
      if (absl::StrContains(absl::string_view(buf, static_cast<size_t>(n)), "/blobs/")) {
        blob_request = true;
      }
      if (!send_all(up, buf, static_cast<size_t>(n))) break;
    }
    if (fds[1].revents != 0) {
      ssize_t n = read(up, buf, sizeof(buf));
      if (n <= 0) break;
      if (blob_request) {
        // The answer's head: cut it only if its body is longer than the cut.
        blob_request = false;
        const std::string head =
            absl::AsciiStrToLower(absl::string_view(buf, static_cast<size_t>(n)));
        const size_t at = head.find("content-length:");
        const int64_t length =
            at == std::string::npos ? -1 : std::atoll(head.c_str() + at + 15);
        if (length > cut_after_.load()) {
          if (int left = cuts_.load(); left > 0 && cuts_.compare_exchange_strong(left, left - 1)) {
            cut_left = cut_after_.load();
          }
        }
      }
      size_t pass = static_cast<size_t>(n);
      if (cut_left >= 0) pass = static_cast<size_t>(std::min<int64_t>(cut_left, n));
      if (pass > 0 && !send_all(client, buf, pass)) break;
      if (cut_left >= 0) {
        cut_left -= static_cast<int64_t>(pass);
        if (cut_left == 0) {
          ++cut_;
          break;  // the connection goes mid-body
        }
      }
    }
  }
  close(up);
}

// -------------------------------------------------------------- registry

FakeRegistry::FakeRegistry()
    : server_([this](const HttpRequest& r) {
        const bool blob = absl::StrContains(r.target, "/blobs/");
        if (!blob || blob_delay_ == absl::ZeroDuration()) return Handle(r);
        // Slow blobs, counted while in flight: how many a client fetches at once.
        int now = ++blobs_in_flight_;
        for (int peak = peak_blobs_in_flight_; now > peak &&
                                               !peak_blobs_in_flight_.compare_exchange_weak(peak, now);) {
        }
        absl::SleepFor(blob_delay_);
        HttpResponse response = Handle(r);
        --blobs_in_flight_;
        return response;
      }) {}

void FakeRegistry::AddImage(const std::string& repo, const std::string& tag,
                            const TestImage& image) {
  AddManifest(repo, tag, image.manifest_json, kOciManifest);
  AddManifest(repo, image.manifest_digest, image.manifest_json, kOciManifest);
  AddBlob(image.config_digest, image.config_json);
  for (const auto& l : image.layers) AddBlob(l.digest, l.data);
}

void FakeRegistry::AddManifest(const std::string& repo, const std::string& ref,
                               const std::string& body, const std::string& media_type) {
  std::lock_guard<std::mutex> lock(mu_);
  manifests_[absl::StrCat(repo, "/manifests/", ref)] = {body, media_type};
}

void FakeRegistry::AddBlob(const std::string& digest, const std::string& data) {
  std::lock_guard<std::mutex> lock(mu_);
  blobs_[digest] = data;
}

void FakeRegistry::TruncateBlob(const std::string& digest, int64_t bytes, int times) {
  std::lock_guard<std::mutex> lock(mu_);
  truncate_[digest] = {bytes, times};
}

int FakeRegistry::blob_requests(const std::string& digest) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blob_requests_.find(digest);
  return it == blob_requests_.end() ? 0 : it->second;
}

std::string FakeRegistry::last_scope() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_scope_;
}

HttpResponse FakeRegistry::Handle(const HttpRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string kToken = "test-token-42";
  std::string path = request.target.substr(0, request.target.find('?'));
  if (path == "/token") {
    ++token_requests_;
    size_t s = request.target.find("scope=");
    last_scope_ = s == std::string::npos ? "" : request.target.substr(s + 6);
    return {200, {{"Content-Type", "application/json"}},
            json({{"token", kToken}}).dump(), -1};
  }
  auto not_found = [](const std::string& code) {
    return HttpResponse{404, {{"Content-Type", "application/json"}},
                        json({{"errors", {{{"code", code}, {"message", "unknown"}}}}}).dump(),
                        -1};
  };
  std::string digest;
  if (absl::StartsWith(path, "/redirected/")) {
    digest = path.substr(strlen("/redirected/"));
  } else {
    if (require_token_) {
      auto it = request.headers.find("authorization");
      if (it == request.headers.end() || it->second != "Bearer " + kToken) {
        return {401,
                {{"WWW-Authenticate",
                  absl::StrCat("Bearer realm=\"http://", server_.hostport(),
                               "/token\",service=\"fake-registry\",scope=\"repository:",
                               "cloak/test:pull\"")}},
                R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})",
                -1};
      }
    }
    if (!absl::StartsWith(path, "/v2/")) return not_found("NAME_UNKNOWN");
    std::string rest = path.substr(4);
    if (absl::StrContains(rest, "/manifests/")) {
      auto it = manifests_.find(rest);
      if (it == manifests_.end()) return not_found("MANIFEST_UNKNOWN");
      return {200, {{"Content-Type", it->second.second}}, it->second.first, -1};
    }
    size_t b = rest.find("/blobs/");
    if (b == std::string::npos) return not_found("NAME_UNKNOWN");
    digest = rest.substr(b + 7);
    if (redirect_blobs_) {
      return {307, {{"Location", absl::StrCat("http://", server_.hostport(), "/redirected/",
                                              digest)}},
              "", -1};
    }
  }
  auto it = blobs_.find(digest);
  if (it == blobs_.end()) return not_found("BLOB_UNKNOWN");
  HttpResponse r{200, {{"Content-Type", "application/octet-stream"}}, it->second, -1};
  ++blob_requests_[digest];
  if (auto t = truncate_.find(digest); t != truncate_.end() && t->second.second != 0) {
    r.declared_length = static_cast<int64_t>(r.body.size());
    r.body = r.body.substr(0, static_cast<size_t>(t->second.first));
    if (t->second.second > 0) --t->second.second;
  }
  return r;
}

}  // namespace cloak::agent::image::testing
