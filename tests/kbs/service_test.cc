// The KBS protocol end to end through KbsService (no sockets), with a fake
// clock for nonce and token expiry.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/temp_dir.h"
#include "kbs/server.h"
#include "kbs/service.h"
#include "absl/strings/ascii.h"
#include "tests/kbs/kbs_client.h"
#include "tests/kbs/test_util.h"

namespace cloak::kbs {
namespace {

using testing::AuthRequest;
using testing::DecryptJwe;
using ::testing::HasSubstr;
using testing::MakeTeeKey;
using testing::SampleAttestation;
using testing::TeeKey;

constexpr char kAllowSample[] = R"({"allowed_tees": ["sample"]})";

absl::Status SetPolicy(const ResourceStore& store, const std::string& path,
                       const std::string& json) {
  ResourcePath parsed = *ParseResourcePath(path);
  return store.SetPolicy(&parsed, json);
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("kbs-service-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(*std::move(dir));
    config_.state_dir = dir_->Join("state");
    auto store = ResourceStore::Open(config_.state_dir);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE(store->PutResource(*ParseResourcePath("default/key/k1"), "secret-key-1").ok());
    ASSERT_TRUE(store->PutResource(*ParseResourcePath("default/key/k2"), "secret-key-2").ok());
    ASSERT_TRUE(SetPolicy(*store, "default/key/k1", kAllowSample).ok());
    ASSERT_TRUE(SetPolicy(*store, "default/key/k2", R"({"allow_any_launch": true})").ok());
    auto service = KbsService::Create(config_, [this] { return now_; });
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
  }

  HttpResponse Post(const std::string& path, const std::string& body,
                    const std::string& cookie = "") {
    return service_->Handle({.method = "POST", .path = path, .body = body, .cookie = cookie,
                             .authorization = "", .client = ""});
  }
  HttpResponse Get(const std::string& path, const std::string& cookie,
                   const std::string& authorization = "") {
    return service_->Handle({.method = "GET", .path = path, .body = "", .cookie = cookie,
                             .authorization = authorization, .client = ""});
  }
  static std::string Cookie(const HttpResponse& r) {
    for (const auto& [name, value] : r.headers) {
      if (name == "Set-Cookie") return value.substr(0, value.find(';'));
    }
    return "";
  }
  static std::string Detail(const HttpResponse& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    return j.is_object() ? j.value("detail", "") : "";
  }
  static std::string Type(const HttpResponse& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    return j.is_object() ? j.value("type", "") : "";
  }
  // auth → nonce + cookie.
  std::pair<std::string, std::string> Auth() {
    HttpResponse r = Post("/kbs/v0/auth", AuthRequest().dump());
    EXPECT_EQ(r.status, 200) << r.body;
    auto j = nlohmann::json::parse(r.body);
    return {j["nonce"].get<std::string>(), Cookie(r)};
  }
  // auth → attest with sample evidence; returns the cookie.
  std::string Attested(const TeeKey& key) {
    auto [nonce, cookie] = Auth();
    HttpResponse r = Post("/kbs/v0/attest", SampleAttestation(nonce, key.jwk).dump(), cookie);
    EXPECT_EQ(r.status, 200) << r.body;
    return cookie;
  }

  std::optional<TempDir> dir_;
  KbsConfig config_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::unique_ptr<KbsService> service_;
};

TEST_F(ServiceTest, AuthIssuesANonceAndASessionCookie) {
  HttpResponse r = Post("/kbs/v0/auth", AuthRequest().dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["nonce"].get<std::string>().size(), 44u);
  EXPECT_EQ(tee::Base64Decode(j["nonce"].get<std::string>())->size(), 32u);
  EXPECT_EQ(j["extra-params"], "");
  std::string cookie = Cookie(r);
  EXPECT_THAT(cookie, HasSubstr("kbs-session-id="));
  EXPECT_EQ(cookie.size(), std::string("kbs-session-id=").size() + 32);
  auto [nonce2, cookie2] = Auth();
  EXPECT_NE(nonce2, j["nonce"].get<std::string>());
  EXPECT_NE(cookie2, cookie);
}

TEST_F(ServiceTest, AuthRefusesOtherVersionsAndTees) {
  HttpResponse r = Post("/kbs/v0/auth", AuthRequest("sample", "0.1.1").dump());
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Type(r), HasSubstr("/errors/ProtocolVersion"));
  EXPECT_THAT(Detail(r), HasSubstr("exactly 0.4.0"));
  r = Post("/kbs/v0/auth", AuthRequest("sgx").dump());
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Detail(r), HasSubstr("\"sgx\" is not supported"));
  for (const char* bad : {"", "{", "[]", R"({"version": 4})", "\xff\xfe"}) {
    r = Post("/kbs/v0/auth", bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_THAT(Type(r), HasSubstr("SerdeError"));
  }
}

TEST_F(ServiceTest, FullFlowReleasesTheResourceAsAJweToTheTeeKey) {
  for (const char* kind : {"P-256", "RSA"}) {
    TeeKey key = MakeTeeKey(kind);
    auto [nonce, cookie] = Auth();
    HttpResponse r = Post("/kbs/v0/attest", SampleAttestation(nonce, key.jwk).dump(), cookie);
    ASSERT_EQ(r.status, 200) << r.body;
    std::string token = nlohmann::json::parse(r.body)["token"];
    EXPECT_EQ(Cookie(r), cookie);

    r = Get("/kbs/v0/resource/default/key/k1", cookie);
    ASSERT_EQ(r.status, 200) << r.body;
    auto plaintext = DecryptJwe(nlohmann::json::parse(r.body), key.key.get());
    ASSERT_TRUE(plaintext.ok()) << plaintext.status();
    EXPECT_EQ(*plaintext, "secret-key-1");

    // The token alone works too (Authorization: Bearer).
    r = Get("/kbs/v0/resource/default/key/k1", "", "Bearer " + token);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(*DecryptJwe(nlohmann::json::parse(r.body), key.key.get()), "secret-key-1");
  }
}

TEST_F(ServiceTest, NoncesAreSingleUse) {
  TeeKey key = MakeTeeKey();
  auto [nonce, cookie] = Auth();
  std::string body = SampleAttestation(nonce, key.jwk).dump();
  ASSERT_EQ(Post("/kbs/v0/attest", body, cookie).status, 200);
  HttpResponse again = Post("/kbs/v0/attest", body, cookie);
  EXPECT_EQ(again.status, 401);
  EXPECT_THAT(Detail(again), HasSubstr("already used"));
}

TEST_F(ServiceTest, AFailedAttestationAlsoBurnsTheNonce) {
  TeeKey key = MakeTeeKey();
  auto [nonce, cookie] = Auth();
  nlohmann::json wrong = SampleAttestation(nonce, key.jwk);
  wrong["tee-evidence"]["primary_evidence"]["report_data"] =
      tee::Base64Encode(std::string(48, 'x'));
  EXPECT_EQ(Post("/kbs/v0/attest", wrong.dump(), cookie).status, 401);
  HttpResponse retry = Post("/kbs/v0/attest", SampleAttestation(nonce, key.jwk).dump(), cookie);
  EXPECT_EQ(retry.status, 401);
  EXPECT_THAT(Detail(retry), HasSubstr("already used"));
}

TEST_F(ServiceTest, NoncesExpire) {
  TeeKey key = MakeTeeKey();
  auto [nonce, cookie] = Auth();
  now_ += kDefaultNonceTtl + absl::Seconds(1);
  HttpResponse r = Post("/kbs/v0/attest", SampleAttestation(nonce, key.jwk).dump(), cookie);
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Detail(r), HasSubstr("expired"));
}

