#include "agent/image/registry_client.h"

#include <arpa/inet.h>

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/image/digest.h"
#include "agent/image/www_authenticate.h"
#include "absl/strings/cord.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace cloak::agent::image {
namespace {

constexpr size_t kMaxErrorBody = 4096;
// Marks an error that may pass if the request is made again.
constexpr char kTransientPayload[] = "cloak.dev/registry/transient";

absl::Status Transient(absl::Status s) {
  s.SetPayload(kTransientPayload, absl::Cord("1"));
  return s;
}
bool IsTransient(const absl::Status& s) { return s.GetPayload(kTransientPayload).has_value(); }
constexpr int64_t kMaxTokenBytes = 1 << 20;
constexpr long kMaxRedirects = 5;

CURL* AsCurl(void* p) { return static_cast<CURL*>(p); }

// Keeps printable ASCII only, bounded: registry text goes into our errors.
std::string Printable(absl::string_view s, size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) {
    out.push_back(c >= ' ' && c < 0x7f ? c : '?');
  }
  return out;
}

// "host[:port]" of an http(s) URL, or "".
std::string UrlHost(absl::string_view url) {
  size_t p = url.find("://");
  if (p == absl::string_view::npos) return "";
  absl::string_view rest = url.substr(p + 3);
  return std::string(rest.substr(0, rest.find_first_of("/?#")));
}

}  // namespace

struct RegistryClient::Response {
  long status = 0;
  // The body ended before its Content-Length (the connection was cut).
  bool partial = false;
  std::string content_type;
  std::string www_authenticate;
  std::string error_body;
  std::string url;
};

