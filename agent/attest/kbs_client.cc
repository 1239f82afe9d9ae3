#include "agent/attest/kbs_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tee/encoding.h"
#include "common/tee/report_data.h"

namespace cloak::agent::attest {
namespace {

size_t Collect(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  if (out->size() + size * n > kMaxKbsResponseBytes) return 0;  // aborts the transfer
  out->append(data, size * n);
  return size * n;
}

bool IsPlainHttpHostAllowed(absl::string_view host) {
  if (host == "localhost" || host == "10.0.2.2") return true;
  std::string h(host);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

}  // namespace

absl::Status ValidateKbsUrl(absl::string_view url) {
  absl::string_view rest = url;
  bool https = absl::ConsumePrefix(&rest, "https://");
  if (!https && !absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("KBS URL \"", url, "\" must start with https:// (or http:// for loopback)"));
  }
  absl::string_view authority = rest.substr(0, rest.find('/'));
  absl::string_view host = authority;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (host.empty() || absl::StrContains(authority, "@")) {
    return absl::InvalidArgumentError(absl::StrCat("KBS URL \"", url, "\" has no usable host"));
  }
  if (!https && !IsPlainHttpHostAllowed(host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KBS URL \"", url, "\": plain http is only allowed to a loopback address or 10.0.2.2 "
        "(QEMU user networking's host); use https with data.kbs_cert"));
  }
  return absl::OkStatus();
}

