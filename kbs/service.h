// The Trustee KBS protocol, version 0.4.0 (docs/formats.md,
// "KBS protocol"), as a pure request →
// response function: no sockets here (server.h is the HTTP shell).
//
//   POST /kbs/v0/auth                        Request → Challenge + kbs-session-id cookie
//   POST /kbs/v0/attest                      Attestation → {"token"} (+ cookie)
//   GET  /kbs/v0/resource/<repo>/<type>/<tag> → JWE to the tee-pubkey
#ifndef CLOAK_KBS_SERVICE_H_
#define CLOAK_KBS_SERVICE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kbs/session.h"
#include "kbs/store.h"
#include "kbs/verify/verifier.h"

namespace cloak::kbs {

inline constexpr char kProtocolVersion[] = "0.4.0";
inline constexpr char kSessionCookie[] = "kbs-session-id";
inline constexpr size_t kMaxRequestBody = 1 << 20;

struct KbsConfig {
  std::string state_dir;
  VerifierConfig verifier;
  absl::Duration nonce_ttl = kDefaultNonceTtl;
  absl::Duration token_ttl = kDefaultTokenTtl;
  // Hostile load (docs/kbs.md): un-attested sessions kept, and auth
  // requests per client address (per second, at once; rate 0: no limit).
  size_t max_pending_sessions = kMaxPendingSessions;
  double auth_rate = kDefaultAuthRate;
  double auth_burst = kDefaultAuthBurst;
  // HTTP shell only (server.h).
  std::string listen_host = "127.0.0.1";
  int port = 8080;
  std::string tls_cert;  // PEM files; both or neither
  std::string tls_key;
  bool insecure_http = false;  // plain HTTP: loopback addresses only
};

struct HttpRequest {
  std::string method;  // "GET", "POST"
  std::string path;
  std::string body;
  std::string cookie;         // the Cookie header
  std::string authorization;  // the Authorization header
  // The client's address as the auth rate limit counts it (server.cc's
  // RateLimitKey); "" (in-process callers) is not limited.
  std::string client;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

// Trustee-style error body: {"type": ".../errors/<type>", "detail": ...}.
HttpResponse ErrorResponse(int status, absl::string_view type, absl::string_view detail);

// The value of cookie `name` in a Cookie header, or "".
std::string CookieValue(absl::string_view header, absl::string_view name);

class KbsService {
 public:
  static absl::StatusOr<std::unique_ptr<KbsService>> Create(const KbsConfig& config,
                                                            Clock clock = absl::Now);
  // Never throws; every failure becomes an HTTP error with a clear detail.
  HttpResponse Handle(const HttpRequest& request);
  SessionStore::Counts session_counts() { return sessions_.counts(); }

 private:
  KbsService(const KbsConfig& config, ResourceStore store, std::string token_key, Clock clock);
  HttpResponse Auth(const HttpRequest& request);
  HttpResponse Attest(const HttpRequest& request);
  HttpResponse Resource(const HttpRequest& request, absl::string_view path);
  std::string SessionCookie(absl::string_view id, absl::Duration max_age) const;

  KbsConfig config_;
  ResourceStore store_;
  SessionStore sessions_;
  AuthRateLimiter auth_limiter_;
  TokenIssuer tokens_;
  // Refused auth requests are summarised in the log, not logged one by one.
  absl::Mutex refusals_mu_;
  uint64_t refusals_ ABSL_GUARDED_BY(refusals_mu_) = 0;
  absl::Time refusals_logged_ ABSL_GUARDED_BY(refusals_mu_) = absl::InfinitePast();
  absl::flat_hash_map<std::string, std::unique_ptr<Verifier>> verifiers_;
};

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_SERVICE_H_