absl::StatusOr<std::unique_ptr<RegistryClient>> RegistryClient::Create(
    const RegistryOptions& options, const Reference& reference) {
  static std::once_flag once;
  static CURLcode global_init = CURLE_OK;
  std::call_once(once, [] { global_init = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (global_init != CURLE_OK) {
    return absl::InternalError(absl::StrCat("curl_global_init failed: ",
                                            curl_easy_strerror(global_init)));
  }
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");
  return std::unique_ptr<RegistryClient>(new RegistryClient(options, reference, curl));
}

bool IsHostRegistry(absl::string_view registry) {
  std::string host(registry);
  if (!host.empty() && host.front() == '[') {
    const size_t end = host.find(']');
    if (end == std::string::npos) return false;
    host = host.substr(1, end - 1);
  } else if (const size_t colon = host.find(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  if (host == "localhost" || host == "10.0.2.2") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

RegistryClient::RegistryClient(const RegistryOptions& options, const Reference& reference,
                               void* curl)
    : options_(options), reference_(reference), curl_(curl) {
  bool insecure = std::find(options_.insecure_registries.begin(),
                            options_.insecure_registries.end(),
                            reference_.registry) != options_.insecure_registries.end() ||
                  (options_.plain_http_to_host && IsHostRegistry(reference_.registry));
  scheme_ = insecure ? "http" : "https";
}

RegistryClient::~RegistryClient() { curl_easy_cleanup(AsCurl(curl_)); }

std::string RegistryClient::BaseUrl() const {
  return absl::StrCat(scheme_, "://", reference_.RegistryHost(), "/v2/", reference_.repository);
}

absl::StatusOr<RegistryClient::Response> RegistryClient::Perform(
    const std::string& url, const std::vector<std::string>& headers, bool blob, const Sink& sink) {
  CURL* h = AsCurl(curl_);
  curl_easy_reset(h);

  struct State {
    Response response;
    const Sink* sink;
    absl::Status sink_status;
  } state;
  state.sink = &sink;
  state.response.url = url;

  auto header_cb = +[](char* data, size_t size, size_t n, void* user) -> size_t {
    auto* s = static_cast<State*>(user);
    absl::string_view line(data, size * n);
    line = absl::StripTrailingAsciiWhitespace(line);
    if (absl::StartsWith(line, "HTTP/")) {
      // A new response (after a redirect or 100-continue): start over.
      s->response.content_type.clear();
      s->response.www_authenticate.clear();
      size_t sp = line.find(' ');
      s->response.status =
          sp == absl::string_view::npos ? 0 : std::atol(std::string(line.substr(sp + 1, 3)).c_str());
      return size * n;
    }
    size_t colon = line.find(':');
    if (colon != absl::string_view::npos) {
      std::string key = absl::AsciiStrToLower(line.substr(0, colon));
      absl::string_view value = absl::StripLeadingAsciiWhitespace(line.substr(colon + 1));
      if (key == "content-type") s->response.content_type = std::string(value);
      if (key == "www-authenticate" && s->response.www_authenticate.empty()) {
        s->response.www_authenticate = std::string(value);
      }
    }
    return size * n;
  };
  auto write_cb = +[](char* data, size_t size, size_t n, void* user) -> size_t {
    auto* s = static_cast<State*>(user);
    absl::string_view chunk(data, size * n);
    if (s->response.status >= 200 && s->response.status < 300) {
      s->sink_status = (*s->sink)(chunk);
      if (!s->sink_status.ok()) return 0;  // aborts the transfer
    } else if (s->response.error_body.size() < kMaxErrorBody) {
      absl::StrAppend(&s->response.error_body,
                      chunk.substr(0, kMaxErrorBody - s->response.error_body.size()));
    }
    return size * n;
  };

  struct curl_slist* list = nullptr;
  for (const std::string& hdr : headers) list = curl_slist_append(list, hdr.c_str());
  if (!authorization_.empty()) list = curl_slist_append(list, authorization_.c_str());
  std::unique_ptr<struct curl_slist, decltype(&curl_slist_free_all)> list_owner(
      list, &curl_slist_free_all);

  const char* protocols = scheme_ == "http" ? "http,https" : "https";
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols);
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, blob ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, kMaxRedirects);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(
                       blob ? options_.blob_timeout : options_.request_timeout)));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(absl::ToInt64Seconds(options_.low_speed_time)));
  curl_easy_setopt(h, CURLOPT_PROXY, options_.proxy.c_str());
  curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &state);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &state);
  if (!options_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str());

  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (status != 0) state.response.status = status;
  if (rc == CURLE_WRITE_ERROR && !state.sink_status.ok()) return state.sink_status;
  if (rc == CURLE_PARTIAL_FILE && state.response.status >= 200 && state.response.status < 300) {
    // The body is shorter than Content-Length: let the caller's verifier
    // report the truncation with the blob's name.
    state.response.partial = true;
    return state.response;
  }
  if (rc != CURLE_OK) {
    std::string what = absl::StrCat("GET ", Printable(url, 300), ": ", curl_easy_strerror(rc));
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        return Transient(absl::DeadlineExceededError(what));
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_CONNECT:
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_GOT_NOTHING:
        return Transient(absl::UnavailableError(
            absl::StrCat(what, "; is the registry reachable from the guest?")));
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CACERT_BADFILE:
        return absl::UnavailableError(absl::StrCat(
            what, "; check the CA file, or list the registry as insecure if it speaks plain HTTP"));
      case CURLE_UNSUPPORTED_PROTOCOL:
        return absl::PermissionDeniedError(absl::StrCat(
            what, "; a redirect to plain HTTP from an HTTPS registry is not followed"));
      case CURLE_TOO_MANY_REDIRECTS:
        return absl::FailedPreconditionError(what);
      default:
        return absl::UnavailableError(what);
    }
  }
  return state.response;
}