TEST_F(ServiceTest, RefusesEvidenceBoundToAnotherKeyOrNonce) {
  TeeKey key = MakeTeeKey();
  TeeKey other = MakeTeeKey();
  auto [nonce, cookie] = Auth();
  HttpResponse r =
      Post("/kbs/v0/attest", SampleAttestation(nonce, key.jwk, &other.jwk).dump(), cookie);
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Type(r), HasSubstr("AttestationError"));
  EXPECT_THAT(Detail(r), HasSubstr("does not match the runtime-data digest"));

  auto [nonce2, cookie2] = Auth();
  r = Post("/kbs/v0/attest", SampleAttestation(nonce, key.jwk).dump(), cookie2);  // old nonce
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Detail(r), HasSubstr("not this session's nonce"));
}

TEST_F(ServiceTest, AttestNeedsASessionAndWellFormedJson) {
  TeeKey key = MakeTeeKey();
  auto [nonce, cookie] = Auth();
  std::string body = SampleAttestation(nonce, key.jwk).dump();
  EXPECT_THAT(Detail(Post("/kbs/v0/attest", body)), HasSubstr("no kbs-session-id cookie"));
  EXPECT_EQ(Post("/kbs/v0/attest", body, "kbs-session-id=0123").status, 401);
  EXPECT_EQ(Post("/kbs/v0/attest", "{\"runtime-data\":", cookie).status, 400);
  nlohmann::json bad = SampleAttestation(nonce, key.jwk);
  bad["runtime-data"]["tee-pubkey"] = {{"kty", "EC"}};
  HttpResponse r = Post("/kbs/v0/attest", bad.dump(), cookie);
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(Detail(r), HasSubstr("tee-pubkey"));
}

