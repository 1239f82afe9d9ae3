// The real cloak-kbs with `--snp-certs-dir` of a chain made by
// `cloak-simsp init-chain`, and the real `cloak-simsp serve` answering on a
// unix socket: auth → attest (SNP evidence from the simulated SP, REPORT_DATA
// binding the KBS nonce and tee-pubkey as docs/kbs.md says) → resource, over
// libcurl on 127.0.0.1; and refusals when the measurement, the init-data,
// the binding or the chain differ.
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/process.h"
#include "shim/simsp/crypto.h"
#include "common/tee/sp_protocol.h"
#include "common/temp_dir.h"
#include "tests/kbs/http_client.h"
#include "tests/kbs/kbs_client.h"

namespace cloak::simsp {
namespace {

using ::testing::HasSubstr;
using kbs::testing::AuthRequest;
using kbs::testing::Client;
using kbs::testing::Reply;
using kbs::testing::MakeTeeKey;
using kbs::testing::TeeKey;

constexpr char kManifest[] = R"({
  "schema": 1,
  "cmdline": "console=ttyS0 quiet panic=-1",
  "cmdline_sha256": "__CMDLINE_SHA__",
  "vmlinuz": {"sha256": "391d229a7c641821b7414d001c090043d977e11daf865362d36ea832ccf0dd69"},
  "initrd": {"sha256": "c268f368d54a4208f89211c7067e60268c477c0490f117112178a5219d90c52f"}
})";
constexpr char kCmdline[] = "console=ttyS0 quiet panic=-1 cloak.sandbox=s1";
constexpr char kInitData[] = "algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"policy.rego\" = \"\"\n";


std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs a binary to completion; its exit code (-1 if it could not run).
int RunBinary(const std::vector<std::string>& argv, const std::string& log) {
  SpawnOptions options;
  options.stdout_path = log;
  options.stderr_path = log;
  auto p = Subprocess::Spawn(argv, options);
  if (!p.ok()) return -1;
  auto exit = p->Wait(absl::Seconds(60));
  return exit.ok() ? exit->exit_code : -1;
}

class SimspKbsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("simsp-it-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(*std::move(dir));
    chain_dir_ = dir_->Join("chain");
    std::string log = dir_->Join("setup.log");
    ASSERT_EQ(RunBinary({CLOAK_SIMSP_BINARY, "init-chain", "--dir", chain_dir_, "--rsa-bits", "2048"},
                  log),
              0)
        << ReadAll(log);
    std::string manifest = kManifest;
    manifest.replace(manifest.find("__CMDLINE_SHA__"), 15,
                     tee::HexEncode(tee::Sha256("console=ttyS0 quiet panic=-1")));
    manifest_ = dir_->Join("manifest.json");
    std::ofstream(manifest_) << manifest;

    measurement_ = Measure(kCmdline);
    ASSERT_EQ(measurement_.size(), 96u) << measurement_;
    host_data_hex_ = tee::HexEncode(tee::Sha256(kInitData));

    state_ = dir_->Join("state");
    std::ofstream(dir_->Join("k1")) << "image-key-1";
    std::ofstream(dir_->Join("policy.json")) << nlohmann::json{
        {"allowed_tees", {"snp"}},
        {"allow_simulated", true},
        {"reference_values", {{"measurement", {measurement_}}}},
        {"init_data_digests", {host_data_hex_}}}.dump();
    ASSERT_EQ(RunBinary({CLOAK_KBS_BINARY, "admin", "put-resource", "--state-dir", state_,
                   "default/key/k1", "--file", dir_->Join("k1")},
                  log),
              0)
        << ReadAll(log);
    ASSERT_EQ(RunBinary({CLOAK_KBS_BINARY, "admin", "set-policy", "--state-dir", state_,
                   "default/key/k1", "--file", dir_->Join("policy.json")},
                  log),
              0)
        << ReadAll(log);
  }

  // `cloak-simsp measure` for `cmdline`, as a user would run it: hex.
  std::string Measure(const std::string& cmdline) {
    std::string out = dir_->Join("measure.out");
    std::filesystem::remove(out);
    EXPECT_EQ(RunBinary({CLOAK_SIMSP_BINARY, "measure", "--manifest", manifest_, "--cmdline", cmdline},
                  out),
              0)
        << ReadAll(out);
    return std::string(absl::StripAsciiWhitespace(ReadAll(out)));
  }

  void StartKbs(const std::string& certs_dir) {
    std::string port_file = dir_->Join("port");
    std::filesystem::remove(port_file);
    kbs_log_ = dir_->Join("kbs.log");
    SpawnOptions options;
    options.stdout_path = kbs_log_;
    options.stderr_path = kbs_log_;
    options.stop_grace = absl::Seconds(3);
    auto p = Subprocess::Spawn({CLOAK_KBS_BINARY, "serve", "--state-dir", state_, "--listen",
                                "127.0.0.1:0", "--port-file", port_file, "--insecure-http",
                                "--snp-certs-dir", certs_dir, "--log-level", "debug"},
                               options);
    ASSERT_TRUE(p.ok()) << p.status();
    kbs_.emplace(*std::move(p));
    for (int i = 0; i < 200; ++i) {
      std::string text(absl::StripAsciiWhitespace(ReadAll(port_file)));
      if (!text.empty() && absl::SimpleAtoi(text, &port_)) return;
      ASSERT_FALSE(kbs_->Poll().has_value()) << ReadAll(kbs_log_);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "cloak-kbs did not start: " << ReadAll(kbs_log_);
  }

  void StartSp(const std::string& cmdline, const std::string& host_data_hex,
               std::vector<std::string> extra = {}) {
    socket_ = dir_->Join("sp.sock");
    sp_log_ = dir_->Join("sp.log");
    std::vector<std::string> argv = {CLOAK_SIMSP_BINARY, "serve",     "--dir",      chain_dir_,
                                     "--socket",         socket_,     "--manifest", manifest_,
                                     "--cmdline",        cmdline,     "--host-data-hex",
                                     host_data_hex};
    argv.insert(argv.end(), extra.begin(), extra.end());
    SpawnOptions options;
    options.stdout_path = sp_log_;
    options.stderr_path = sp_log_;
    options.stop_grace = absl::Seconds(3);
    auto p = Subprocess::Spawn(argv, options);
    ASSERT_TRUE(p.ok()) << p.status();
    sp_.emplace(*std::move(p));
    for (int i = 0; i < 200; ++i) {
      if (std::filesystem::exists(socket_)) return;
      ASSERT_FALSE(sp_->Poll().has_value()) << ReadAll(sp_log_);
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    FAIL() << "cloak-simsp did not start: " << ReadAll(sp_log_);
  }

  std::string Base() const { return absl::StrCat("http://127.0.0.1:", port_); }

  // auth (tee snp), then the protocol-0.4.0 Attestation whose evidence is a
  // report from the SP bound to `bind_nonce` (default: the session's).
  Reply AuthAndAttest(Client& client, const TeeKey& key, bool send_vcek = true,
                      const std::string& init_data = kInitData,
                      const std::string& bind_nonce = "") {
    Reply auth = client.Post("/kbs/v0/auth", AuthRequest("snp").dump());
    EXPECT_EQ(auth.status, 200) << auth.error << auth.body;
    std::string nonce = nlohmann::json::parse(auth.body)["nonce"];
    auto digest = tee::RuntimeDataDigest(bind_nonce.empty() ? nonce : bind_nonce, key.jwk.json, "");
    EXPECT_TRUE(digest.ok());
    std::string report_data = *digest + std::string(64 - digest->size(), '\0');
    auto sp = RequestReportFromSocket(socket_, report_data);
    EXPECT_TRUE(sp.ok()) << sp.status();
    if (!sp.ok()) return {};
    nlohmann::json evidence = {{"attestation_report", tee::Base64Encode(sp->report)}};
    if (send_vcek) {
      evidence["cert_chain"] = {{{"cert_type", "VCEK"}, {"data", tee::Base64Encode(sp->vcek_der)}}};
    }
    nlohmann::json attestation = {
        {"init-data", {{"format", "toml"}, {"body", init_data}}},
        {"runtime-data", {{"nonce", nonce}, {"tee-pubkey", key.jwk.json}}},
        {"tee-evidence", {{"primary_evidence", evidence}, {"additional_evidence", ""}}}};
    return client.Post("/kbs/v0/attest", attestation.dump());
  }

  std::optional<TempDir> dir_;
  std::string chain_dir_, manifest_, measurement_, host_data_hex_, state_;
  std::optional<Subprocess> kbs_, sp_;
  std::string kbs_log_, sp_log_, socket_;
  int port_ = 0;
};

TEST_F(SimspKbsTest, AuthAttestResourceWithSimulatedSnpEvidence) {
  StartKbs(chain_dir_);
  StartSp(kCmdline, host_data_hex_);
  TeeKey key = MakeTeeKey("P-256");
  Client client(Base());
  auto start = std::chrono::steady_clock::now();
  Reply attest = AuthAndAttest(client, key);
  ASSERT_EQ(attest.status, 200) << attest.body << "\n" << ReadAll(kbs_log_);
  Reply r = client.Get("/kbs/v0/resource/default/key/k1");
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(r.status, 200) << r.body;
  auto plaintext = kbs::testing::DecryptJwe(nlohmann::json::parse(r.body), key.key.get());
  ASSERT_TRUE(plaintext.ok()) << plaintext.status();
  EXPECT_EQ(*plaintext, "image-key-1");
  std::cout << "auth + SP report + attest + resource on loopback: "
            << std::chrono::duration<double, std::milli>(elapsed).count() << " ms\n";
  EXPECT_THAT(ReadAll(kbs_log_), HasSubstr("step=attest tee=snp"));
  EXPECT_EQ(sp_->Stop(absl::Seconds(3)).exit_code, 0) << ReadAll(sp_log_);
  EXPECT_FALSE(std::filesystem::exists(socket_));
}

TEST_F(SimspKbsTest, VcekFromTheKbsCacheWhenTheGuestSendsNone) {
  StartKbs(chain_dir_);
  StartSp(kCmdline, host_data_hex_, {"--no-vcek"});
  TeeKey key = MakeTeeKey("P-384");
  Client client(Base());
  Reply attest = AuthAndAttest(client, key, /*send_vcek=*/false);
  ASSERT_EQ(attest.status, 200) << attest.body;
  Reply r = client.Get("/kbs/v0/resource/default/key/k1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(*kbs::testing::DecryptJwe(nlohmann::json::parse(r.body), key.key.get()), "image-key-1");
}

TEST_F(SimspKbsTest, AnotherMeasurementIsRefusedByThePolicy) {
  StartKbs(chain_dir_);
  // The same image booted with one more kernel parameter.
  StartSp(std::string(kCmdline) + " init=/bin/sh", host_data_hex_);
  std::string other = Measure(std::string(kCmdline) + " init=/bin/sh");
  ASSERT_NE(other, measurement_);
  TeeKey key = MakeTeeKey();
  Client client(Base());
  Reply attest = AuthAndAttest(client, key);
  ASSERT_EQ(attest.status, 200) << attest.body;  // genuine evidence, of another guest
  Reply r = client.Get("/kbs/v0/resource/default/key/k1");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_THAT(r.body, HasSubstr("/errors/PolicyDeny"));
  EXPECT_THAT(r.Detail(), HasSubstr("measurement " + other + " matches none"));
}

TEST_F(SimspKbsTest, SimulatedEvidenceNeedsAllowSimulated) {
  // The same policy without allow_simulated: the evidence verifies (against
  // the TEST chain, classified as simulated) but no key is released.
  std::ofstream(dir_->Join("strict.json")) << nlohmann::json{
      {"allowed_tees", {"snp"}},
      {"reference_values",
       {{"measurement", {measurement_}}}}}.dump();
  std::string log = dir_->Join("strict.log");
  ASSERT_EQ(RunBinary({CLOAK_KBS_BINARY, "admin", "set-policy", "--state-dir", state_,
                       "default/key/k1", "--file", dir_->Join("strict.json")},
                      log),
            0)
      << ReadAll(log);
  StartKbs(chain_dir_);
  StartSp(kCmdline, host_data_hex_);
  TeeKey key = MakeTeeKey();
  Client client(Base());
  Reply attest = AuthAndAttest(client, key);
  ASSERT_EQ(attest.status, 200) << attest.body;
  Reply r = client.Get("/kbs/v0/resource/default/key/k1");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_THAT(r.Detail(), HasSubstr("SIMULATED"));
  EXPECT_THAT(r.Detail(), HasSubstr("allow_simulated"));
}

TEST_F(SimspKbsTest, AnotherInitDataIsRefused) {
  StartKbs(chain_dir_);
  // HOST_DATA is the digest of another document than the one sent.
  StartSp(kCmdline, tee::HexEncode(tee::Sha256("algorithm = \"sha256\"\n")));
  TeeKey key = MakeTeeKey();
  Client client(Base());
  Reply attest = AuthAndAttest(client, key);
  EXPECT_EQ(attest.status, 401) << attest.body;
  EXPECT_THAT(attest.Detail(), HasSubstr("init-data digest"));
  EXPECT_THAT(attest.Detail(), HasSubstr("does not match"));
}

TEST_F(SimspKbsTest, EvidenceForAnotherNonceIsRefused) {
  StartKbs(chain_dir_);
  StartSp(kCmdline, host_data_hex_);
  TeeKey key = MakeTeeKey();
  Client client(Base());
  Reply attest = AuthAndAttest(client, key, true, kInitData,
                               /*bind_nonce=*/"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
  EXPECT_EQ(attest.status, 401) << attest.body;
  EXPECT_THAT(attest.body, HasSubstr("/errors/AttestationError"));
  EXPECT_THAT(attest.Detail(), HasSubstr("does not match the expected binding"));
}

TEST_F(SimspKbsTest, AKbsWithAnotherChainRefusesTheEvidence) {
  std::string other_dir = dir_->Join("other-chain");
  std::string log = dir_->Join("other.log");
  ASSERT_EQ(RunBinary({CLOAK_SIMSP_BINARY, "init-chain", "--dir", other_dir, "--rsa-bits", "2048"}, log),
            0)
      << ReadAll(log);
  StartKbs(other_dir);
  StartSp(kCmdline, host_data_hex_);
  TeeKey key = MakeTeeKey();
  Client client(Base());
  Reply attest = AuthAndAttest(client, key);
  EXPECT_EQ(attest.status, 401) << attest.body;
  EXPECT_THAT(attest.Detail(),
              HasSubstr("the signature on the VCEK certificate does not verify with the ASK"));
}

TEST_F(SimspKbsTest, CliRefusesBadInput) {
  std::string log = dir_->Join("cli.log");
  EXPECT_EQ(RunBinary({CLOAK_SIMSP_BINARY, "init-chain", "--dir", chain_dir_}, log), 1);
  EXPECT_THAT(ReadAll(log), HasSubstr("already holds a Milan chain"));
  EXPECT_EQ(RunBinary({CLOAK_SIMSP_BINARY, "serve", "--dir", chain_dir_, "--socket",
                 dir_->Join("x.sock"), "--manifest", manifest_, "--host-data-hex", "abcd"},
                log),
            1);
  EXPECT_THAT(ReadAll(log), HasSubstr("--host-data-hex must be 32 bytes"));
  EXPECT_EQ(RunBinary({CLOAK_SIMSP_BINARY, "measure", "--manifest", dir_->Join("missing.json")}, log),
            1);
  EXPECT_EQ(RunBinary({CLOAK_SIMSP_BINARY, "bogus"}, log), 2);
}

}  // namespace
}  // namespace cloak::simsp
