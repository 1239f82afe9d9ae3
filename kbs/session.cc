#include "kbs/session.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace cloak::kbs {

void SessionStore::ForgetExpiredLocked(absl::Time now) {
  while (!pending_order_.empty() && pending_order_.front().first <= now) {
    auto it = sessions_.find(pending_order_.front().second);
    if (it != sessions_.end() && it->second.token.empty()) {
      sessions_.erase(it);
      --pending_;
    }
    pending_order_.pop_front();
  }
  while (!attested_order_.empty() && attested_order_.front().first <= now) {
    auto it = sessions_.find(attested_order_.front().second);
    if (it != sessions_.end() && !it->second.token.empty() && it->second.expires <= now) {
      sessions_.erase(it);
      --attested_;
    }
    attested_order_.pop_front();
  }
}

absl::StatusOr<Session> SessionStore::Create(absl::string_view tee) {
  ASSIGN_OR_RETURN(Bytes id, tee::RandomBytes(16));
  ASSIGN_OR_RETURN(Bytes nonce, tee::RandomBytes(32));
  absl::Time now = clock_();
  Session s;
  s.id = tee::HexEncode(id);
  s.nonce = tee::Base64Encode(nonce);
  s.tee = std::string(tee);
  s.nonce_deadline = now + nonce_ttl_;
  s.expires = s.nonce_deadline;
  absl::MutexLock lock(&mu_);
  ForgetExpiredLocked(now);
  // Full: the oldest session that never attested makes room.
  while (pending_ >= max_pending_ && !pending_order_.empty()) {
    auto it = sessions_.find(pending_order_.front().second);
    pending_order_.pop_front();
    if (it != sessions_.end() && it->second.token.empty()) {
      sessions_.erase(it);
      --pending_;
      ++evicted_pending_;
    }
  }
  sessions_[s.id] = s;
  pending_order_.emplace_back(s.expires, s.id);
  ++pending_;
  return s;
}

absl::StatusOr<Session> SessionStore::ConsumeNonce(absl::string_view id) {
  absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return absl::UnauthenticatedError(
        "unknown or expired kbs-session-id: start again with POST /kbs/v0/auth");
  }
  Session& s = it->second;
  if (s.nonce_used) {
    return absl::UnauthenticatedError(
        "this session's nonce was already used for an attestation; nonces are single-use: "
        "start again with POST /kbs/v0/auth");
  }
  s.nonce_used = true;
  if (now > s.nonce_deadline) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the session's nonce expired ", absl::FormatDuration(now - s.nonce_deadline),
        " ago (nonces live ", absl::FormatDuration(nonce_ttl_),
        "): start again with POST /kbs/v0/auth"));
  }
  return s;
}

void SessionStore::SetToken(absl::string_view id, absl::string_view token, absl::Time expires) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || !it->second.token.empty()) return;
  it->second.token = std::string(token);
  it->second.expires = std::max(it->second.expires, expires);
  --pending_;
  ++attested_;
  attested_order_.emplace_back(it->second.expires, it->second.id);
  // Full: the attested session whose token expires first goes (its holder
  // still has the token itself, as a bearer token).
  while (attested_ > max_sessions_ && !attested_order_.empty()) {
    auto old = sessions_.find(attested_order_.front().second);
    attested_order_.pop_front();
    if (old != sessions_.end() && !old->second.token.empty()) {
      sessions_.erase(old);
      --attested_;
    }
  }
}

SessionStore::Counts SessionStore::counts() {
  absl::MutexLock lock(&mu_);
  ForgetExpiredLocked(clock_());
  return Counts{pending_, attested_, evicted_pending_};
}

