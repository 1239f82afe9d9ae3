// One init-data document, every party that computes its digest: the shim
// (annotation decoding and the SNP HOST_DATA / TDX MRCONFIGID it launches
// with), the agent (its parser and the report check of its attester), the
// simulated SP (the report it signs, read back by the key broker's SEV-SNP
// verifier) and the key broker (its attestation request path). All of them
// must agree, for every digest algorithm.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "absl/strings/escaping.h"
#include "agent/attest/initdata.h"
#include "shim/simsp/chain.h"
#include "common/tee/sp_protocol.h"
#include "shim/simsp/server.h"
#include "common/tee/encoding.h"
#include "common/tee/initdata.h"
#include "common/tee/snp_report.h"
#include "common/tee/tdx_quote.h"
#include "common/temp_dir.h"
#include "kbs/service.h"
#include "tests/kbs/kbs_client.h"
#include "kbs/verify/snp.h"
#include "shim/initdata.h"

namespace cloak {
namespace {

std::string Document(const std::string& algorithm) {
  return "version = \"0.1.0\"\nalgorithm = \"" + algorithm +
         "\"\n\n[data]\nkbs_url = \"http://127.0.0.1:8080\"\n"
         "image_keys = [\"default/key/image\"]\n# \xc3\xa9t\xc3\xa9: bytes, not text\n";
}

class InitDataAcrossTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("initdata-across-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(*std::move(dir));
    simsp::DevChainOptions chain_options;
    chain_options.rsa_bits = 2048;
    auto chain = simsp::GenerateDevChain(dir_->Join("chain"), chain_options);
    ASSERT_TRUE(chain.ok()) << chain.status();
    chain_ = *std::move(chain);
    kbs::KbsConfig config;
    config.state_dir = dir_->Join("kbs");
    auto service = kbs::KbsService::Create(config);
    ASSERT_TRUE(service.ok()) << service.status();
    kbs_ = *std::move(service);
  }

  // The key broker's answer to an attestation carrying `doc` and sample
  // evidence that binds `field_hex` as its init-data digest.
  int KbsAttest(const std::string& doc, const std::string& field_hex) {
    kbs::HttpResponse auth = kbs_->Handle({.method = "POST",
                                           .path = "/kbs/v0/auth",
                                           .body = kbs::testing::AuthRequest().dump(),
                                           .cookie = "",
                                           .authorization = "", .client = ""});
    EXPECT_EQ(auth.status, 200) << auth.body;
    std::string cookie;
    for (const auto& [name, value] : auth.headers) {
      if (name == "Set-Cookie") cookie = value.substr(0, value.find(';'));
    }
    const std::string nonce = nlohmann::json::parse(auth.body)["nonce"];
    kbs::testing::TeeKey key = kbs::testing::MakeTeeKey();
    nlohmann::json attestation =
        kbs::testing::SampleAttestation(nonce, key.jwk, nullptr, doc, field_hex);
    kbs::HttpResponse r = kbs_->Handle({.method = "POST",
                                        .path = "/kbs/v0/attest",
                                        .body = attestation.dump(),
                                        .cookie = cookie,
                                        .authorization = "", .client = ""});
    return r.status;
  }

  std::optional<TempDir> dir_;
  simsp::DevChain chain_;
  std::unique_ptr<kbs::KbsService> kbs_;
};

TEST_P(InitDataAcrossTest, SameDocumentSameDigestEverywhere) {
  const std::string doc = Document(GetParam());

  // The shim: the pod annotation, and the launch fields it fills.
  auto shim = shim::InitDataFromAnnotations({{"io.cloak.initdata", absl::Base64Escape(doc)}});
  ASSERT_TRUE(shim.ok()) << shim.status();
  ASSERT_TRUE(shim->has_value());
  EXPECT_EQ((*shim)->algorithm, GetParam());
  const std::string host_data = tee::DigestForField((*shim)->digest, tee::kSnpHostDataSize);
  const std::string mrconfigid = tee::DigestForField((*shim)->digest, tee::kTdxMrConfigIdSize);

  // The agent: the document it is handed, and what its report check wants
  // in either field.
  auto agent = agent::attest::ParseInitData(doc);
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->digest, (*shim)->digest);
  EXPECT_EQ(agent->kbs_url, "http://127.0.0.1:8080");
  EXPECT_EQ(tee::DigestForField(agent->digest, host_data.size()), host_data);
  EXPECT_EQ(tee::DigestForField(agent->digest, mrconfigid.size()), mrconfigid);

  // The simulated SP signs a report with the shim's HOST_DATA; the key
  // broker's SEV-SNP verifier reads that HOST_DATA back as the init-data
  // digest claim.
  simsp::SimulatedSpOptions sp_options;
  sp_options.measurement = std::string(48, 'm');
  sp_options.host_data = host_data;
  auto chain = simsp::LoadDevChain(dir_->Join("chain"));
  ASSERT_TRUE(chain.ok()) << chain.status();
  auto sp = simsp::SimulatedSp::Create(*std::move(chain), sp_options);
  ASSERT_TRUE(sp.ok()) << sp.status();
  const std::string report_data(64, '\x42');
  auto response = simsp::DecodeResponse((*sp)->Handle(*simsp::EncodeRequest(report_data)));
  ASSERT_TRUE(response.ok()) << response.status();
  auto report = tee::ParseSnpReport(response->report);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->host_data, host_data);
  kbs::SnpVerifyOptions verify;
  verify.expected_report_data = report_data;
  auto claims = kbs::VerifySnpAttestation(response->report, chain_.vcek_der,
                                          {.ark = chain_.ark_pem, .ask = chain_.ask_pem}, verify);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->init_data_digest, tee::HexEncode(host_data));

  // The key broker: the document sent with evidence binding either field
  // is accepted; a field for another document is refused.
  EXPECT_EQ(KbsAttest(doc, tee::HexEncode(host_data)), 200);
  EXPECT_EQ(KbsAttest(doc, tee::HexEncode(mrconfigid)), 200);
  EXPECT_EQ(KbsAttest(doc + "\n", tee::HexEncode(host_data)), 401);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, InitDataAcrossTest,
                         ::testing::Values("sha256", "sha384", "sha512"));

}  // namespace
}  // namespace cloak
