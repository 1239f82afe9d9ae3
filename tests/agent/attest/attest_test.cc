// Unit tests of agent/attest: init-data, report-data binding, attesters over
// a fake configfs-tsm, the key broker's JWE opened with the tee key, KBS URL
// rules.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/attest/attester.h"
#include "agent/attest/initdata.h"
#include "agent/attest/kbs_client.h"
#include "common/jose/jose.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "common/tee/report_data.h"
#include "common/tee/snp_report.h"
#include "common/tee/snp_report_json.h"
#include "common/tee/tdx_quote.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::agent::attest {
namespace {

using jose::DecryptJwe;
using jose::DecryptJweText;
using jose::PrivateKey;
using tee::Base64Encode;
using tee::Base64UrlEncode;
using tee::HashAlgorithm;
using tee::HexEncode;
using tee::ReportData64;
using tee::Sha256;
using tee::Sha384;
using ::testing::HasSubstr;

absl::StatusOr<std::string> Base64Decode(absl::string_view text) {
  return tee::Base64Decode(text, tee::Base64Alphabet::kEither);
}

constexpr char kInitData[] = R"(version = "0.1.0"
algorithm = "sha256"

[data]
kbs_url = "http://127.0.0.1:8080"
image_keys = ["default/key/image1", "default/key/image-2"]
policy = "whatever: kept, not ours"
)";

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void Spit(const std::string& path, absl::string_view data) {
  std::ofstream(path, std::ios::binary) << data;
}

TEST(InitDataTest, ParsesTrusteeFormatAndHashesExactBytes) {
  auto d = ParseInitData(kInitData);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->version, "0.1.0");
  EXPECT_EQ(d->algorithm, HashAlgorithm::kSha256);
  EXPECT_EQ(d->kbs_url, "http://127.0.0.1:8080");
  EXPECT_THAT(d->image_keys, ::testing::ElementsAre("default/key/image1", "default/key/image-2"));
  EXPECT_EQ(d->raw, kInitData);
  EXPECT_EQ(HexEncode(d->digest), HexEncode(Sha256(kInitData)));
  // Another spelling of the same settings is another digest: the bytes count.
  std::string spaced = std::string(kInitData) + "\n";
  EXPECT_NE(ParseInitData(spaced)->digest, d->digest);
}

TEST(InitDataTest, DigestOfAKnownDocument) {
  // sha256 of 'version = "0.1.0"\n' computed with sha256sum.
  std::string doc = "version = \"0.1.0\"\nalgorithm = \"sha256\"\n";
  auto d = ParseInitData(doc);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(HexEncode(Sha256("version = \"0.1.0\"\n")),
            "68e1dac0bd73b8731f056297ab05245dc5bdea85cb34263e0977470ea933e20e");
  EXPECT_EQ(d->digest.size(), 32u);
  auto d384 = ParseInitData("version = \"0.1.0\"\nalgorithm = \"sha384\"\n");
  ASSERT_TRUE(d384.ok());
  EXPECT_EQ(d384->digest.size(), 48u);
  auto d512 = ParseInitData("version = \"0.1.0\"\nalgorithm = \"sha512\"\n");
  ASSERT_TRUE(d512.ok());
  EXPECT_EQ(d512->digest.size(), 64u);
}

TEST(InitDataTest, ErrorsNameTheKey) {
  struct Case {
    std::string doc;
    std::string want;
  } cases[] = {
      {"version = 1\nalgorithm = \"sha256\"\n", "version"},
      {"version = \"0.2.0\"\nalgorithm = \"sha256\"\n", "0.2.0"},
      {"version = \"0.1.0\"\nalgorithm = \"md5\"\n", "algorithm"},
      {"version = \"0.1.0\"\n", "algorithm"},
      {"version = \"0.1.0\"\nalgorithm = \"sha256\"\ndata = 3\n", "data"},
      {"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nkbs_url = 5\n", "data.kbs_url"},
      {"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nkbs_cert = \"x\"\n", "data.kbs_cert"},
      {"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nkbs_url = \"http://127.0.0.1\"\n"
       "image_keys = \"a/b/c\"\n",
       "data.image_keys"},
      {"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nkbs_url = \"http://127.0.0.1\"\n"
       "image_keys = [\"a/b/c\", 7]\n",
       "data.image_keys[1]"},
      {"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nkbs_url = \"http://127.0.0.1\"\n"
       "image_keys = [\"../b/c\"]\n",
       "data.image_keys[0]"},
      {"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nimage_keys = [\"a/b/c\"]\n",
       "kbs_url"},
      {"version = \"0.1.0\"\nalgorithm = [\n", "not valid TOML"},
  };
  for (const Case& c : cases) {
    auto d = ParseInitData(c.doc);
    ASSERT_FALSE(d.ok()) << c.doc;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << c.doc;
    EXPECT_THAT(std::string(d.status().message()), HasSubstr(c.want)) << c.doc;
  }
}

