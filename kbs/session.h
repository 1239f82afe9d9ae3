// RCAR sessions (nonces bound to a cookie) and attestation tokens.
#ifndef CLOAK_KBS_SESSION_H_
#define CLOAK_KBS_SESSION_H_

#include <deque>
#include <functional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/jose/jose.h"
#include "kbs/verify/claims.h"

namespace cloak::kbs {

using Clock = std::function<absl::Time()>;
// A validated tee-pubkey (common/jose).
using Jwk = jose::PublicJwk;

// Un-attested sessions live only as long as their nonce (docs/kbs.md,
// "Hostile load").
inline constexpr absl::Duration kDefaultNonceTtl = absl::Seconds(30);
inline constexpr absl::Duration kDefaultTokenTtl = absl::Minutes(5);
// Attested sessions (each backed by genuine evidence).
inline constexpr size_t kMaxSessions = 10000;
// Sessions that have not attested; past this the oldest is forgotten.
inline constexpr size_t kMaxPendingSessions = 4096;
// POST /kbs/v0/auth per client address: a token bucket.
inline constexpr double kDefaultAuthRate = 20;    // per second
inline constexpr double kDefaultAuthBurst = 100;
inline constexpr size_t kMaxRateClients = 4096;

struct Session {
  std::string id;     // 32 lowercase hex characters (the kbs-session-id cookie)
  std::string nonce;  // standard base64 of 32 random bytes
  std::string tee;
  absl::Time nonce_deadline;
  bool nonce_used = false;
  std::string token;  // set once attested
  absl::Time expires;  // when the record may be forgotten
};

// Sessions in two tables so that sessions which never attested cannot crowd
// out the others: un-attested ("pending") ones live `nonce_ttl` and, past
// `max_pending`, the oldest is forgotten to make room (a flood of auth
// requests only ever evicts its own sessions, oldest first); attested ones
// live until their token expires, at most `max_sessions` of them.
class SessionStore {
 public:
  explicit SessionStore(absl::Duration nonce_ttl = kDefaultNonceTtl, Clock clock = absl::Now,
                        size_t max_sessions = kMaxSessions,
                        size_t max_pending = kMaxPendingSessions)
      : nonce_ttl_(nonce_ttl),
        clock_(std::move(clock)),
        max_sessions_(max_sessions),
        max_pending_(max_pending) {}

  // A new session with a fresh nonce; never refused for lack of room (the
  // oldest un-attested session goes instead).
  absl::StatusOr<Session> Create(absl::string_view tee);
  // Takes the session's nonce for one attestation attempt: it can never be
  // used again, whatever the outcome. Unauthenticated with the reason
  // (unknown session, nonce already used, nonce expired).
  absl::StatusOr<Session> ConsumeNonce(absl::string_view id);
  // Records the token issued to the session, kept until `expires`.
  void SetToken(absl::string_view id, absl::string_view token, absl::Time expires);
  // The session's token; Unauthenticated if unknown or not attested.
  absl::StatusOr<std::string> Token(absl::string_view id);

  struct Counts {
    size_t pending = 0;
    size_t attested = 0;
    uint64_t evicted_pending = 0;  // forgotten to make room, since start
  };
  Counts counts();

 private:
  void ForgetExpiredLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration nonce_ttl_;
  const Clock clock_;
  const size_t max_sessions_;
  const size_t max_pending_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
  // Pending sessions in creation (= expiry) order; entries of sessions that
  // attested or were forgotten are skipped when they reach the front.
  std::deque<std::pair<absl::Time, std::string>> pending_order_ ABSL_GUARDED_BY(mu_);
  // Attested sessions by token expiry, oldest first (same lazy skipping).
  std::deque<std::pair<absl::Time, std::string>> attested_order_ ABSL_GUARDED_BY(mu_);
  size_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  size_t attested_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t evicted_pending_ ABSL_GUARDED_BY(mu_) = 0;
};

// Bounds how often one client address may start a session: a token bucket
// per address (`rate` per second, `burst` at once). At most `max_clients`
// buckets are kept; a full bucket carries no information and is dropped
// first, then the least recently seen. Memory stays bounded whatever the
// number of addresses.
class AuthRateLimiter {
 public:
  AuthRateLimiter(double rate = kDefaultAuthRate, double burst = kDefaultAuthBurst,
                  Clock clock = absl::Now, size_t max_clients = kMaxRateClients)
      : rate_(rate), burst_(burst), clock_(std::move(clock)), max_clients_(max_clients) {}
  // OK, or ResourceExhausted saying when to retry. A rate of 0 disables
  // the limit.
  absl::Status Admit(absl::string_view client);
  size_t clients();

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time last;
  };
  void MakeRoomLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const double rate_;
  const double burst_;
  const Clock clock_;
  const size_t max_clients_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

// What a valid token says.
struct TokenContents {
  Claims claims;
  Jwk tee_pubkey;
  absl::Time expires;
};

// Attestation tokens: JWTs (HS256 with the KBS's own key) carrying the
// verified claims and the tee-pubkey resources are encrypted to.
class TokenIssuer {
 public:
  TokenIssuer(std::string key, absl::Duration ttl = kDefaultTokenTtl, Clock clock = absl::Now)
      : key_(std::move(key)), ttl_(ttl), clock_(std::move(clock)) {}

  struct Issued {
    std::string token;
    absl::Time expires;
  };
  absl::StatusOr<Issued> Issue(const Claims& claims, const Jwk& tee_pubkey) const;
  // Unauthenticated with the reason: malformed, bad signature, expired.
  absl::StatusOr<TokenContents> Verify(absl::string_view token) const;

  absl::Duration ttl() const { return ttl_; }

 private:
  std::string key_;
  absl::Duration ttl_;
  Clock clock_;
};

}  // namespace cloak::kbs

#endif  // CLOAK_KBS_SESSION_H_