absl::Status CheckKbsTransport(absl::string_view url, bool dev_class, absl::string_view ca_pem) {
  RETURN_IF_ERROR(ValidateKbsUrl(url));
  if (dev_class) return absl::OkStatus();
  if (absl::StartsWith(url, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KBS URL \"", url, "\": plain http is allowed only on a dev runtime class "
        "(cloak.tee=none on the measured kernel command line); this guest's class is a TEE "
        "class: use https with the KBS's CA in the init-data (data.kbs_cert)"));
  }
  if (ca_pem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KBS URL \"", url, "\": a TEE runtime class needs the KBS's CA pinned in the init-data "
        "(data.kbs_cert, PEM); the guest's trust store is not enough"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<KbsClient>> KbsClient::Create(const KbsClientOptions& options) {
  RETURN_IF_ERROR(CheckKbsTransport(options.url, options.dev_class, options.ca_pem));
  ASSIGN_OR_RETURN(jose::PrivateKey key, jose::PrivateKey::GenerateEc("P-256"));
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  KbsClientOptions o = options;
  while (absl::EndsWith(o.url, "/")) o.url.pop_back();
  return std::unique_ptr<KbsClient>(new KbsClient(std::move(o), std::move(key), curl));
}

KbsClient::~KbsClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

absl::StatusOr<KbsClient::Response> KbsClient::Request(const std::string& method,
                                                       absl::string_view path,
                                                       const std::string& body) {
  CURL* c = static_cast<CURL*>(curl_);
  std::string url = absl::StrCat(options_.url, path);
  Response r;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_COOKIEFILE, "");  // cookie engine on (in memory)
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_blob ca{};
  if (!options_.ca_pem.empty()) {
    ca.data = options_.ca_pem.data();
    ca.len = options_.ca_pem.size();
    ca.flags = CURL_BLOB_COPY;
    curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
  }
  curl_slist* headers = nullptr;
  if (method == "POST") {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  } else {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  }
  headers = curl_slist_append(headers, "Accept: application/json");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  if (rc != CURLE_OK) {
    absl::StatusCode code = rc == CURLE_OPERATION_TIMEDOUT ? absl::StatusCode::kDeadlineExceeded
                                                           : absl::StatusCode::kUnavailable;
    return absl::Status(code, absl::StrCat("KBS ", options_.url, " unreachable (", method, " ",
                                           path, "): ", curl_easy_strerror(rc)));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

absl::Status KbsClient::KbsError(absl::string_view step, const Response& response) const {
  std::string detail = absl::StrCat("HTTP ", response.status);
  nlohmann::json err = nlohmann::json::parse(response.body, nullptr, false);
  if (err.is_object() && err.contains("detail") && err["detail"].is_string()) {
    std::string type = err.value("type", "");
    if (size_t slash = type.rfind('/'); slash != std::string::npos) type = type.substr(slash + 1);
    detail = absl::StrCat(type.empty() ? "" : type + ": ", err["detail"].get<std::string>(),
                          " (HTTP ", response.status, ")");
  } else if (!response.body.empty()) {
    absl::StrAppend(&detail, ": ", response.body.substr(0, 200));
  }
  absl::StatusCode code;
  switch (response.status) {
    case 401:
    case 403:
      code = absl::StatusCode::kPermissionDenied;
      break;
    case 404:
      code = absl::StatusCode::kNotFound;
      break;
    case 400:
      code = absl::StatusCode::kInvalidArgument;
      break;
    default:
      code = absl::StatusCode::kUnavailable;
  }
  return absl::Status(code, absl::StrCat("KBS ", options_.url, " refused ", step, ": ", detail));
}

absl::Status KbsClient::Attest(Attester& attester, const std::optional<std::string>& initdata_toml) {
  auto log = Logger("attest");
  absl::Time start = absl::Now();
  nlohmann::json request{
      {"version", kKbsProtocolVersion},
      {"tee", attester.tee()},
      {"extra-params", {{"supported-hash-algorithms", {"sha384", "sha256", "sha512"}}}}};
  ASSIGN_OR_RETURN(Response auth, Request("POST", "/kbs/v0/auth", request.dump()));
  timings_.auth = absl::Now() - start;
  if (auth.status != 200) return KbsError("auth", auth);
  nlohmann::json challenge = nlohmann::json::parse(auth.body, nullptr, false);
  if (!challenge.is_object() || !challenge.contains("nonce") || !challenge["nonce"].is_string()) {
    return absl::UnavailableError(absl::StrCat("KBS ", options_.url, ": auth answer has no nonce"));
  }
  const std::string nonce = challenge["nonce"].get<std::string>();
  log->info("step=kbs-auth tee={} kbs={} duration_ms={:.2f}", attester.tee(), options_.url,
            absl::ToDoubleMilliseconds(timings_.auth));

  absl::Time attest_start = absl::Now();
  ASSIGN_OR_RETURN(nlohmann::json jwk, tee_key_.PublicJwk());
  ASSIGN_OR_RETURN(std::string digest, tee::RuntimeDataDigest(nonce, jwk, ""));
  absl::StatusOr<nlohmann::json> evidence = attester.GetEvidence(digest);
  timings_.evidence = absl::Now() - attest_start;
  if (!evidence.ok()) return Annotate(evidence.status(), absl::StrCat(attester.tee(), " evidence"));
  nlohmann::json attestation{
      {"init-data", initdata_toml.has_value()
                        ? nlohmann::json{{"format", "toml"}, {"body", *initdata_toml}}
                        : nlohmann::json(nullptr)},
      {"runtime-data", {{"nonce", nonce}, {"tee-pubkey", jwk}}},
      {"tee-evidence", {{"primary_evidence", *evidence}, {"additional_evidence", ""}}}};
  ASSIGN_OR_RETURN(Response attest,
                   Request("POST", "/kbs/v0/attest",
                           attestation.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  timings_.attest = absl::Now() - attest_start;
  if (attest.status != 200) {
    log->warn("step=kbs-attest tee={} kbs={} status={} duration_ms={:.2f}", attester.tee(),
              options_.url, attest.status, absl::ToDoubleMilliseconds(timings_.attest));
    return KbsError("attestation", attest);
  }
  attested_ = true;
  log->info("step=kbs-attest tee={} kbs={} evidence_ms={:.2f} duration_ms={:.2f}", attester.tee(),
            options_.url, absl::ToDoubleMilliseconds(timings_.evidence),
            absl::ToDoubleMilliseconds(timings_.attest));
  return absl::OkStatus();
}

absl::StatusOr<std::string> KbsClient::GetResource(absl::string_view path) {
  if (!attested_) return absl::FailedPreconditionError("KBS resource requested before attesting");
  absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(Response r, Request("GET", absl::StrCat("/kbs/v0/resource/", path), ""));
  absl::Duration took = absl::Now() - start;
  if (r.status != 200) {
    Logger("attest")->warn("step=kbs-resource path={} status={} duration_ms={:.2f}",
                           std::string(path), r.status, absl::ToDoubleMilliseconds(took));
    return KbsError(absl::StrCat("resource ", path), r);
  }
  absl::StatusOr<std::string> plain = jose::DecryptJweText(r.body, tee_key_);
  if (!plain.ok()) {
    return Annotate(plain.status(), absl::StrCat("KBS resource ", path, ": JWE"));
  }
  Logger("attest")->info("step=kbs-resource path={} bytes={} duration_ms={:.2f}", std::string(path),
                         plain->size(), absl::ToDoubleMilliseconds(took));
  return plain;
}

}  // namespace cloak::agent::attest