// docs/attestation.md: SHA-384 of the RFC 8785 form of
// {"additional-evidence","nonce","tee-pubkey"}; checked against a literal and
// against the digest over the JWK as the key broker re-serializes it after
// parsing (jose::ParsePublicJwk).
TEST(ReportDataTest, BindsNonceAndTeeKeyExactlyAsTheKbs) {
  nlohmann::json jwk{{"kty", "EC"}, {"crv", "P-256"}, {"alg", "ECDH-ES+A256KW"},
                     {"x", "AAAA"},  {"y", "BBBB"}};
  std::string nonce = "bm9uY2U=";
  std::string want_json =
      R"({"additional-evidence":"","nonce":"bm9uY2U=","tee-pubkey":{"alg":"ECDH-ES+A256KW",)"
      R"("crv":"P-256","kty":"EC","x":"AAAA","y":"BBBB"}})";
  EXPECT_EQ(*tee::RuntimeDataDigest(nonce, jwk), Sha384(want_json));

  for (int i = 0; i < 3; ++i) {
    auto key = PrivateKey::GenerateEc("P-256");
    ASSERT_TRUE(key.ok());
    auto ours = key->PublicJwk();
    ASSERT_TRUE(ours.ok());
    nlohmann::json sent = *ours;
    sent["kid"] = "ignored by the key broker";
    auto parsed = jose::ParsePublicJwk(sent);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    std::string nonce2 = Base64Encode(std::string(32, static_cast<char>('a' + i)));
    EXPECT_EQ(*tee::RuntimeDataDigest(nonce2, parsed->json, ""),
              *tee::RuntimeDataDigest(nonce2, *ours));
  }
  std::string rd = ReportData64(std::string(48, '\x07'));
  EXPECT_EQ(rd, std::string(48, '\x07') + std::string(16, '\0'));
}

TEST(JoseTest, EcJwkHasOnlyDefinedMembers) {
  auto key = PrivateKey::GenerateEc("P-256");
  ASSERT_TRUE(key.ok());
  auto jwk = key->PublicJwk();
  ASSERT_TRUE(jwk.ok());
  EXPECT_EQ(jwk->size(), 5u);
  EXPECT_EQ((*jwk)["crv"], "P-256");
  EXPECT_EQ((*jwk)["alg"], "ECDH-ES+A256KW");
  EXPECT_EQ(Base64Decode((*jwk)["x"].get<std::string>())->size(), 32u);
  EXPECT_EQ((*jwk)["x"].get<std::string>().find('='), std::string::npos);
}

// The key broker's resource JWE (jose::EncryptJwe, what cloak-kbs sends)
// opens with the tee key.
TEST(JoseTest, DecryptsKbsJweForEcAndRsaKeys) {
  auto ec = PrivateKey::GenerateEc("P-256");
  ASSERT_TRUE(ec.ok());
  auto jwk = jose::ParsePublicJwk(*ec->PublicJwk());
  ASSERT_TRUE(jwk.ok());
  std::string secret = "-----BEGIN PRIVATE KEY-----\nnot really\n";
  auto jwe = jose::EncryptJwe(secret, *jwk);
  ASSERT_TRUE(jwe.ok()) << jwe.status();
  auto plain = DecryptJwe(*jwe, *ec);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(*plain, secret);
  auto text = DecryptJweText(jwe->dump(), *ec);
  EXPECT_TRUE(text.ok());

  // Tampering with the ciphertext or the protected header is refused.
  nlohmann::json bad = *jwe;
  std::string ct = *Base64Decode(bad["ciphertext"].get<std::string>());
  ct[0] ^= 1;
  bad["ciphertext"] = Base64UrlEncode(ct);
  EXPECT_EQ(DecryptJwe(bad, *ec).status().code(), absl::StatusCode::kPermissionDenied);
  // Another key does not open it.
  auto other = PrivateKey::GenerateEc("P-256");
  EXPECT_FALSE(DecryptJwe(*jwe, *other).ok());

  auto dir = TempDir::Create("cloak-attest-");
  ASSERT_TRUE(dir.ok());
  ASSERT_EQ(std::system(absl::StrCat("openssl genrsa -out ", dir->Join("k.pem"),
                                     " 2048 2>/dev/null")
                            .c_str()),
            0);
  auto rsa = PrivateKey::FromPem(Slurp(dir->Join("k.pem")));
  ASSERT_TRUE(rsa.ok()) << rsa.status();
  EXPECT_EQ(rsa->Describe(), "RSA-2048");
  auto rjwk = jose::ParsePublicJwk(*rsa->PublicJwk());
  ASSERT_TRUE(rjwk.ok()) << rjwk.status();
  auto rjwe = jose::EncryptJwe(secret, *rjwk);
  ASSERT_TRUE(rjwe.ok());
  EXPECT_EQ(*DecryptJwe(*rjwe, *rsa), secret);
  EXPECT_FALSE(PrivateKey::FromPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                   .ok());
}