absl::Status RegistryClient::Authenticate(absl::string_view www_authenticate) {
  std::string registry = reference_.registry;
  if (www_authenticate.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "registry ", registry, " answered 401 without a WWW-Authenticate challenge"));
  }
  ASSIGN_OR_RETURN(AuthChallenge challenge, ParseWwwAuthenticate(www_authenticate));
  const Credentials* creds = nullptr;
  if (auto it = options_.credentials.find(registry); it != options_.credentials.end()) {
    creds = &it->second;
  }
  if (challenge.scheme == "basic") {
    if (creds == nullptr) {
      return absl::UnauthenticatedError(absl::StrCat(
          "registry ", registry, " requires basic credentials; none are configured for it"));
    }
    authorization_ = absl::StrCat(
        "Authorization: Basic ", absl::Base64Escape(absl::StrCat(creds->username, ":",
                                                                 creds->password)));
    return absl::OkStatus();
  }
  if (challenge.scheme != "bearer") {
    return absl::UnimplementedError(absl::StrCat("registry ", registry,
                                                 " asks for unsupported auth scheme \"",
                                                 Printable(challenge.scheme), "\""));
  }
  std::string realm = challenge.params["realm"];
  if (!absl::StartsWith(realm, "https://") && !absl::StartsWith(realm, "http://")) {
    return absl::UnauthenticatedError(absl::StrCat(
        "registry ", registry, " sent a bearer challenge with realm \"", Printable(realm),
        "\", which is not an http(s) URL"));
  }
  bool realm_plain = absl::StartsWith(realm, "http://");
  if (realm_plain && scheme_ == "https") {
    return absl::PermissionDeniedError(absl::StrCat(
        "registry ", registry, " sent a token realm over plain HTTP (", Printable(realm),
        "); refusing to downgrade from HTTPS"));
  }
  std::string scope = challenge.params.count("scope") != 0
                          ? challenge.params["scope"]
                          : absl::StrCat("repository:", reference_.repository, ":pull");
  CURL* h = AsCurl(curl_);
  auto escape = [h](const std::string& s) {
    char* e = curl_easy_escape(h, s.c_str(), static_cast<int>(s.size()));
    std::string out = e != nullptr ? e : "";
    curl_free(e);
    return out;
  };
  std::string url = realm;
  absl::StrAppend(&url, absl::StrContains(realm, '?') ? "&" : "?");
  bool first = true;
  if (challenge.params.count("service") != 0) {
    absl::StrAppend(&url, "service=", escape(challenge.params["service"]));
    first = false;
  }
  absl::StrAppend(&url, first ? "" : "&", "scope=", escape(scope));

  authorization_.clear();
  if (creds != nullptr) {
    authorization_ = absl::StrCat(
        "Authorization: Basic ", absl::Base64Escape(absl::StrCat(creds->username, ":",
                                                                 creds->password)));
  }
  std::string body;
  auto sink = [&body](absl::string_view chunk) {
    if (static_cast<int64_t>(body.size() + chunk.size()) > kMaxTokenBytes) {
      return absl::ResourceExhaustedError("token response is larger than 1 MiB");
    }
    absl::StrAppend(&body, chunk);
    return absl::OkStatus();
  };
  auto response = Perform(url, {}, /*blob=*/false, sink);
  authorization_.clear();
  if (!response.ok()) {
    return Annotate(response.status(), absl::StrCat("fetching a token for ", registry));
  }
  if (response->status != 200) {
    return absl::UnauthenticatedError(absl::StrCat(
        "token server ", UrlHost(realm), " for registry ", registry, " answered HTTP ",
        response->status, " for scope ", Printable(scope), ": ",
        Printable(response->error_body), creds == nullptr ? " (no credentials configured)" : ""));
  }
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string token;
  if (!j.is_discarded() && j.is_object()) {
    if (j.contains("token") && j["token"].is_string()) token = j["token"].get<std::string>();
    if (token.empty() && j.contains("access_token") && j["access_token"].is_string()) {
      token = j["access_token"].get<std::string>();
    }
  }
  if (token.empty() || token.find_first_of("\r\n") != std::string::npos) {
    return absl::UnauthenticatedError(absl::StrCat("token server ", UrlHost(realm),
                                                   " for registry ", registry,
                                                   " sent no usable token"));
  }
  authorization_ = absl::StrCat("Authorization: Bearer ", token);
  return absl::OkStatus();
}

