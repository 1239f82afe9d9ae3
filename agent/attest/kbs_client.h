// Client of a Trustee-protocol key broker (KBS protocol 0.4.0, docs/formats.md;
// cloak-kbs, docs/kbs.md) on libcurl:
//   POST /kbs/v0/auth    → nonce (+ kbs-session-id cookie)
//   POST /kbs/v0/attest  → token (cookie), evidence bound to nonce + tee key
//   GET  /kbs/v0/resource/<repo>/<type>/<tag> → JWE to the tee key
// The tee key is an ephemeral EC P-256 pair made per client; its private half
// never leaves this object. TLS trusts the init-data's `kbs_cert` (else the
// system store); plain http only to a loopback address or 10.0.2.2 (QEMU
// user networking's host). Keys, tokens, nonces and evidence are never
// logged; step timings are.
#ifndef CLOAK_AGENT_ATTEST_KBS_CLIENT_H_
#define CLOAK_AGENT_ATTEST_KBS_CLIENT_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/attest/attester.h"
#include "common/jose/jose.h"

namespace cloak::agent::attest {

inline constexpr char kKbsProtocolVersion[] = "0.4.0";
inline constexpr absl::Duration kDefaultKbsTimeout = absl::Seconds(30);
inline constexpr size_t kMaxKbsResponseBytes = 4 << 20;

struct KbsClientOptions {
  std::string url;     // "https://host:port" (a path prefix is kept)
  std::string ca_pem;  // trusted CA for https; empty: the system store
  // The guest's runtime class is dev (cloak.tee=none on the measured
  // command line). Only then may the URL be plain http (CheckKbsTransport).
  bool dev_class = false;
  absl::Duration timeout = kDefaultKbsTimeout;  // per request
};

struct KbsTimings {
  absl::Duration auth;
  absl::Duration attest;  // includes getting the evidence
  absl::Duration evidence;
};

// InvalidArgument for a URL that is not http(s)://host[:port][/path] or
// that is plain http to a host other than loopback / 10.0.2.2.
absl::Status ValidateKbsUrl(absl::string_view url);

// No plain http outside dev (docs/attestation.md): ValidateKbsUrl, then
//  - dev class: http to loopback / 10.0.2.2, or https (any CA);
//  - TEE class: https only, with the KBS's CA pinned in the init-data
//    (data.kbs_cert, `ca_pem` here): the system trust store would let
//    anyone with a public certificate for the name answer as the KBS.
// InvalidArgument naming the rule and what to change. Pure.
absl::Status CheckKbsTransport(absl::string_view url, bool dev_class, absl::string_view ca_pem);

class KbsClient {
 public:
  static absl::StatusOr<std::unique_ptr<KbsClient>> Create(const KbsClientOptions& options);
  ~KbsClient();
  KbsClient(const KbsClient&) = delete;
  KbsClient& operator=(const KbsClient&) = delete;

  // Runs auth + attest with `attester`'s evidence. `initdata_toml` (the
  // exact init-data bytes) is sent as {"format":"toml","body"} when given.
  // Errors carry the KBS's own error text: Unavailable (unreachable),
  // PermissionDenied (401/403: evidence or policy refused), FailedPrecondition
  // (the attester refused, e.g. init-data digest mismatch).
  absl::Status Attest(Attester& attester, const std::optional<std::string>& initdata_toml);

  // The resource at "repo/type/tag", decrypted with the tee key. Needs a
  // successful Attest. NotFound (404), PermissionDenied (401/403, the
  // policy's reason), Unavailable.
  absl::StatusOr<std::string> GetResource(absl::string_view path);

  const KbsTimings& timings() const { return timings_; }
  const std::string& url() const { return options_.url; }

 private:
  struct Response {
    long status = 0;
    std::string body;
  };
  KbsClient(KbsClientOptions options, jose::PrivateKey tee_key, void* curl)
      : options_(std::move(options)), tee_key_(std::move(tee_key)), curl_(curl) {}
  absl::StatusOr<Response> Request(const std::string& method, absl::string_view path,
                                   const std::string& body);
  absl::Status KbsError(absl::string_view step, const Response& response) const;

  KbsClientOptions options_;
  jose::PrivateKey tee_key_;
  void* curl_;  // CURL*, cookie engine on: carries kbs-session-id
  KbsTimings timings_;
  bool attested_ = false;
};

}  // namespace cloak::agent::attest

#endif  // CLOAK_AGENT_ATTEST_KBS_CLIENT_H_