TEST(KbsUrlTest, PlainHttpOnlyToLoopbackOrQemuHost) {
  for (const char* ok : {"https://kbs.example.com:8080", "https://10.1.2.3", "http://127.0.0.1:8080",
                         "http://127.8.9.1", "http://localhost:1", "http://[::1]:80",
                         "http://10.0.2.2:8080/prefix"}) {
    EXPECT_TRUE(ValidateKbsUrl(ok).ok()) << ok;
  }
  for (const char* bad : {"http://10.0.2.3:8080", "http://kbs.example.com", "ftp://127.0.0.1",
                          "127.0.0.1:8080", "http://", "http://user@127.0.0.1"}) {
    auto s = ValidateKbsUrl(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(std::string(ValidateKbsUrl("http://192.168.1.1").message()), HasSubstr("10.0.2.2"));
}

TEST(KbsUrlTest, NoPlainHttpOutsideDev) {
  const std::string ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  // Dev class: http to the host (loopback or 10.0.2.2) and https with or
  // without a pinned CA.
  for (const char* ok : {"http://127.0.0.1:8080", "http://10.0.2.2:8080", "https://kbs.example"}) {
    EXPECT_TRUE(CheckKbsTransport(ok, /*dev_class=*/true, "").ok()) << ok;
  }
  // Still only to the host.
  EXPECT_FALSE(CheckKbsTransport("http://10.0.2.3", true, "").ok());
  // TEE class: never plain http, not even to loopback or 10.0.2.2 (the
  // host could answer as the KBS there) ...
  for (const char* bad : {"http://127.0.0.1:8080", "http://10.0.2.2:8080", "http://localhost"}) {
    absl::Status s = CheckKbsTransport(bad, /*dev_class=*/false, ca);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr("dev runtime class")) << bad;
  }
  // ... and https only with the CA pinned in the init-data.
  absl::Status unpinned = CheckKbsTransport("https://kbs.example", false, "");
  EXPECT_EQ(unpinned.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unpinned.message()), HasSubstr("data.kbs_cert"));
  EXPECT_TRUE(CheckKbsTransport("https://kbs.example:8080", false, ca).ok());
  // KbsClient::Create applies the rule.
  KbsClientOptions o;
  o.url = "http://127.0.0.1:1";
  EXPECT_FALSE(KbsClient::Create(o).ok());
  o.dev_class = true;
  EXPECT_TRUE(KbsClient::Create(o).ok());
}

TEST(InitDataTest, AgentSettings) {
  const std::string head = "version = \"0.1.0\"\nalgorithm = \"sha384\"\n";
  auto d = ParseInitData(head + "[data.agent]\nlog_level = \"debug\"\nmax_downloads = 5\n"
                                "insecure_registries = [\"10.0.2.2:5000\", \"[::1]:80\"]\n"
                                "pull_retries = 0\npull_retry_backoff_ms = 250\n");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->agent.log_level, "debug");
  EXPECT_EQ(d->agent.max_downloads, 5);
  EXPECT_THAT(d->agent.insecure_registries, ::testing::ElementsAre("10.0.2.2:5000", "[::1]:80"));
  EXPECT_EQ(d->agent.pull_retries, 0);
  EXPECT_EQ(d->agent.pull_retry_backoff_ms, 250);
  // Unset: the class's values.
  auto none = ParseInitData(head);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->agent.log_level, "");
  EXPECT_EQ(none->agent.max_downloads, 0);
  EXPECT_TRUE(none->agent.insecure_registries.empty());
  EXPECT_EQ(none->agent.pull_retries, -1);
  EXPECT_EQ(none->agent.pull_retry_backoff_ms, 0);
  for (const auto& [doc, key] : std::vector<std::pair<std::string, std::string>>{
           {"[data]\nagent = 1\n", "data.agent"},
           {"[data.agent]\nlog_level = \"loud\"\n", "data.agent.log_level"},
           {"[data.agent]\nmax_downloads = 0\n", "data.agent.max_downloads"},
           {"[data.agent]\nmax_downloads = 17\n", "data.agent.max_downloads"},
           {"[data.agent]\npull_retries = 11\n", "data.agent.pull_retries"},
           {"[data.agent]\npull_retries = -1\n", "data.agent.pull_retries"},
           {"[data.agent]\npull_retry_backoff_ms = 5\n", "data.agent.pull_retry_backoff_ms"},
           {"[data.agent]\npull_retry_backoff_ms = \"1s\"\n", "data.agent.pull_retry_backoff_ms"},
           {"[data.agent]\ninsecure_registries = \"r\"\n", "data.agent.insecure_registries"},
           {"[data.agent]\ninsecure_registries = [\"a/b\"]\n", "insecure_registries[0]"},
           {"[data.agent]\ninsecure_registries = [\"\"]\n", "insecure_registries[0]"}}) {
    auto bad = ParseInitData(head + doc);
    ASSERT_FALSE(bad.ok()) << doc;
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr(key)) << doc;
  }
}

