#include "kbs/service.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/jose/jose.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tee/encoding.h"
#include "common/tee/initdata.h"
#include "common/tee/report_data.h"
#include "kbs/policy.h"

namespace cloak::kbs {
namespace {

constexpr char kErrorTypePrefix[] = "https://github.com/confidential-containers/kbs/errors/";

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 503;
    default:
      return 500;
  }
}

nlohmann::json ParseJson(absl::string_view body) {
  return nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
}

std::string Short(absl::string_view id) { return std::string(id.substr(0, 8)); }

double Millis(absl::Time start) { return absl::ToDoubleMilliseconds(absl::Now() - start); }

}  // namespace

HttpResponse ErrorResponse(int status, absl::string_view type, absl::string_view detail) {
  HttpResponse r;
  r.status = status;
  r.body = nlohmann::json{{"type", absl::StrCat(kErrorTypePrefix, type)},
                          {"detail", std::string(detail)}}
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

std::string CookieValue(absl::string_view header, absl::string_view name) {
  for (absl::string_view part : absl::StrSplit(header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

absl::StatusOr<std::unique_ptr<KbsService>> KbsService::Create(const KbsConfig& config,
                                                               Clock clock) {
  ASSIGN_OR_RETURN(ResourceStore store, ResourceStore::Open(config.state_dir));
  ASSIGN_OR_RETURN(std::string key, store.TokenKey());
  auto service = std::unique_ptr<KbsService>(
      new KbsService(config, std::move(store), std::move(key), std::move(clock)));
  for (const char* tee : {kTeeSnp, kTeeTdx, kTeeSample}) {
    auto verifier = CreateVerifier(tee, config.verifier);
    if (!verifier.ok()) return Annotate(verifier.status(), absl::StrCat(tee, " verifier"));
    service->verifiers_[tee] = *std::move(verifier);
  }
  return service;
}

KbsService::KbsService(const KbsConfig& config, ResourceStore store, std::string token_key,
                       Clock clock)
    : config_(config),
      store_(std::move(store)),
      sessions_(config.nonce_ttl, clock, kMaxSessions, config.max_pending_sessions),
      auth_limiter_(config.auth_rate, config.auth_burst, clock),
      tokens_(std::move(token_key), config.token_ttl, clock) {}

std::string KbsService::SessionCookie(absl::string_view id, absl::Duration max_age) const {
  return absl::StrCat(kSessionCookie, "=", id, "; Path=/kbs/v0; Max-Age=",
                      absl::ToInt64Seconds(max_age), "; HttpOnly",
                      config_.tls_cert.empty() ? "" : "; Secure");
}

HttpResponse KbsService::Handle(const HttpRequest& request) {
  absl::string_view path = request.path;
  if (path == "/kbs/v0/auth") {
    if (request.method != "POST") return ErrorResponse(405, "MethodNotAllowed", "use POST");
    return Auth(request);
  }
  if (path == "/kbs/v0/attest") {
    if (request.method != "POST") return ErrorResponse(405, "MethodNotAllowed", "use POST");
    return Attest(request);
  }
  if (absl::ConsumePrefix(&path, "/kbs/v0/resource/")) {
    if (request.method != "GET") {
      return ErrorResponse(405, "MethodNotAllowed",
                           "use GET (resources are registered with `cloak-kbs admin`)");
    }
    return Resource(request, path);
  }
  return ErrorResponse(404, "PluginNotFound",
                       absl::StrCat("no such endpoint ", request.path,
                                    " (cloak-kbs serves /kbs/v0/auth, /kbs/v0/attest and "
                                    "/kbs/v0/resource/<repo>/<type>/<tag>)"));
}

HttpResponse KbsService::Auth(const HttpRequest& request) {
  absl::Time start = absl::Now();
  auto log = Logger("kbs");
  nlohmann::json body = ParseJson(request.body);
  if (!body.is_object() || !body.contains("version") || !body["version"].is_string() ||
      !body.contains("tee") || !body["tee"].is_string()) {
    return ErrorResponse(400, "SerdeError",
                         "auth request must be JSON {\"version\", \"tee\", \"extra-params\"}");
  }
  std::string version = body["version"].get<std::string>();
  std::string tee = body["tee"].get<std::string>();
  if (version != kProtocolVersion) {
    log->warn("step=auth tee={} refused: protocol version {}", tee, version);
    return ErrorResponse(401, "ProtocolVersion",
                         absl::StrCat("protocol version ", version, " is not supported: this KBS "
                                      "speaks exactly ", kProtocolVersion));
  }
  if (!verifiers_.contains(tee)) {
    return ErrorResponse(401, "UnsupportedTee",
                         absl::StrCat("TEE \"", tee, "\" is not supported (snp, tdx, sample)"));
  }
  if (!request.client.empty()) {
    absl::Status admitted = auth_limiter_.Admit(request.client);
    if (!admitted.ok()) {
      {
        absl::MutexLock lock(&refusals_mu_);
        ++refusals_;
        if (absl::Now() - refusals_logged_ >= absl::Seconds(10)) {
          log->warn("step=auth status=429 refused {} auth requests over the per-client rate in "
                    "the last 10s; latest: {}",
                    refusals_, std::string(admitted.message()));
          refusals_ = 0;
          refusals_logged_ = absl::Now();
        }
      }
      HttpResponse r = ErrorResponse(429, "TooManyRequests", admitted.message());
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
  }
  auto session = sessions_.Create(tee);
  if (!session.ok()) {
    return ErrorResponse(HttpStatusFor(session.status()), "TooManySessions",
                         session.status().message());
  }
  HttpResponse r;
  r.body = nlohmann::json{{"nonce", session->nonce}, {"extra-params", ""}}.dump();
  r.headers.emplace_back("Set-Cookie",
                         SessionCookie(session->id, config_.nonce_ttl + config_.token_ttl));
  log->info("step=auth tee={} session={} status=200 duration_ms={:.2f}", tee,
            Short(session->id), Millis(start));
  return r;
}

HttpResponse KbsService::Attest(const HttpRequest& request) {
  absl::Time start = absl::Now();
  auto log = Logger("kbs");
  std::string id = CookieValue(request.cookie, kSessionCookie);
  auto fail = [&](int status, absl::string_view type, absl::string_view detail) {
    log->warn("step=attest session={} status={} duration_ms={:.2f} refused: {}", Short(id),
              status, Millis(start), std::string(detail));
    return ErrorResponse(status, type, detail);
  };
  if (id.empty()) {
    return fail(401, "MissingCookie",
                "no kbs-session-id cookie: call POST /kbs/v0/auth first and send its cookie");
  }
  nlohmann::json body = ParseJson(request.body);
  if (!body.is_object() || !body.contains("runtime-data") || !body["runtime-data"].is_object() ||
      !body.contains("tee-evidence") || !body["tee-evidence"].is_object()) {
    return fail(400, "SerdeError",
                "attestation must be JSON {\"init-data\", \"runtime-data\": {\"nonce\", "
                "\"tee-pubkey\"}, \"tee-evidence\": {\"primary_evidence\", "
                "\"additional_evidence\"}} (protocol 0.4.0)");
  }
  auto session = sessions_.ConsumeNonce(id);
  if (!session.ok()) return fail(401, "AttestationError", session.status().message());

  const nlohmann::json& runtime = body["runtime-data"];
  if (!runtime.contains("nonce") || !runtime["nonce"].is_string() ||
      !runtime.contains("tee-pubkey")) {
    return fail(400, "SerdeError", "runtime-data needs \"nonce\" and \"tee-pubkey\"");
  }
  if (!tee::SecureEquals(runtime["nonce"].get<std::string>(), session->nonce)) {
    return fail(401, "AttestationError",
                "runtime-data.nonce is not this session's nonce (stale or replayed evidence)");
  }
  auto jwk = jose::ParsePublicJwk(runtime["tee-pubkey"]);
  if (!jwk.ok()) return fail(400, "SerdeError", jwk.status().message());

  const nlohmann::json& tee_evidence = body["tee-evidence"];
  std::string additional;
  if (auto it = tee_evidence.find("additional_evidence"); it != tee_evidence.end()) {
    if (!it->is_string()) {
      return fail(400, "SerdeError", "tee-evidence.additional_evidence must be a string");
    }
    additional = it->get<std::string>();
  }
  if (!tee_evidence.contains("primary_evidence")) {
    return fail(400, "SerdeError", "tee-evidence.primary_evidence is missing");
  }
  nlohmann::json evidence = tee_evidence["primary_evidence"];
  if (evidence.is_string()) {  // some clients send the evidence JSON-encoded
    nlohmann::json parsed = ParseJson(evidence.get<std::string>());
    if (!parsed.is_discarded()) evidence = std::move(parsed);
  }
  auto binding = tee::RuntimeDataDigest(session->nonce, jwk->json, additional);
  if (!binding.ok()) return fail(400, "SerdeError", binding.status().message());

  absl::Time verify_start = absl::Now();
  auto claims = verifiers_.at(session->tee)->Verify(evidence, *binding);
  double verify_ms = Millis(verify_start);
  if (!claims.ok()) {
    int status = claims.status().code() == absl::StatusCode::kInvalidArgument ? 400 : 401;
    return fail(status, "AttestationError",
                absl::StrCat(session->tee, " evidence refused: ", claims.status().message()));
  }

  // Init-data: its digest must be what the TEE measured.
  auto init = body.find("init-data");
  if (init != body.end() && !init->is_null()) {
    if (!init->is_object() || !init->contains("body") || !(*init)["body"].is_string()) {
      return fail(400, "SerdeError", "init-data must be null or {\"format\", \"body\"}");
    }
    std::string text = (*init)["body"].get<std::string>();
    if (claims->init_data_digest.empty()) {
      return fail(401, "AttestationError",
                  absl::StrCat("init-data was sent but the ", claims->tee,
                               " evidence binds no init-data digest"));
    }
    size_t len = claims->init_data_digest.size();
    if (len != 64 && len != 96 && len != 128) {
      return fail(401, "AttestationError",
                  "evidence init-data digest is not 32, 48 or 64 bytes long");
    }
    absl::StatusOr<std::string> field = tee::InitDataFieldValue(text, len / 2);
    if (!field.ok()) return fail(400, "SerdeError", field.status().message());
    const std::string digest = tee::HexEncode(*field);
    if (digest != claims->init_data_digest) {
      return fail(401, "AttestationError",
                  absl::StrCat("init-data digest ", digest, " does not match the ",
                               claims->init_data_digest, " the evidence carries"));
    }
  }

  auto issued = tokens_.Issue(*claims, *jwk);
  if (!issued.ok()) return fail(500, "TokenIssueFailed", issued.status().message());
  sessions_.SetToken(id, issued->token, issued->expires);
  HttpResponse r;
  r.body = nlohmann::json{{"token", issued->token}}.dump();
  r.headers.emplace_back("Set-Cookie", SessionCookie(id, config_.token_ttl));
  log->info("step=attest tee={} session={} status=200 verify_ms={:.2f} duration_ms={:.2f} ({})",
            claims->tee, Short(id), verify_ms, Millis(start), claims->detail);
  return r;
}

HttpResponse KbsService::Resource(const HttpRequest& request, absl::string_view path) {
  absl::Time start = absl::Now();
  auto log = Logger("kbs");
  std::string id = CookieValue(request.cookie, kSessionCookie);
  auto fail = [&](int status, absl::string_view type, absl::string_view detail) {
    log->warn("step=resource path={} status={} duration_ms={:.2f} refused: {}",
              std::string(path), status, Millis(start), std::string(detail));
    return ErrorResponse(status, type, detail);
  };
  auto resource_path = ParseResourcePath(path);
  if (!resource_path.ok()) {
    return fail(400, "InvalidRequestPath", resource_path.status().message());
  }
  std::string token;
  absl::string_view auth = request.authorization;
  if (absl::ConsumePrefix(&auth, "Bearer ")) {
    token = std::string(absl::StripAsciiWhitespace(auth));
  } else if (!id.empty()) {
    auto from_session = sessions_.Token(id);
    if (!from_session.ok()) return fail(401, "TokenNotFound", from_session.status().message());
    token = *from_session;
  } else {
    return fail(401, "TokenNotFound",
                "no attestation token: send the kbs-session-id cookie of an attested session "
                "or Authorization: Bearer <token>");
  }
  auto contents = tokens_.Verify(token);
  if (!contents.ok()) return fail(401, "TokenVerifierError", contents.status().message());

  auto data = store_.GetResource(*resource_path);
  if (!data.ok()) {
    return fail(HttpStatusFor(data.status()),
                data.status().code() == absl::StatusCode::kNotFound ? "ResourceNotFound"
                                                                    : "ResourceError",
                data.status().message());
  }
  auto policy = store_.GetPolicy(*resource_path);
  if (!policy.ok()) {
    return fail(403, "PolicyDeny", policy.status().message());
  }
  PolicyDecision decision = EvaluatePolicy(*policy, contents->claims);
  if (!decision.allowed) {
    return fail(403, "PolicyDeny",
                absl::StrCat("key-release policy of ", resource_path->ToString(),
                             " denies: ", decision.reason));
  }
  auto jwe = jose::EncryptJwe(*data, contents->tee_pubkey);
  if (!jwe.ok()) return fail(500, "JweError", jwe.status().message());
  HttpResponse r;
  r.body = jwe->dump();
  log->info("step=resource path={} tee={} status=200 duration_ms={:.2f}",
            resource_path->ToString(), contents->claims.tee, Millis(start));
  return r;
}

}  // namespace cloak::kbs
