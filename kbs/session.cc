#include "kbs/session.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace cloak::kbs {

void SessionStore::ForgetExpiredLocked(absl::Time now) {
  absl::erase_if(sessions_, [now](const auto& kv) { return kv.second.expires <= now; });
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
  if (sessions_.size() >= max_sessions_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many open KBS sessions (", max_sessions_, "); retry after ",
        absl::FormatDuration(nonce_ttl_)));
  }
  sessions_[s.id] = s;
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
  if (it == sessions_.end()) return;
  it->second.token = std::string(token);
  it->second.expires = std::max(it->second.expires, expires);
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