// A fake configfs-tsm: a temp dir stands in for /sys/kernel/config/tsm/report
// and the hooks play the kernel.
class FakeTsmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-tsm-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    std::filesystem::create_directories(dir_->Join("tsm/report"));
    options_.tsm_report_dir = dir_->Join("tsm/report");
    options_.sev_guest_device = dir_->Join("no-sev-guest");
    options_.tdx_guest_device = dir_->Join("no-tdx-guest");
    options_.initdata_digest = Sha256(kInitData);
  }

  void PlaySnp(std::string host_data, bool echo_report_data = true, int generation = 1) {
    options_.tsm_after_mkdir = [](const std::string& e) { Spit(e + "/provider", "sev_guest\n"); };
    options_.tsm_after_inblob = [=](const std::string& e) {
      std::string inblob = Slurp(e + "/inblob");
      std::string report(tee::kSnpReportSize, '\0');
      report[tee::kSnpVersionOffset] = 2;
      report[tee::kSnpSignatureAlgoOffset] = 1;
      if (echo_report_data) report.replace(tee::kSnpReportDataOffset, 64, inblob);
      report.replace(tee::kSnpHostDataOffset, 32, host_data);
      Spit(e + "/outblob", report);
      Spit(e + "/generation", absl::StrCat(generation, "\n"));
    };
  }

  void PlayTdx(std::string mrconfigid) {
    options_.tsm_after_mkdir = [](const std::string& e) { Spit(e + "/provider", "tdx_guest\n"); };
    options_.tsm_after_inblob = [=](const std::string& e) {
      std::string inblob = Slurp(e + "/inblob");
      std::string quote(48 + 584 + 4, '\0');
      quote[0] = 4;
      quote[2] = 2;
      quote[4] = static_cast<char>(0x81);
      quote.replace(48 + 184, 48, mrconfigid);
      quote.replace(48 + 520, 64, inblob);
      Spit(e + "/outblob", quote);
      Spit(e + "/generation", "1\n");
    };
  }

  std::optional<TempDir> dir_;
  AttesterOptions options_;
};

TEST_F(FakeTsmTest, SnpEvidenceCarriesTheReportAndChecksHostData) {
  PlaySnp(Sha256(kInitData));
  auto attester = DetectAttester(options_);
  ASSERT_TRUE(attester.ok()) << attester.status();
  EXPECT_EQ((*attester)->tee(), "snp");
  std::string digest(48, '\x5a');
  auto ev = (*attester)->GetEvidence(digest);
  ASSERT_TRUE(ev.ok()) << ev.status();
  // Trustee's form: the sev crate's object, which cloak-kbs reads as well.
  const nlohmann::json& object = (*ev)["attestation_report"];
  ASSERT_TRUE(object.is_object()) << object.dump();
  EXPECT_TRUE(object["current"].contains("major"));
  EXPECT_EQ(object["signature"]["r"].size(), 72u);
  auto report = tee::SnpReportFromJson(object);
  ASSERT_TRUE(report.ok()) << report.status();
  auto fields = tee::ParseSnpReport(*report);
  ASSERT_TRUE(fields.ok());
  EXPECT_EQ(fields->report_data, ReportData64(digest));
  EXPECT_EQ(fields->host_data, Sha256(kInitData));
  // The entry was removed.
  EXPECT_TRUE(std::filesystem::is_empty(options_.tsm_report_dir));
}