absl::StatusOr<RegistryClient::Response> RegistryClient::PerformWithAuth(
    const std::string& url, const std::vector<std::string>& headers, bool blob, const Sink& sink) {
  ASSIGN_OR_RETURN(Response response, Perform(url, headers, blob, sink));
  if (response.status != 401) return response;
  RETURN_IF_ERROR(Authenticate(response.www_authenticate));
  ASSIGN_OR_RETURN(response, Perform(url, headers, blob, sink));
  if (response.status == 401) {
    return absl::UnauthenticatedError(absl::StrCat(
        "registry ", reference_.registry, " rejected our credentials for ",
        reference_.repository, " (HTTP 401 after authenticating): ",
        Printable(response.error_body)));
  }
  return response;
}

absl::Status RegistryClient::HttpError(const Response& response, absl::string_view what) const {
  // Registry errors: {"errors":[{"code":"MANIFEST_UNKNOWN","message":"..."}]}
  std::string detail;
  nlohmann::json j = nlohmann::json::parse(response.error_body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("errors") && j["errors"].is_array() &&
      !j["errors"].empty() && j["errors"][0].is_object()) {
    const auto& e = j["errors"][0];
    if (e.contains("code") && e["code"].is_string()) detail = e["code"].get<std::string>();
    if (e.contains("message") && e["message"].is_string()) {
      absl::StrAppend(&detail, detail.empty() ? "" : ": ", e["message"].get<std::string>());
    }
  } else {
    detail = response.error_body;
  }
  std::string msg = absl::StrCat(what, ": HTTP ", response.status, " from ",
                                 reference_.RegistryHost());
  if (!detail.empty()) absl::StrAppend(&msg, " (", Printable(detail), ")");
  switch (response.status) {
    case 404:
      return absl::NotFoundError(msg);
    case 401:
      return absl::UnauthenticatedError(msg);
    case 403:
      return absl::PermissionDeniedError(msg);
    case 429:
      return Transient(
          absl::ResourceExhaustedError(absl::StrCat(msg, "; rate limited, retry later")));
    default:
      if (response.status >= 500) return Transient(absl::UnavailableError(msg));
      return absl::FailedPreconditionError(msg);
  }
}

absl::Duration RetryDelay(const RegistryOptions& options, int retry, double jitter) {
  absl::Duration d = options.retry_backoff;
  for (int i = 1; i < retry && d < options.retry_max_backoff; ++i) d *= 2;
  d = std::min(d, options.retry_max_backoff);
  return d * std::clamp(jitter, 0.5, 1.5);
}

absl::Status RegistryClient::Retrying(absl::string_view what,
                                      const std::function<absl::Status()>& attempt) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  for (int n = 0;; ++n) {
    absl::Status s = attempt();
    if (s.ok() || !IsTransient(s)) return s;
    if (n >= options_.retries) {
      if (n == 0) return s;
      return absl::Status(
          s.code(), absl::StrCat(what, " from registry ", reference_.RegistryHost(),
                                 " failed after ", n + 1, " attempts (", n,
                                 " retries, data.agent.pull_retries); last error: ", s.message()));
    }
    const absl::Duration wait =
        RetryDelay(options_, n + 1, std::uniform_real_distribution<double>(0.5, 1.5)(rng));
    Logger("image")->warn("{} from registry {}: {}; retry {}/{} in {}", std::string(what),
                          reference_.RegistryHost(), std::string(s.message()), n + 1,
                          options_.retries,
                          absl::FormatDuration(absl::Trunc(wait, absl::Milliseconds(1))));
    absl::SleepFor(wait);
  }
}