absl::Status AuthRateLimiter::Admit(absl::string_view client) {
  if (rate_ <= 0) return absl::OkStatus();
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  auto it = buckets_.find(client);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_clients_) MakeRoomLocked(now);
    it = buckets_.emplace(std::string(client), Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = std::min(burst_, b.tokens + rate_ * absl::ToDoubleSeconds(now - b.last));
  b.last = now;
  if (b.tokens < 1) {
    absl::Duration wait = absl::Seconds((1 - b.tokens) / rate_);
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many POST /kbs/v0/auth from ", client, " (at most ", rate_, " per second, ", burst_,
        " at once): retry after ", absl::FormatDuration(absl::Ceil(wait, absl::Milliseconds(1)))));
  }
  b.tokens -= 1;
  return absl::OkStatus();
}

void AuthRateLimiter::MakeRoomLocked(absl::Time now) {
  // A bucket that has refilled says nothing a fresh one would not.
  absl::erase_if(buckets_, [&](const auto& kv) {
    return kv.second.tokens + rate_ * absl::ToDoubleSeconds(now - kv.second.last) >= burst_;
  });
  while (buckets_.size() >= max_clients_) {
    auto oldest = buckets_.begin();
    for (auto it = buckets_.begin(); it != buckets_.end(); ++it) {
      if (it->second.last < oldest->second.last) oldest = it;
    }
    buckets_.erase(oldest);
  }
}

size_t AuthRateLimiter::clients() {
  absl::MutexLock lock(&mu_);
  return buckets_.size();
}

absl::StatusOr<std::string> SessionStore::Token(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  ForgetExpiredLocked(clock_());
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return absl::UnauthenticatedError(
        "unknown or expired kbs-session-id: attest again (POST /kbs/v0/auth, /attest)");
  }
  if (it->second.token.empty()) {
    return absl::UnauthenticatedError(
        "this session has not attested: POST /kbs/v0/attest first");
  }
  return it->second.token;
}

absl::StatusOr<TokenIssuer::Issued> TokenIssuer::Issue(const Claims& claims,
                                                       const Jwk& tee_pubkey) const {
  absl::Time now = clock_();
  absl::Time expires = now + ttl_;
  ASSIGN_OR_RETURN(Bytes jti, tee::RandomBytes(16));
  nlohmann::json payload = {{"iss", "cloak-kbs"},
                            {"iat", absl::ToUnixSeconds(now)},
                            {"exp", absl::ToUnixSeconds(expires)},
                            {"jti", tee::HexEncode(jti)},
                            {"tee-pubkey", tee_pubkey.json},
                            {"claims", claims.ToJson()}};
  ASSIGN_OR_RETURN(std::string token, jose::SignHs256(payload.dump(), key_));
  return Issued{std::move(token), expires};
}

absl::StatusOr<TokenContents> TokenIssuer::Verify(absl::string_view token) const {
  absl::StatusOr<std::string> payload_text = jose::VerifyHs256(token, key_);
  if (!payload_text.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("attestation token refused: ", payload_text.status().message(),
                     " (not issued by this KBS, or its key changed)"));
  }
  nlohmann::json payload = nlohmann::json::parse(*payload_text, nullptr, false);
  if (!payload.is_object() || !payload.contains("exp") || !payload["exp"].is_number_integer() ||
      !payload.contains("claims") || !payload.contains("tee-pubkey")) {
    return absl::UnauthenticatedError("attestation token has an unexpected layout");
  }
  absl::Time expires = absl::FromUnixSeconds(payload["exp"].get<int64_t>());
  absl::Time now = clock_();
  if (now >= expires) {
    return absl::UnauthenticatedError(absl::StrCat(
        "attestation token expired ", absl::FormatDuration(now - expires),
        " ago: attest again (POST /kbs/v0/auth, /attest)"));
  }
  auto claims = Claims::FromJson(payload["claims"]);
  if (!claims.ok()) return absl::UnauthenticatedError(claims.status().message());
  auto jwk = jose::ParsePublicJwk(payload["tee-pubkey"]);
  if (!jwk.ok()) return absl::UnauthenticatedError(jwk.status().message());
  return TokenContents{*std::move(claims), *std::move(jwk), expires};
}

}  // namespace cloak::kbs