TEST_F(FakeTsmTest, SnpRefusesInitDataOtherThanTheLaunched) {
  PlaySnp(std::string(32, '\x01'));
  auto attester = DetectAttester(options_);
  ASSERT_TRUE(attester.ok());
  auto ev = (*attester)->GetEvidence(std::string(48, '\x5a'));
  ASSERT_FALSE(ev.ok());
  EXPECT_EQ(ev.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(ev.status().message()), HasSubstr("HOST_DATA"));
  EXPECT_THAT(std::string(ev.status().message()), HasSubstr(HexEncode(Sha256(kInitData))));
}

TEST_F(FakeTsmTest, SnpRefusesAReportForOtherReportData) {
  PlaySnp(Sha256(kInitData), /*echo_report_data=*/false);
  auto ev = (*DetectAttester(options_))->GetEvidence(std::string(48, '\x5a'));
  EXPECT_EQ(ev.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(ev.status().message()), HasSubstr("REPORT_DATA"));
}

TEST_F(FakeTsmTest, RacingWriterIsDetectedByGeneration) {
  PlaySnp(Sha256(kInitData), true, /*generation=*/2);
  auto ev = (*DetectAttester(options_))->GetEvidence(std::string(48, '\x5a'));
  EXPECT_EQ(ev.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(ev.status().message()), HasSubstr("generation"));
}

TEST_F(FakeTsmTest, TdxQuoteChecksMrConfigId) {
  options_.initdata_digest = Sha384("x");
  PlayTdx(Sha384("x"));
  auto attester = DetectAttester(options_);
  ASSERT_TRUE(attester.ok()) << attester.status();
  EXPECT_EQ((*attester)->tee(), "tdx");
  auto ev = (*attester)->GetEvidence(std::string(48, '\x33'));
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_TRUE((*ev)["cc_eventlog"].is_null());
  auto fields = tee::ParseTdxQuote(*Base64Decode((*ev)["quote"].get<std::string>()));
  ASSERT_TRUE(fields.ok());
  EXPECT_EQ(fields->report_data, ReportData64(std::string(48, '\x33')));

  // sha256 init-data: MRCONFIGID holds it zero-padded to 48 bytes.
  options_.initdata_digest = Sha256("x");
  PlayTdx(Sha256("x") + std::string(16, '\0'));
  EXPECT_TRUE((*DetectAttester(options_))->GetEvidence(std::string(48, '\x33')).ok());
  PlayTdx(Sha384("y"));
  auto bad = (*DetectAttester(options_))->GetEvidence(std::string(48, '\x33'));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("MRCONFIGID"));
}

TEST_F(FakeTsmTest, NoTeeFallsBackToSampleEvidenceWithTheInitDataDigest) {
  std::filesystem::remove_all(options_.tsm_report_dir);
  auto attester = DetectAttester(options_);
  ASSERT_TRUE(attester.ok());
  EXPECT_EQ((*attester)->tee(), "sample");
  std::string digest(48, '\x44');
  auto ev = (*attester)->GetEvidence(digest);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ((*ev)["svn"], "1");
  EXPECT_EQ(*Base64Decode((*ev)["report_data"].get<std::string>()), digest);
  EXPECT_EQ((*ev)["init_data"], HexEncode(Sha256(kInitData)));
}

TEST_F(FakeTsmTest, TdxWithoutConfigfsTsmSaysWhy) {
  std::filesystem::remove_all(options_.tsm_report_dir);
  Spit(options_.tdx_guest_device, "");
  auto attester = DetectAttester(options_);
  EXPECT_EQ(attester.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(attester.status().message()), HasSubstr("configfs-tsm"));
}

TEST(ReportParsingTest, SnpResponseAndCertTable) {
  std::string resp(0x20 + tee::kSnpReportSize, '\0');
  resp[4] = static_cast<char>(tee::kSnpReportSize & 0xff);
  resp[5] = static_cast<char>(tee::kSnpReportSize >> 8);
  resp[0x20] = 2;
  auto report = ParseSnpReportResponse(resp);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->size(), tee::kSnpReportSize);
  resp[0] = 0x16;
  EXPECT_THAT(std::string(ParseSnpReportResponse(resp).status().message()), HasSubstr("0x16"));

  // One VCEK entry, then the terminator, then the certificate.
  std::string table(48, '\0');
  const unsigned char vcek[16] = {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
                                  0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd};
  table.replace(0, 16, reinterpret_cast<const char*>(vcek), 16);
  table[16] = 48;
  table[20] = 3;
  table += "DER";
  auto chain = SnpCertChain(table);
  ASSERT_EQ(chain.size(), 1u);
  EXPECT_EQ(chain[0]["cert_type"], "VCEK");
  // serde's Vec<u8>: an array of numbers.
  EXPECT_EQ(chain[0]["data"], nlohmann::json::array({'D', 'E', 'R'}));
}

}  // namespace
}  // namespace cloak::agent::attest