TEST_F(ServiceTest, TokensExpire) {
  TeeKey key = MakeTeeKey();
  std::string cookie = Attested(key);
  now_ += kDefaultTokenTtl + absl::Seconds(1);
  HttpResponse r = Get("/kbs/v0/resource/default/key/k1", cookie);
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Detail(r), HasSubstr("attest again"));
}

TEST_F(ServiceTest, ResourceNeedsAValidToken) {
  HttpResponse r = Get("/kbs/v0/resource/default/key/k1", "");
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Type(r), HasSubstr("TokenNotFound"));
  auto [nonce, cookie] = Auth();  // authenticated but not attested
  r = Get("/kbs/v0/resource/default/key/k1", cookie);
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Detail(r), HasSubstr("has not attested"));
  r = Get("/kbs/v0/resource/default/key/k1", "", "Bearer a.b.c");
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Detail(r), HasSubstr("signature is not valid"));
}

TEST_F(ServiceTest, ForgedTokenClaimsAreRefused) {
  TeeKey key = MakeTeeKey();
  auto [nonce, cookie] = Auth();
  HttpResponse r = Post("/kbs/v0/attest", SampleAttestation(nonce, key.jwk).dump(), cookie);
  std::string token = nlohmann::json::parse(r.body)["token"];
  // Swap in another tee-pubkey (to get the resource encrypted to it).
  size_t a = token.find('.'), b = token.rfind('.');
  auto payload = nlohmann::json::parse(*tee::Base64UrlDecode(token.substr(a + 1, b - a - 1)));
  payload["tee-pubkey"] = MakeTeeKey().jwk.json;
  std::string forged =
      token.substr(0, a + 1) + tee::Base64UrlEncode(payload.dump()) + token.substr(b);
  r = Get("/kbs/v0/resource/default/key/k1", "", "Bearer " + forged);
  EXPECT_EQ(r.status, 401);
}

TEST_F(ServiceTest, PolicyDecidesAndNamesItsReason) {
  TeeKey key = MakeTeeKey();
  std::string cookie = Attested(key);
  HttpResponse r = Get("/kbs/v0/resource/default/key/k2", cookie);  // policy {}: no sample
  EXPECT_EQ(r.status, 403);
  EXPECT_THAT(Type(r), HasSubstr("PolicyDeny"));
  EXPECT_THAT(Detail(r), HasSubstr("evidence type \"sample\" is not allowed"));

  auto store = ResourceStore::Open(config_.state_dir);
  ASSERT_TRUE(store->PutResource(*ParseResourcePath("other/key/k3"), "k3").ok());
  r = Get("/kbs/v0/resource/other/key/k3", cookie);  // no policy, no default
  EXPECT_EQ(r.status, 403);
  EXPECT_THAT(Detail(r), HasSubstr("no key-release policy"));
  ASSERT_TRUE(store->SetPolicy(nullptr, kAllowSample).ok());
  r = Get("/kbs/v0/resource/other/key/k3", cookie);  // the default applies
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(ServiceTest, UnknownResourcesAndBadPaths) {
  TeeKey key = MakeTeeKey();
  std::string cookie = Attested(key);
  HttpResponse r = Get("/kbs/v0/resource/default/key/nope", cookie);
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(Detail(r), HasSubstr("resource default/key/nope not found"));
  r = Get("/kbs/v0/resource/default/../../token.key", cookie);
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(Type(r), HasSubstr("InvalidRequestPath"));
  r = Get("/kbs/v0/other", cookie);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Post("/kbs/v0/resource/default/key/k1", "x", cookie).status, 405);
}

