#include "agent/attest/session.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/attest/initdata.h"
#include "agent/attest/kbs_client.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tee/encoding.h"

namespace cloak::agent::attest {

absl::StatusOr<KeySet> AttestationSession::ImageKeys() {
  absl::MutexLock lock(&mu_);
  if (keys_.has_value()) return *keys_;
  return Run();
}

AttestationStatus AttestationSession::Status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

bool AttestationSession::AttestsEarly() const {
  if (!options_.tee.empty()) return options_.tee != "sample";
  absl::StatusOr<std::unique_ptr<Attester>> attester = DetectAttester(options_.attester);
  // A TDX guest without configfs-tsm is still a TEE guest: it must fail at
  // CreateSandbox, not later.
  if (!attester.ok()) return true;
  return (*attester)->tee() != "sample";
}

absl::Status AttestationSession::AttestNow() {
  absl::MutexLock lock(&mu_);
  if (keys_.has_value()) return absl::OkStatus();
  return Run(/*require_keys=*/false).status();
}

struct AttestationSession::Connection {
  InitData initdata;
  std::unique_ptr<KbsClient> client;
  absl::Time start;
};

absl::StatusOr<AttestationSession::Connection> AttestationSession::Connect(bool require_keys) {
  auto refuse = [&](AttestationStatus::State state, const absl::Status& s) {
    status_.state = state;
    status_.detail = std::string(s.message());
    return s;
  };
  std::ifstream in(options_.initdata_path, std::ios::binary);
  if (!in) {
    return refuse(AttestationStatus::State::kRefused,
                  absl::FailedPreconditionError(
                      "the sandbox has no init-data, so no key broker to attest to (set the "
                      "pod's io.cloak.initdata with data.kbs_url and data.image_keys)"));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<InitData> initdata = ParseInitData(ss.str());
  if (!initdata.ok()) {
    return refuse(AttestationStatus::State::kRefused,
                  absl::FailedPreconditionError(initdata.status().message()));
  }
  status_.initdata_digest = tee::HexEncode(initdata->digest);
  status_.kbs_url = initdata->kbs_url;
  if (initdata->kbs_url.empty() || (require_keys && initdata->image_keys.empty())) {
    return refuse(AttestationStatus::State::kRefused,
                  absl::FailedPreconditionError(
                      "init-data names no key broker (data.kbs_url) or no image keys "
                      "(data.image_keys)"));
  }
  AttesterOptions attester_options = options_.attester;
  attester_options.initdata_digest = initdata->digest;
  absl::StatusOr<std::unique_ptr<Attester>> attester =
      options_.tee.empty() ? DetectAttester(attester_options)
                           : CreateAttester(options_.tee, attester_options);
  if (!attester.ok()) return refuse(AttestationStatus::State::kRefused, attester.status());
  status_.tee = (*attester)->tee();

  KbsClientOptions kbs_options;
  kbs_options.url = initdata->kbs_url;
  kbs_options.ca_pem = initdata->kbs_cert;
  kbs_options.dev_class = options_.dev_class;
  absl::StatusOr<std::unique_ptr<KbsClient>> client = KbsClient::Create(kbs_options);
  if (!client.ok()) {
    return refuse(AttestationStatus::State::kRefused,
                  absl::FailedPreconditionError(client.status().message()));
  }
  Connection conn{*std::move(initdata), *std::move(client), absl::Now()};
  absl::Status attested = conn.client->Attest(**attester, conn.initdata.raw);
  if (!attested.ok()) {
    bool unreachable = attested.code() == absl::StatusCode::kUnavailable ||
                       attested.code() == absl::StatusCode::kDeadlineExceeded;
    return refuse(unreachable ? AttestationStatus::State::kUnreachable
                              : AttestationStatus::State::kRefused,
                  attested);
  }
  return conn;
}

absl::StatusOr<std::vector<std::string>> AttestationSession::Resources(
    const std::vector<std::string>& paths) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Connection conn, Connect(/*require_keys=*/false));
  std::vector<std::string> out;
  const absl::Time fetch_start = absl::Now();
  for (const std::string& path : paths) {
    absl::StatusOr<std::string> data = conn.client->GetResource(path);
    if (!data.ok()) return data.status();  // carries the KBS's reason and the path
    out.push_back(*std::move(data));
  }
  const KbsTimings& t = conn.client->timings();
  Logger("attest")->info(
      "step=kbs-files tee={} kbs={} resources={} auth_ms={:.1f} attest_ms={:.1f} fetch_ms={:.1f}",
      status_.tee, status_.kbs_url, paths.size(), absl::ToDoubleMilliseconds(t.auth),
      absl::ToDoubleMilliseconds(t.attest), absl::ToDoubleMilliseconds(absl::Now() - fetch_start));
  status_.state = AttestationStatus::State::kAttested;
  return out;
}

absl::StatusOr<KeySet> AttestationSession::Run(bool require_keys) {
  auto log = Logger("attest");
  ASSIGN_OR_RETURN(Connection conn, Connect(require_keys));
  const InitData* initdata = &conn.initdata;
  const absl::Time start = conn.start;
  KeySet set;
  absl::Time fetch_start = absl::Now();
  bool unreachable = false;
  for (const std::string& path : initdata->image_keys) {
    absl::StatusOr<std::string> pem = conn.client->GetResource(path);
    if (!pem.ok()) {
      unreachable = unreachable || pem.status().code() == absl::StatusCode::kUnavailable;
      set.refusals.push_back(std::string(pem.status().message()));
      continue;
    }
    absl::StatusOr<jose::PrivateKey> key = jose::PrivateKey::FromPem(*pem);
    if (!key.ok()) {
      set.refusals.push_back(
          absl::StrCat("KBS resource ", path, " is not a usable private key: ",
                       key.status().message()));
      continue;
    }
    set.keys.push_back(std::move(*key));
  }
  absl::Duration fetch = absl::Now() - fetch_start;
  const KbsTimings& t = conn.client->timings();
  std::string timings = absl::StrFormat(
      "auth %.1f ms, attest %.1f ms (evidence %.1f ms), %d key(s) fetched in %.1f ms",
      absl::ToDoubleMilliseconds(t.auth), absl::ToDoubleMilliseconds(t.attest),
      absl::ToDoubleMilliseconds(t.evidence), set.keys.size(), absl::ToDoubleMilliseconds(fetch));
  log->info("step=attestation tee={} kbs={} keys={} refused={} total_ms={:.2f} ({})",
            status_.tee, status_.kbs_url, set.keys.size(), set.refusals.size(),
            absl::ToDoubleMilliseconds(absl::Now() - start), timings);
  status_.state = AttestationStatus::State::kAttested;
  status_.detail = set.refusals.empty()
                       ? timings
                       : absl::StrCat(timings, "; refused: ", absl::StrJoin(set.refusals, "; "));
  if (set.keys.empty() && !initdata->image_keys.empty()) {
    absl::Status s = absl::Status(
        unreachable ? absl::StatusCode::kUnavailable : absl::StatusCode::kPermissionDenied,
        absl::StrJoin(set.refusals, "; "));
    return s;
  }
  if (set.refusals.empty() && !set.keys.empty()) keys_ = set;  // partial sets are retried next time
  return set;
}

}  // namespace cloak::agent::attest