absl::StatusOr<FetchedManifest> RegistryClient::GetManifest(absl::string_view ref) {
  FetchedManifest out;
  RETURN_IF_ERROR(Retrying(absl::StrCat("manifest ", Printable(ref)), [&]() -> absl::Status {
    ASSIGN_OR_RETURN(out, GetManifestOnce(ref));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::string> RegistryClient::GetBlob(const Descriptor& blob,
                                                    absl::string_view what, int64_t max_bytes) {
  std::string out;
  RETURN_IF_ERROR(Retrying(absl::StrCat(what, " ", blob.digest), [&]() -> absl::Status {
    ASSIGN_OR_RETURN(out, GetBlobOnce(blob, what, max_bytes));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status RegistryClient::DownloadBlob(const Descriptor& blob, absl::string_view what,
                                          int fd) {
  bool first = true;
  return Retrying(absl::StrCat(what, " ", blob.digest), [&]() -> absl::Status {
    if (!first) {
      // Start over: the staged bytes of the failed attempt go.
      if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) {
        return ErrnoError(errno, "rewinding the staging file of ", what, " ", blob.digest);
      }
    }
    first = false;
    return DownloadBlobOnce(blob, what, fd);
  });
}

absl::StatusOr<FetchedManifest> RegistryClient::GetManifestOnce(absl::string_view ref) {
  bool by_digest = absl::StartsWith(ref, "sha256:");
  if (by_digest && !IsValidSha256Digest(ref)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid manifest digest ", Printable(ref)));
  }
  FetchedManifest m;
  int64_t max = options_.max_manifest_bytes;
  auto sink = [&m, max, ref](absl::string_view chunk) {
    if (static_cast<int64_t>(m.body.size() + chunk.size()) > max) {
      return absl::ResourceExhaustedError(
          absl::StrCat("manifest ", ref, " is larger than the limit of ", max, " bytes"));
    }
    absl::StrAppend(&m.body, chunk);
    return absl::OkStatus();
  };
  std::string url = absl::StrCat(BaseUrl(), "/manifests/", ref);
  ASSIGN_OR_RETURN(Response response,
                   PerformWithAuth(url, {ManifestAcceptHeader()}, /*blob=*/false, sink));
  if (response.status != 200) {
    Reference shown = reference_;
    if (by_digest) {
      shown.tag.clear();
      shown.digest = std::string(ref);
    }
    return HttpError(response, absl::StrCat("image ", shown.String(), " not resolved"));
  }
  m.content_type = response.content_type;
  m.digest = Sha256Digest(m.body);
  if (by_digest && m.digest != ref) {
    return absl::DataLossError(absl::StrCat("manifest ", ref, " from ", reference_.registry,
                                            " hashes to ", m.digest,
                                            "; the registry sent different content"));
  }
  return m;
}

absl::StatusOr<std::string> RegistryClient::GetBlobOnce(const Descriptor& blob,
                                                        absl::string_view what,
                                                        int64_t max_bytes) {
  if (blob.size > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(what, " ", blob.digest, " is ", blob.size,
                                                     " bytes, more than the limit of ", max_bytes));
  }
  ASSIGN_OR_RETURN(BlobVerifier verifier, BlobVerifier::Create(what, blob.digest, blob.size));
  std::string out;
  auto sink = [&](absl::string_view chunk) {
    RETURN_IF_ERROR(verifier.Update(chunk));
    absl::StrAppend(&out, chunk);
    return absl::OkStatus();
  };
  std::string url = absl::StrCat(BaseUrl(), "/blobs/", blob.digest);
  ASSIGN_OR_RETURN(Response response, PerformWithAuth(url, {}, /*blob=*/true, sink));
  if (response.status != 200) {
    return HttpError(response, absl::StrCat(what, " ", blob.digest, " not fetched"));
  }
  if (absl::Status s = verifier.Finish(); !s.ok()) return response.partial ? Transient(s) : s;
  return out;
}

absl::Status RegistryClient::DownloadBlobOnce(const Descriptor& blob, absl::string_view what,
                                              int fd) {
  ASSIGN_OR_RETURN(BlobVerifier verifier, BlobVerifier::Create(what, blob.digest, blob.size));
  auto sink = [&](absl::string_view chunk) {
    RETURN_IF_ERROR(verifier.Update(chunk));
    return Annotate(WriteAll(fd, chunk), absl::StrCat("writing ", what, " ", blob.digest));
  };
  std::string url = absl::StrCat(BaseUrl(), "/blobs/", blob.digest);
  ASSIGN_OR_RETURN(Response response, PerformWithAuth(url, {}, /*blob=*/true, sink));
  if (response.status != 200) {
    return HttpError(response, absl::StrCat(what, " ", blob.digest, " not fetched"));
  }
  absl::Status s = verifier.Finish();
  return !s.ok() && response.partial ? Transient(s) : s;
}

}  // namespace cloak::agent::image
