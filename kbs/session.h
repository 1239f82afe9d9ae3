// RCAR sessions (nonces bound to a cookie) and attestation tokens.
#ifndef CLOAK_KBS_SESSION_H_
#define CLOAK_KBS_SESSION_H_

#include <functional>
#include <string>

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

inline constexpr absl::Duration kDefaultNonceTtl = absl::Seconds(60);
inline constexpr absl::Duration kDefaultTokenTtl = absl::Minutes(5);
inline constexpr size_t kMaxSessions = 10000;

struct Session {
  std::string id;     // 32 lowercase hex characters (the kbs-session-id cookie)
  std::string nonce;  // standard base64 of 32 random bytes
  std::string tee;
  absl::Time nonce_deadline;
  bool nonce_used = false;
  std::string token;  // set once attested
  absl::Time expires;  // when the record may be forgotten
};

class SessionStore {
 public:
  explicit SessionStore(absl::Duration nonce_ttl = kDefaultNonceTtl, Clock clock = absl::Now,
                        size_t max_sessions = kMaxSessions)
      : nonce_ttl_(nonce_ttl), clock_(std::move(clock)), max_sessions_(max_sessions) {}

  // A new session with a fresh nonce. ResourceExhausted when too many live.
  absl::StatusOr<Session> Create(absl::string_view tee);
  // Takes the session's nonce for one attestation attempt: it can never be
  // used again, whatever the outcome. Unauthenticated with the reason
  // (unknown session, nonce already used, nonce expired).
  absl::StatusOr<Session> ConsumeNonce(absl::string_view id);
  // Records the token issued to the session, kept until `expires`.
  void SetToken(absl::string_view id, absl::string_view token, absl::Time expires);
  // The session's token; Unauthenticated if unknown or not attested.
  absl::StatusOr<std::string> Token(absl::string_view id);

 private:
  void ForgetExpiredLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration nonce_ttl_;
  const Clock clock_;
  const size_t max_sessions_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
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
