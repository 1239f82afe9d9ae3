// The real cloak-kbs binary on 127.0.0.1 (ephemeral port), driven with
// libcurl through auth → attest (sample evidence) → resource, and refused
// where it must be. Resources and policies are put with `cloak-kbs admin`.
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <algorithm>
#include <atomic>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "tests/kbs/http_client.h"
#include "tests/kbs/kbs_client.h"
#include "tests/kbs/test_util.h"

namespace cloak::kbs {
namespace {

using testing::AuthRequest;
using testing::Client;
using testing::DecryptJwe;
using ::testing::HasSubstr;
using testing::MakeTeeKey;
using testing::Reply;
using testing::SampleAttestation;
using testing::TeeKey;


// Runs `cloak-kbs args...` to completion; returns its exit code.
int RunKbs(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv = {CLOAK_KBS_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions options;
  options.stdout_path = log;
  options.stderr_path = log;
  auto p = Subprocess::Spawn(argv, options);
  if (!p.ok()) return -1;
  auto exit = p->Wait(absl::Seconds(30));
  return exit.ok() ? exit->exit_code : -1;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A running cloak-kbs on 127.0.0.1 with its state dir.
class KbsProcess {
 public:
  static std::unique_ptr<KbsProcess> Start(const std::string& dir, std::vector<std::string> extra) {
    auto kbs = std::unique_ptr<KbsProcess>(new KbsProcess());
    kbs->log_ = dir + "/kbs.log";
    std::string port_file = dir + "/port";
    std::filesystem::remove(port_file);
    std::vector<std::string> argv = {CLOAK_KBS_BINARY, "serve",          "--state-dir",
                                     dir + "/state",   "--listen",       "127.0.0.1:0",
                                     "--port-file",    port_file,        "--log-level",
                                     "debug"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    SpawnOptions options;
    options.stdout_path = kbs->log_;
    options.stderr_path = kbs->log_;
    options.stop_grace = absl::Seconds(3);
    auto p = Subprocess::Spawn(argv, options);
    if (!p.ok()) return nullptr;
    kbs->process_.emplace(*std::move(p));
    for (int i = 0; i < 200; ++i) {
      std::string text(absl::StripAsciiWhitespace(ReadAll(port_file)));
      if (!text.empty() && absl::SimpleAtoi(text, &kbs->port_)) return kbs;
      if (kbs->process_->Poll().has_value()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::cerr << "cloak-kbs did not start; its log:\n" << ReadAll(kbs->log_);
    return nullptr;
  }
  int port() const { return port_; }
  pid_t pid() const { return process_->pid(); }
  std::string log() const { return ReadAll(log_); }
  int Stop() { return process_->Stop(absl::Seconds(3)).exit_code; }

 private:
  std::optional<Subprocess> process_;
  std::string log_;
  int port_ = 0;
};

class KbsIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("kbs-it-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(*std::move(dir));
    state_ = dir_->Join("state");
    std::ofstream(dir_->Join("k1")) << "image-key-1";
    std::ofstream(dir_->Join("allow-sample.json")) << R"({"allowed_tees": ["sample"]})";
    std::ofstream(dir_->Join("deny-sample.json"))
        << R"({"allowed_tees": ["snp", "tdx"], "allow_any_launch": true})";
    std::string log = dir_->Join("admin.log");
    for (const char* r : {"default/key/k1", "default/key/hw-only"}) {
      ASSERT_EQ(RunKbs({"admin", "put-resource", "--state-dir", state_, r, "--file",
                        dir_->Join("k1")},
                       log),
                0)
          << ReadAll(log);
    }
    ASSERT_EQ(RunKbs({"admin", "set-policy", "--state-dir", state_, "default/key/k1", "--file",
                      dir_->Join("allow-sample.json")},
                     log),
              0)
        << ReadAll(log);
    ASSERT_EQ(RunKbs({"admin", "set-policy", "--state-dir", state_, "default/key/hw-only",
                      "--file", dir_->Join("deny-sample.json")},
                     log),
              0)
        << ReadAll(log);
  }

  void StartKbs(std::vector<std::string> extra = {"--insecure-http"}) {
    kbs_ = KbsProcess::Start(dir_->path().string(), std::move(extra));
    ASSERT_NE(kbs_, nullptr);
  }
  std::string Base() const { return absl::StrCat("http://127.0.0.1:", kbs_->port()); }

  // auth + attest with sample evidence for `key`; returns the token.
  std::string Attest(Client& client, const TeeKey& key) {
    Reply auth = client.Post("/kbs/v0/auth", AuthRequest().dump());
    EXPECT_EQ(auth.status, 200) << auth.error << auth.body;
    std::string nonce = nlohmann::json::parse(auth.body)["nonce"];
    Reply attest = client.Post("/kbs/v0/attest", SampleAttestation(nonce, key.jwk).dump());
    EXPECT_EQ(attest.status, 200) << attest.body;
    auto j = nlohmann::json::parse(attest.body, nullptr, false);
    return j.is_object() ? j.value("token", "") : "";
  }

  std::optional<TempDir> dir_;
  std::string state_;
  std::unique_ptr<KbsProcess> kbs_;
};

TEST_F(KbsIntegrationTest, AuthAttestResourceWithSampleEvidence) {
  StartKbs();
  TeeKey key = MakeTeeKey("P-256");
  Client client(Base());
  auto start = std::chrono::steady_clock::now();
  std::string token = Attest(client, key);
  Reply r = client.Get("/kbs/v0/resource/default/key/k1");
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  auto plaintext = DecryptJwe(nlohmann::json::parse(r.body), key.key.get());
  ASSERT_TRUE(plaintext.ok()) << plaintext.status();
  EXPECT_EQ(*plaintext, "image-key-1");
  std::cout << "auth + attest + resource round trip on loopback: "
            << std::chrono::duration<double, std::milli>(elapsed).count() << " ms\n";

  // A second guest using only the bearer token (no cookie).
  Client bearer(Base());
  r = bearer.Get("/kbs/v0/resource/default/key/k1", token);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(*DecryptJwe(nlohmann::json::parse(r.body), key.key.get()), "image-key-1");

  std::string log = kbs_->log();
  EXPECT_THAT(log, HasSubstr("step=auth"));
  EXPECT_THAT(log, HasSubstr("step=attest tee=sample"));
  EXPECT_THAT(log, HasSubstr("step=resource path=default/key/k1 tee=sample status=200"));
  EXPECT_THAT(log, HasSubstr("duration_ms="));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("image-key-1")));  // never log secrets
  EXPECT_EQ(kbs_->Stop(), 0) << kbs_->log();  // SIGTERM: clean exit
}

// A /proc/<pid>/status field in KiB (VmRSS, VmHWM), or -1.
long ProcStatusKib(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, field + ":")) {
      long kib = -1;
      std::string value(absl::StripAsciiWhitespace(line.substr(field.size() + 1)));
      value = value.substr(0, value.find(' '));
      return absl::SimpleAtoi(value, &kib) ? kib : -1;
    }
  }
  return -1;
}

// Hostile load (docs/reliability.md, "Key broker under hostile load"): 8
// clients, each from its own loopback address, send POST /kbs/v0/auth as
// fast as they can while a genuine guest from 127.0.0.2 attests (sample
// evidence) and fetches its key again and again. Every genuine round trip
// must succeed; nothing may answer 5xx; the KBS's memory stays bounded.
struct FloodResult {
  uint64_t sent = 0, ok = 0, limited = 0, other = 0;
  double seconds = 0;
  int genuine_ok = 0, genuine_total = 0;
  double genuine_median_ms = 0, genuine_max_ms = 0;
  long peak_rss_kib = -1, rss_kib = -1;
};

FloodResult FloodWhileAttesting(const std::string& base, pid_t kbs_pid, int rounds) {
  constexpr int kFlooders = 8;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> sent{0}, ok{0}, limited{0}, other{0};
  std::vector<std::thread> flooders;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kFlooders; ++i) {
    flooders.emplace_back([&, i] {
      Client c(base);
      c.SetSourceAddress(absl::StrCat("127.0.0.", 10 + i));
      const std::string body = AuthRequest().dump();
      while (!stop.load()) {
        Reply r = c.Post("/kbs/v0/auth", body);
        ++sent;
        if (r.status == 200) {
          ++ok;
        } else if (r.status == 429) {
          ++limited;
        } else {
          ++other;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the flood is on
  FloodResult result;
  std::vector<double> latencies;
  for (int i = 0; i < rounds; ++i) {
    TeeKey key = MakeTeeKey();
    Client guest(base);  // a fresh guest: fresh cookie jar
    guest.SetSourceAddress("127.0.0.2");
    const auto t0 = std::chrono::steady_clock::now();
    Reply auth = guest.Post("/kbs/v0/auth", AuthRequest().dump());
    bool good = false;
    if (auth.status == 200) {
      std::string nonce = nlohmann::json::parse(auth.body)["nonce"];
      Reply attest = guest.Post("/kbs/v0/attest", SampleAttestation(nonce, key.jwk).dump());
      if (attest.status == 200) {
        Reply r = guest.Get("/kbs/v0/resource/default/key/k1");
        if (r.status == 200) {
          auto plain = DecryptJwe(nlohmann::json::parse(r.body), key.key.get());
          good = plain.ok() && *plain == "image-key-1";
        } else {
          ADD_FAILURE() << "round " << i << ": resource " << r.status << " " << r.body;
        }
      } else {
        ADD_FAILURE() << "round " << i << ": attest " << attest.status << " " << attest.body;
      }
    } else {
      ADD_FAILURE() << "round " << i << ": auth " << auth.status << " " << auth.error
                    << auth.body;
    }
    latencies.push_back(std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - t0)
                            .count());
    ++result.genuine_total;
    if (good) ++result.genuine_ok;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  result.peak_rss_kib = ProcStatusKib(kbs_pid, "VmHWM");
  result.rss_kib = ProcStatusKib(kbs_pid, "VmRSS");
  stop = true;
  for (std::thread& t : flooders) t.join();
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.sent = sent;
  result.ok = ok;
  result.limited = limited;
  result.other = other;
  std::sort(latencies.begin(), latencies.end());
  result.genuine_median_ms = latencies[latencies.size() / 2];
  result.genuine_max_ms = latencies.back();
  std::cout << "flood: " << kFlooders << " clients, " << result.sent << " auth requests in "
            << result.seconds << " s (" << result.sent / result.seconds << "/s): " << result.ok
            << " answered 200, " << result.limited << " 429, " << result.other << " other\n"
            << "genuine guest: " << result.genuine_ok << "/" << result.genuine_total
            << " auth+attest+resource succeeded, median " << result.genuine_median_ms
            << " ms, max " << result.genuine_max_ms << " ms\n"
            << "cloak-kbs memory: VmRSS " << result.rss_kib << " KiB, peak (VmHWM) "
            << result.peak_rss_kib << " KiB\n";
  return result;
}

TEST_F(KbsIntegrationTest, GenuineGuestGetsItsKeyWhileEightClientsFloodAuth) {
  StartKbs();  // the default limits
  FloodResult r = FloodWhileAttesting(Base(), kbs_->pid(), 12);
  EXPECT_EQ(r.genuine_ok, r.genuine_total);
  EXPECT_EQ(r.other, 0u) << "no 5xx (TooManySessions) under flood";
  EXPECT_GT(r.limited, 0u) << "the per-client rate limit never acted";
  // Each flooder gets at most its burst plus the rate over the run.
  const double admitted_max = 8 * (kDefaultAuthBurst + kDefaultAuthRate * (r.seconds + 1));
  EXPECT_LE(static_cast<double>(r.ok), admitted_max);
  EXPECT_GT(r.peak_rss_kib, 0);
  EXPECT_LT(r.peak_rss_kib, 128 * 1024) << "cloak-kbs memory grew under flood";
  EXPECT_THAT(kbs_->log(), HasSubstr("over the per-client rate"));
}

TEST_F(KbsIntegrationTest, GenuineGuestGetsItsKeyWhileFloodedFromUnlimitedAddresses) {
  // No rate limit (as if every request came from a new address): the
  // pending table fills and evicts its oldest; the genuine guest, which
  // answers its challenge at once, is never the oldest.
  StartKbs({"--insecure-http", "--auth-rate", "0"});
  FloodResult r = FloodWhileAttesting(Base(), kbs_->pid(), 12);
  EXPECT_EQ(r.genuine_ok, r.genuine_total);
  EXPECT_EQ(r.other, 0u) << "no 5xx (TooManySessions) under flood";
  EXPECT_EQ(r.limited, 0u);
  EXPECT_GT(r.ok, kMaxPendingSessions) << "the flood did not fill the pending table";
  EXPECT_LT(r.peak_rss_kib, 128 * 1024) << "cloak-kbs memory grew under flood";
}

TEST_F(KbsIntegrationTest, PolicyForbiddingSampleEvidenceRefuses) {
  StartKbs();
  TeeKey key = MakeTeeKey();
  Client client(Base());
  Attest(client, key);
  Reply r = client.Get("/kbs/v0/resource/default/key/hw-only");
  EXPECT_EQ(r.status, 403);
  EXPECT_THAT(r.body, HasSubstr("/errors/PolicyDeny"));
  EXPECT_THAT(r.Detail(), HasSubstr("evidence type \"sample\" is not allowed"));
}

TEST_F(KbsIntegrationTest, ReusedNonceIsRefused) {
  StartKbs();
  TeeKey key = MakeTeeKey();
  Client client(Base());
  Reply auth = client.Post("/kbs/v0/auth", AuthRequest().dump());
  ASSERT_EQ(auth.status, 200);
  std::string body =
      SampleAttestation(nlohmann::json::parse(auth.body)["nonce"], key.jwk).dump();
  ASSERT_EQ(client.Post("/kbs/v0/attest", body).status, 200);
  Reply replay = client.Post("/kbs/v0/attest", body);
  EXPECT_EQ(replay.status, 401);
  EXPECT_THAT(replay.Detail(), HasSubstr("nonce was already used"));
}

TEST_F(KbsIntegrationTest, AbsentOrExpiredTokenIsRefused) {
  StartKbs({"--insecure-http", "--token-ttl", "2s"});
  Client stranger(Base());
  Reply r = stranger.Get("/kbs/v0/resource/default/key/k1");
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(r.Detail(), HasSubstr("no attestation token"));

  TeeKey key = MakeTeeKey();
  Client client(Base());
  std::string token = Attest(client, key);
  ASSERT_EQ(client.Get("/kbs/v0/resource/default/key/k1").status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  r = client.Get("/kbs/v0/resource/default/key/k1");
  EXPECT_EQ(r.status, 401);
  r = stranger.Get("/kbs/v0/resource/default/key/k1", token);
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(r.Detail(), HasSubstr("expired"));
}

TEST_F(KbsIntegrationTest, UnknownResourceAndMalformedRequests) {
  StartKbs();
  TeeKey key = MakeTeeKey();
  Client client(Base());
  Attest(client, key);
  Reply r = client.Get("/kbs/v0/resource/default/key/missing");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.Detail(), HasSubstr("not found"));
  r = client.Post("/kbs/v0/auth", "{not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("SerdeError"));
  r = client.Post("/kbs/v0/auth", AuthRequest("sample", "0.1.0").dump());
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(r.Detail(), HasSubstr("0.4.0"));
  r = client.Get("/nothing-here");
  EXPECT_EQ(r.status, 404);
  // Still serving after all of that.
  EXPECT_EQ(client.Post("/kbs/v0/auth", AuthRequest().dump()).status, 200);
}

// A self-signed certificate for 127.0.0.1, written as PEM cert and key.
void WriteTlsCert(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("cloak-kbs test"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name,
                                            const_cast<char*>("IP:127.0.0.1"));
  X509_add_ext(cert, san, -1);
  X509_EXTENSION_free(san);
  X509_sign(cert, key, EVP_sha256());
  FILE* f = std::fopen(cert_path.c_str(), "w");
  PEM_write_X509(f, cert);
  std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(cert);
  EVP_PKEY_free(key);
}

TEST_F(KbsIntegrationTest, ServesTheWholeFlowOverTls) {
  std::string cert = dir_->Join("tls.crt"), key_file = dir_->Join("tls.key");
  WriteTlsCert(cert, key_file);
  StartKbs({"--tls-cert", cert, "--tls-key", key_file});
  std::string base = absl::StrCat("https://127.0.0.1:", kbs_->port());
  Client untrusted(base);  // without the CA: the handshake must fail
  EXPECT_FALSE(untrusted.Post("/kbs/v0/auth", AuthRequest().dump()).error.empty());
  TeeKey key = MakeTeeKey("P-384");
  Client client(base, cert);
  Attest(client, key);
  Reply r = client.Get("/kbs/v0/resource/default/key/k1");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(*DecryptJwe(nlohmann::json::parse(r.body), key.key.get()), "image-key-1");
}

TEST_F(KbsIntegrationTest, RefusesPlainHttpBeyondLoopbackAndBadFlags) {
  std::string log = dir_->Join("serve.log");
  EXPECT_EQ(RunKbs({"serve", "--state-dir", state_, "--listen", "0.0.0.0:0", "--insecure-http"},
                   log),
            1);
  EXPECT_THAT(ReadAll(log), HasSubstr("only served on loopback"));
  EXPECT_EQ(RunKbs({"serve", "--state-dir", state_, "--listen", "127.0.0.1:0"}, log), 1);
  EXPECT_THAT(ReadAll(log), HasSubstr("--insecure-http"));
  EXPECT_EQ(RunKbs({"admin", "set-policy", "--state-dir", state_, "default/key/k1", "--file",
                    dir_->Join("k1")},
                   log),
            1);
  EXPECT_THAT(ReadAll(log), HasSubstr("policy: not valid JSON"));
  // An SNP policy that pins no launch is refused (the KBS fails closed).
  std::ofstream(dir_->Join("unpinned.json")) << R"({"allowed_tees": ["snp"]})";
  EXPECT_EQ(RunKbs({"admin", "set-policy", "--state-dir", state_, "default/key/k1", "--file",
                    dir_->Join("unpinned.json")},
                   log),
            1);
  EXPECT_THAT(ReadAll(log), HasSubstr("allow_any_launch"));
  // Reference values as `cloak measure snp --json` prints them go into the
  // policy through import-reference-values.
  std::ofstream(dir_->Join("rv.json")) << R"({"tee":"snp","reference_values":{"measurement":[")"
                                       << std::string(96, 'c') << R"("]},"inputs":{}})";
  EXPECT_EQ(RunKbs({"admin", "import-reference-values", "--state-dir", state_,
                    "default/key/imported", "--file", dir_->Join("rv.json")},
                   log),
            0)
      << ReadAll(log);
  EXPECT_EQ(RunKbs({"admin", "show-policy", "--state-dir", state_, "default/key/imported"}, log),
            0);
  EXPECT_THAT(ReadAll(log), HasSubstr(std::string(96, 'c')));
  EXPECT_EQ(RunKbs({"admin", "put-resource", "--state-dir", state_, "../x/y", "--file",
                    dir_->Join("k1")},
                   log),
            1);
  EXPECT_EQ(RunKbs({"bogus"}, log), 2);
  // TDX collateral is loaded at start: without the root it chains to, or
  // with a file missing, cloak-kbs refuses to start and says what to supply.
  std::filesystem::create_directories(dir_->Join("collateral"));
  EXPECT_EQ(RunKbs({"serve", "--state-dir", state_, "--listen", "127.0.0.1:0", "--insecure-http",
                    "--tdx-collateral-dir", dir_->Join("collateral")},
                   log),
            1);
  EXPECT_THAT(ReadAll(log), HasSubstr("--tdx-root-ca"));
  std::ofstream(dir_->Join("root.pem")) << testing::SelfSignedPem("Intel SGX Root CA");
  EXPECT_EQ(RunKbs({"serve", "--state-dir", state_, "--listen", "127.0.0.1:0", "--insecure-http",
                    "--tdx-root-ca", dir_->Join("root.pem"), "--tdx-collateral-dir",
                    dir_->Join("collateral")},
                   log),
            1);
  EXPECT_THAT(ReadAll(log), HasSubstr("tcb_info.json"));
}

}  // namespace
}  // namespace cloak::kbs