TEST_F(ServiceTest, InitDataMustMatchTheEvidence) {
  TeeKey key = MakeTeeKey();
  std::string init = "version = \"0.1.0\"\nalgorithm = \"sha384\"\n";
  auto [nonce, cookie] = Auth();
  HttpResponse r = Post("/kbs/v0/attest",
                        SampleAttestation(nonce, key.jwk, nullptr, init).dump(), cookie);
  ASSERT_EQ(r.status, 200) << r.body;

  auto [nonce2, cookie2] = Auth();
  r = Post("/kbs/v0/attest",
           SampleAttestation(nonce2, key.jwk, nullptr, init, tee::HexEncode(tee::Sha384("other")))
               .dump(),
           cookie2);
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Detail(r), HasSubstr("init-data digest"));

  auto [nonce3, cookie3] = Auth();
  nlohmann::json no_binding = SampleAttestation(nonce3, key.jwk);
  no_binding["init-data"] = {{"format", "toml"}, {"body", init}};
  r = Post("/kbs/v0/attest", no_binding.dump(), cookie3);
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Detail(r), HasSubstr("binds no init-data digest"));
}

// The document's own algorithm decides the hash; the result is fitted to
// the evidence's field (zero-padded or truncated), as Trustee binds it.
TEST_F(ServiceTest, InitDataIsHashedWithItsOwnAlgorithm) {
  TeeKey key = MakeTeeKey();
  const std::string sha256_doc = "version = \"0.1.0\"\nalgorithm = \"sha256\"\n";
  // A 48-byte field (TDX MRCONFIGID) holding a zero-padded SHA-256.
  auto [nonce, cookie] = Auth();
  HttpResponse r =
      Post("/kbs/v0/attest",
           SampleAttestation(nonce, key.jwk, nullptr, sha256_doc,
                             tee::HexEncode(tee::Sha256(sha256_doc)) + std::string(32, '0'))
               .dump(),
           cookie);
  EXPECT_EQ(r.status, 200) << r.body;

  // A 32-byte field (SNP HOST_DATA) holding a truncated SHA-384.
  const std::string sha384_doc = "version = \"0.1.0\"\nalgorithm = \"sha384\"\n";
  auto [nonce2, cookie2] = Auth();
  r = Post("/kbs/v0/attest",
           SampleAttestation(nonce2, key.jwk, nullptr, sha384_doc,
                             tee::HexEncode(tee::Sha384(sha384_doc)).substr(0, 64))
               .dump(),
           cookie2);
  EXPECT_EQ(r.status, 200) << r.body;

  // An algorithm it does not know is a bad request, naming it.
  const std::string md5_doc = "version = \"0.1.0\"\nalgorithm = \"md5\"\n";
  auto [nonce3, cookie3] = Auth();
  r = Post(
      "/kbs/v0/attest",
      SampleAttestation(nonce3, key.jwk, nullptr, md5_doc, tee::HexEncode(tee::Sha384(md5_doc)))
          .dump(),
      cookie3);
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(Detail(r), HasSubstr("md5"));
}

TEST_F(ServiceTest, PolicyCanRequireTheInitDataDigest) {
  std::string init =
      "version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\nkbs_url = \"http://127.0.0.1\"\n";
  auto store = ResourceStore::Open(config_.state_dir);
  ASSERT_TRUE(SetPolicy(*store, "default/key/k2",
                        absl::StrCat(R"({"allowed_tees": ["sample"], "init_data_digests": [")",
                                     tee::HexEncode(tee::Sha384(init)), R"("]})"))
                  .ok());
  TeeKey key = MakeTeeKey();
  std::string without = Attested(key);
  HttpResponse r = Get("/kbs/v0/resource/default/key/k2", without);
  EXPECT_EQ(r.status, 403);
  EXPECT_THAT(Detail(r), HasSubstr("carries none"));
  auto [nonce, cookie] = Auth();
  ASSERT_EQ(Post("/kbs/v0/attest", SampleAttestation(nonce, key.jwk, nullptr, init).dump(), cookie)
                .status,
            200);
  r = Get("/kbs/v0/resource/default/key/k2", cookie);
  EXPECT_EQ(r.status, 200) << r.body;
}

// Real SNP and TDX evidence reaches its verifier through /attest: the SNP
// chain verifies from --snp-certs-dir and only the binding (the vector was
// made for another nonce) is refused; TDX without a root CA is refused
// saying why.
TEST_F(ServiceTest, HardwareEvidenceIsVerifiedThroughAttest) {
  ASSERT_TRUE(testing::HaveTestdata()) << "no test vectors at " << testing::TestdataPath("");
  config_.verifier.snp_certs_dir = testing::TestdataPath("snp");
  auto service = KbsService::Create(config_, [this] { return now_; });
  ASSERT_TRUE(service.ok()) << service.status();
  service_ = *std::move(service);
  TeeKey key = MakeTeeKey();

  HttpResponse auth = Post("/kbs/v0/auth", AuthRequest("snp").dump());
  ASSERT_EQ(auth.status, 200);
  std::string nonce = nlohmann::json::parse(auth.body)["nonce"];
  std::string report =
      *tee::HexDecode(absl::StripAsciiWhitespace(testing::Slurp("snp/report_milan.hex")));
  std::string vcek = testing::Slurp("snp/vcek_milan.der");
  nlohmann::json attestation = SampleAttestation(nonce, key.jwk);
  attestation["tee-evidence"]["primary_evidence"] = {
      {"attestation_report", tee::Base64Encode(report)},
      {"cert_chain",
       {{{"cert_type", "VCEK"}, {"data", std::vector<unsigned char>(vcek.begin(), vcek.end())}}}}};
  HttpResponse r = Post("/kbs/v0/attest", attestation.dump(), Cookie(auth));
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Detail(r), HasSubstr("snp evidence refused: SEV-SNP REPORT_DATA"));

  auth = Post("/kbs/v0/auth", AuthRequest("tdx").dump());
  nonce = nlohmann::json::parse(auth.body)["nonce"].get<std::string>();
  attestation = SampleAttestation(nonce, key.jwk);
  attestation["tee-evidence"]["primary_evidence"] = {
      {"cc_eventlog", nullptr},
      {"quote", tee::Base64Encode(testing::Slurp("tdx/tdx_quote_5.dat"))}};
  r = Post("/kbs/v0/attest", attestation.dump(), Cookie(auth));
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(Detail(r), HasSubstr("no collateral"));
}

// Hostile load (docs/kbs.md): sessions that never attested cannot crowd
// out the others.
TEST(SessionStoreTest, AFloodOfUnattestedSessionsEvictsOnlyItsOwnOldest) {
  absl::Time now = absl::FromUnixSeconds(1700000000);
  SessionStore store(absl::Seconds(30), [&] { return now; }, /*max_sessions=*/100,
                     /*max_pending=*/50);
  // A guest that attested before the flood.
  auto attested = store.Create("sample");
  ASSERT_TRUE(attested.ok());
  ASSERT_TRUE(store.ConsumeNonce(attested->id).ok());
  store.SetToken(attested->id, "token-a", now + absl::Minutes(5));
  auto first_flood = store.Create("sample");
  ASSERT_TRUE(first_flood.ok());
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(store.Create("sample").ok()) << "auth refused at " << i;
  }
  SessionStore::Counts c = store.counts();
  EXPECT_EQ(c.pending, 50u);
  EXPECT_EQ(c.attested, 1u);
  EXPECT_EQ(c.evicted_pending, 10001u - 50u);
  EXPECT_EQ(*store.Token(attested->id), "token-a");
  // The oldest flood session went first.
  EXPECT_THAT(store.ConsumeNonce(first_flood->id).status().message(), HasSubstr("unknown"));

  // A genuine guest that authenticates during the flood can attest until
  // max_pending newer sessions came.
  auto genuine = store.Create("sample");
  ASSERT_TRUE(genuine.ok());
  for (int i = 0; i < 49; ++i) ASSERT_TRUE(store.Create("sample").ok());
  ASSERT_TRUE(store.ConsumeNonce(genuine->id).ok());
  store.SetToken(genuine->id, "token-g", now + absl::Minutes(5));
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(store.Create("sample").ok());
  EXPECT_EQ(*store.Token(genuine->id), "token-g");
  EXPECT_EQ(store.counts().attested, 2u);
}

TEST(SessionStoreTest, UnattestedSessionsLiveOnlyTheNonceTtlAttestedOnesTheirToken) {
  absl::Time now = absl::FromUnixSeconds(1700000000);
  SessionStore store(absl::Seconds(30), [&] { return now; });
  auto pending = store.Create("sample");
  auto attested = store.Create("sample");
  ASSERT_TRUE(pending.ok() && attested.ok());
  ASSERT_TRUE(store.ConsumeNonce(attested->id).ok());
  store.SetToken(attested->id, "t", now + absl::Minutes(5));
  now += absl::Seconds(31);
  EXPECT_EQ(store.counts().pending, 0u);
  EXPECT_EQ(store.counts().attested, 1u);
  EXPECT_TRUE(store.Token(attested->id).ok());
  now += absl::Minutes(5);
  EXPECT_EQ(store.counts().attested, 0u);
  EXPECT_FALSE(store.Token(attested->id).ok());
}

TEST(SessionStoreTest, AttestedTableIsBoundedToo) {
  absl::Time now = absl::FromUnixSeconds(1700000000);
  SessionStore store(absl::Seconds(30), [&] { return now; }, /*max_sessions=*/3);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto s = store.Create("sample");
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(store.ConsumeNonce(s->id).ok());
    store.SetToken(s->id, "t", now + absl::Minutes(5) + absl::Seconds(i));
    ids.push_back(s->id);
  }
  EXPECT_EQ(store.counts().attested, 3u);
  EXPECT_FALSE(store.Token(ids[0]).ok());
  EXPECT_TRUE(store.Token(ids[4]).ok());
}

TEST(AuthRateLimiterTest, BurstThenRateAndBoundedClients) {
  absl::Time now = absl::FromUnixSeconds(1700000000);
  AuthRateLimiter limiter(/*rate=*/10, /*burst=*/5, [&] { return now; }, /*max_clients=*/8);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.Admit("10.0.0.1").ok());
  absl::Status refused = limiter.Admit("10.0.0.1");
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("10.0.0.1"));
  EXPECT_THAT(refused.message(), HasSubstr("retry after"));
  EXPECT_TRUE(limiter.Admit("10.0.0.2").ok()) << "another client is not limited";
  now += absl::Milliseconds(100);  // one token back
  EXPECT_TRUE(limiter.Admit("10.0.0.1").ok());
  EXPECT_FALSE(limiter.Admit("10.0.0.1").ok());
  for (int i = 0; i < 1000; ++i) limiter.Admit(absl::StrCat("192.0.2.", i)).IgnoreError();
  EXPECT_LE(limiter.clients(), 8u);
  AuthRateLimiter unlimited(0, 1, [&] { return now; });
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(unlimited.Admit("10.0.0.1").ok());
}

TEST_F(ServiceTest, AuthIsRateLimitedPerClientWith429) {
  int refused = 0;
  for (int i = 0; i < 2 * static_cast<int>(kDefaultAuthBurst); ++i) {
    HttpResponse r = service_->Handle({.method = "POST", .path = "/kbs/v0/auth",
                                       .body = AuthRequest().dump(), .cookie = "",
                                       .authorization = "", .client = "198.51.100.7"});
    if (r.status == 429) {
      ++refused;
      EXPECT_THAT(Type(r), HasSubstr("TooManyRequests"));
      EXPECT_THAT(Detail(r), HasSubstr("198.51.100.7"));
    } else {
      EXPECT_EQ(r.status, 200) << r.body;
    }
  }
  EXPECT_EQ(refused, static_cast<int>(kDefaultAuthBurst));
  // The fake clock stands still; another address is served.
  HttpResponse other = service_->Handle({.method = "POST", .path = "/kbs/v0/auth",
                                         .body = AuthRequest().dump(), .cookie = "",
                                         .authorization = "", .client = "198.51.100.8"});
  EXPECT_EQ(other.status, 200);
}

TEST(RateLimitKeyTest, Ipv4AndIpv6Slash64) {
  EXPECT_EQ(RateLimitKey("10.1.2.3"), "10.1.2.3");
  EXPECT_EQ(RateLimitKey("::ffff:10.1.2.3"), "10.1.2.3");
  EXPECT_EQ(RateLimitKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
  EXPECT_EQ(RateLimitKey("2001:db8:1:2::1"), RateLimitKey("2001:db8:1:2::2"));
}

TEST(CookieTest, FindsTheSessionCookie) {
  EXPECT_EQ(CookieValue("a=b; kbs-session-id=abc; c=d", "kbs-session-id"), "abc");
  EXPECT_EQ(CookieValue("kbs-session-id=x", "kbs-session-id"), "x");
  EXPECT_EQ(CookieValue("xkbs-session-id=y", "kbs-session-id"), "");
  EXPECT_EQ(CookieValue("", "kbs-session-id"), "");
}

}  // namespace
}  // namespace cloak::kbs
