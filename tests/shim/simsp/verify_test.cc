// Reports from the simulated SP, checked by cloak-kbs's real SEV-SNP
// verifier (kbs/verify): accepted with the right chain and reference values,
// and refused, each with the verifier's own reason, when anything differs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/x509.h>

#include "shim/simsp/chain.h"
#include "shim/simsp/crypto.h"
#include "shim/simsp/measurement.h"
#include "shim/simsp/report.h"
#include "common/temp_dir.h"
#include "common/tee/snp_report_json.h"
#include "kbs/verify/snp.h"
#include "kbs/verify/verifier.h"

namespace cloak::simsp {
namespace {

using ::testing::HasSubstr;

DevChainOptions FastChain(Product product = Product::kMilan, const std::string& chip_id = "") {
  DevChainOptions options;
  options.product = product;
  options.rsa_bits = 2048;  // tests: quicker than AMD's 4096
  options.chip_id = chip_id;
  return options;
}

kbs::VerifierConfig CertsDir(const std::string& dir) {
  kbs::VerifierConfig config;
  config.snp_certs_dir = dir;
  return config;
}

class VerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("simsp-verify-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(*std::move(dir));
    auto chain = GenerateDevChain(dir_->Join("a"), FastChain());
    ASSERT_TRUE(chain.ok()) << chain.status();
    chain_ = *std::move(chain);
    measurement_ = *SimulatedMeasurement({.firmware = "",
                                          .kernel_sha256 = std::string(32, 'k'),
                                          .initrd_sha256 = std::string(32, 'i'),
                                          .cmdline = "console=ttyS0",
                                          .vcpus = 1});
    host_data_ = tee::Sha256("init-data document");
    report_data_ = std::string(48, '\x5a') + std::string(16, '\0');
  }

  ReportFields Fields() const {
    ReportFields f = FieldsForChain(chain_);
    f.report_data = report_data_;
    f.measurement = measurement_;
    f.host_data = host_data_;
    return f;
  }
  kbs::SnpTrustAnchors Anchors(const DevChain& chain) const {
    return {.ark = chain.ark_pem, .ask = chain.ask_pem};
  }
  kbs::SnpVerifyOptions Options() const {
    kbs::SnpVerifyOptions o;
    o.expected_report_data = report_data_;
    o.reference.measurements["measurement"] = {tee::HexEncode(measurement_)};
    o.reference.init_data_digests = {tee::HexEncode(host_data_)};
    return o;
  }
  absl::StatusOr<kbs::Claims> Verify(const ReportFields& fields, EVP_PKEY* key,
                                     const std::string& vcek_der, const DevChain& anchors,
                                     const kbs::SnpVerifyOptions& options) {
    auto report = BuildReport(fields, key);
    if (!report.ok()) return report.status();
    return kbs::VerifySnpAttestation(*report, vcek_der, Anchors(anchors), options);
  }
  absl::StatusOr<kbs::Claims> Verify(const ReportFields& fields) {
    return Verify(fields, chain_.vcek_key.get(), chain_.vcek_der, chain_, Options());
  }

  std::optional<TempDir> dir_;
  DevChain chain_;
  std::string measurement_, host_data_, report_data_;
};

TEST_F(VerifyTest, AcceptedWithMatchingReferenceValues) {
  auto claims = Verify(Fields());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tee, "snp");
  EXPECT_TRUE(claims->signature_verified);
  EXPECT_FALSE(claims->debug);
  EXPECT_EQ(claims->measurements["measurement"], tee::HexEncode(measurement_));
  EXPECT_EQ(claims->init_data_digest, tee::HexEncode(host_data_));
  EXPECT_EQ(claims->report_data, report_data_);
  EXPECT_THAT(claims->detail, HasSubstr("SEV-SNP Milan report v3, SIMULATED SP chain verified"));
  EXPECT_THAT(claims->detail, HasSubstr("bl=4 tee=0 snp=22 ucode=213"));
  // The TEST chain is recognised as the simulated SP's, never as AMD's.
  EXPECT_TRUE(claims->simulated);
  EXPECT_THAT(claims->trust_anchor, HasSubstr("SIMULATED SP test root"));
}

TEST_F(VerifyTest, ReportLayoutIsWhatTheParserReads) {
  auto raw = BuildReport(Fields(), chain_.vcek_key.get());
  ASSERT_TRUE(raw.ok()) << raw.status();
  ASSERT_EQ(raw->size(), kbs::kSnpReportSize);
  auto r = kbs::ParseSnpReport(*raw);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version, 3u);
  EXPECT_EQ(r->policy, 0x30000u);
  EXPECT_EQ(r->signature_algo, 1u);
  EXPECT_EQ(r->signing_key(), 0u);
  EXPECT_FALSE(r->mask_chip_id());
  EXPECT_EQ(r->chip_id, chain_.chip_id);
  EXPECT_EQ(r->chip_id.substr(0, 16), "CLOAK-TEST-CHIP!");
  EXPECT_EQ(r->reported_tcb, r->current_tcb);
  EXPECT_EQ(r->reported_tcb, r->committed_tcb);
  EXPECT_EQ(r->reported_tcb, r->launch_tcb);
  EXPECT_EQ(r->cpuid_fam_id, 0x19);
  auto tcb = kbs::DecodeSnpTcb(r->reported_tcb, kbs::SnpProduct::kMilan);
  EXPECT_EQ(tcb.ToString(), "bl=4 tee=0 snp=22 ucode=213");
  // Version 2 (no CPUID fields) is accepted as well.
  ReportFields v2 = Fields();
  v2.version = 2;
  EXPECT_TRUE(Verify(v2).ok());
}

TEST_F(VerifyTest, CertificatesSayTheyAreNotAmd) {
  auto vcek = ParseCertificate(chain_.vcek_der, "vcek");
  auto ark = ParseCertificate(chain_.ark_pem, "ark");
  ASSERT_TRUE(vcek.ok() && ark.ok());
  auto oneline = [](X509_NAME* n) {
    char buf[512];
    return std::string(X509_NAME_oneline(n, buf, sizeof(buf)));
  };
  EXPECT_THAT(oneline(X509_get_subject_name(vcek->get())), HasSubstr("NOT AMD"));
  EXPECT_THAT(oneline(X509_get_issuer_name(vcek->get())), HasSubstr("NOT AMD"));
  EXPECT_THAT(oneline(X509_get_issuer_name(vcek->get())), HasSubstr("CN=SEV-Milan"));
  EXPECT_THAT(oneline(X509_get_subject_name(ark->get())), HasSubstr("CN=Cloak TEST ARK-Milan NOT AMD"));
  EXPECT_EQ(X509_get_signature_nid(vcek->get()), NID_rsassaPss);
}

TEST_F(VerifyTest, WrongMeasurementIsRefused) {
  ReportFields f = Fields();
  f.measurement = *SimulatedMeasurement({.firmware = "",
                                         .kernel_sha256 = std::string(32, 'k'),
                                         .initrd_sha256 = std::string(32, 'i'),
                                         .cmdline = "console=ttyS0 init=/bin/sh",
                                         .vcpus = 1});
  auto claims = Verify(f);
  EXPECT_TRUE(absl::IsPermissionDenied(claims.status())) << claims.status();
  EXPECT_THAT(claims.status().message(),
              HasSubstr("measurement " + tee::HexEncode(f.measurement) + " matches none"));
}

TEST_F(VerifyTest, WrongHostDataIsRefused) {
  ReportFields f = Fields();
  f.host_data = tee::Sha256("another init-data document");
  auto claims = Verify(f);
  EXPECT_TRUE(absl::IsPermissionDenied(claims.status())) << claims.status();
  EXPECT_THAT(claims.status().message(),
              HasSubstr("init-data digest " + tee::HexEncode(f.host_data) + " matches none"));
}

TEST_F(VerifyTest, WrongReportDataIsRefused) {
  ReportFields f = Fields();
  f.report_data[0] ^= 1;
  auto claims = Verify(f);
  EXPECT_TRUE(absl::IsPermissionDenied(claims.status())) << claims.status();
  EXPECT_THAT(claims.status().message(), HasSubstr("REPORT_DATA"));
  EXPECT_THAT(claims.status().message(), HasSubstr("does not match the expected binding"));
}

TEST_F(VerifyTest, DebugPolicyIsRefused) {
  ReportFields f = Fields();
  f.policy |= kPolicyDebugBit;
  auto claims = Verify(f);
  EXPECT_TRUE(absl::IsPermissionDenied(claims.status())) << claims.status();
  EXPECT_THAT(claims.status().message(), HasSubstr("debug enabled"));
  // A policy allowing debug guests gets claims saying so.
  auto options = Options();
  options.reference.allow_debug = true;
  auto allowed = Verify(f, chain_.vcek_key.get(), chain_.vcek_der, chain_, options);
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_TRUE(allowed->debug);
}

TEST_F(VerifyTest, ReportSignedByAnotherVcekIsRefused) {
  auto other = GenerateDevChain(dir_->Join("b"), FastChain(Product::kMilan, chain_.chip_id));
  ASSERT_TRUE(other.ok()) << other.status();
  // Same chip id and TCB, so only the signature can tell.
  auto claims = Verify(Fields(), other->vcek_key.get(), chain_.vcek_der, chain_, Options());
  EXPECT_TRUE(absl::IsPermissionDenied(claims.status())) << claims.status();
  EXPECT_THAT(claims.status().message(), HasSubstr("SEV-SNP report signature"));
  EXPECT_THAT(claims.status().message(), HasSubstr("does not verify"));
}

TEST_F(VerifyTest, ChainNotUnderTheConfiguredArkIsRefused) {
  auto other = GenerateDevChain(dir_->Join("b"), FastChain());
  ASSERT_TRUE(other.ok()) << other.status();
  ReportFields f = FieldsForChain(*other);
  f.report_data = report_data_;
  f.measurement = measurement_;
  f.host_data = host_data_;
  // Self-consistent report and VCEK from chain b; anchors of chain a.
  auto claims = Verify(f, other->vcek_key.get(), other->vcek_der, chain_, Options());
  EXPECT_TRUE(absl::IsPermissionDenied(claims.status())) << claims.status();
  EXPECT_THAT(claims.status().message(),
              HasSubstr("the signature on the VCEK certificate does not verify with the ASK"));
  // b's ASK under a's ARK is refused one link higher.
  kbs::SnpTrustAnchors mixed{.ark = chain_.ark_pem, .ask = other->ask_pem};
  auto report = BuildReport(f, other->vcek_key.get());
  auto mixed_claims = kbs::VerifySnpAttestation(*report, other->vcek_der, mixed, Options());
  EXPECT_THAT(mixed_claims.status().message(),
              HasSubstr("the signature on the ASK certificate does not verify with the ARK"));
  // And b verifies under its own anchors.
  EXPECT_TRUE(Verify(f, other->vcek_key.get(), other->vcek_der, *other, Options()).ok());
}

TEST_F(VerifyTest, VcekForAnotherChipOrTcbIsRefused) {
  ReportFields f = Fields();
  f.chip_id[20] ^= 1;
  auto claims = Verify(f);
  EXPECT_THAT(claims.status().message(), HasSubstr("wrong VCEK for this report"));
  f = Fields();
  f.tcb.snp = 23;
  claims = Verify(f);
  EXPECT_THAT(claims.status().message(), HasSubstr("VCEK was issued for TCB"));
}

TEST_F(VerifyTest, TheVerifierFindsTheChainByFileName) {
  // Through the Verifier the KBS uses, configured with the chain directory:
  // anchors by product name, and the VCEK from the evidence or its cache.
  auto verifier = kbs::CreateVerifier("snp", CertsDir(dir_->Join("a")));
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  auto report = BuildReport(Fields(), chain_.vcek_key.get());
  ASSERT_TRUE(report.ok());
  std::string binding = report_data_.substr(0, 48);
  nlohmann::json with_vcek = {
      {"attestation_report", tee::Base64Encode(*report)},
      {"cert_chain", {{{"cert_type", "VCEK"}, {"data", tee::Base64Encode(chain_.vcek_der)}}}}};
  auto claims = (*verifier)->Verify(with_vcek, binding);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->measurements["host_data"], tee::HexEncode(host_data_));
  // The form cloak-agent sends (Trustee's: the sev crate's report object,
  // DER as byte arrays) rebuilds the very report the simulated SP signed.
  nlohmann::json trustee_form = {
      {"attestation_report", tee::SnpReportToSevJson(*report)},
      {"cert_chain",
       {{{"cert_type", "VCEK"}, {"data", tee::JsonByteArrayOf(chain_.vcek_der)}}}}};
  EXPECT_EQ(*tee::SnpReportFromJson(trustee_form["attestation_report"]), *report);
  claims = (*verifier)->Verify(trustee_form, binding);
  ASSERT_TRUE(claims.ok()) << claims.status();
  nlohmann::json cached = {{"attestation_report", tee::Base64Encode(*report)}};
  claims = (*verifier)->Verify(cached, binding);
  ASSERT_TRUE(claims.ok()) << claims.status();
  // Another binding (nonce / key): refused.
  EXPECT_THAT((*verifier)->Verify(cached, std::string(48, 'x')).status().message(),
              HasSubstr("does not match the expected binding"));
}

TEST_F(VerifyTest, GenoaAndTurinChainsMapToTheirProduct) {
  for (Product product : {Product::kGenoa, Product::kTurin}) {
    std::string dir = dir_->Join(ProductName(product));
    DevChainOptions options = FastChain(product);
    options.tcb.fmc = 1;
    auto chain = GenerateDevChain(dir, options);
    ASSERT_TRUE(chain.ok()) << chain.status();
    ReportFields f = FieldsForChain(*chain);
    f.report_data = report_data_;
    f.measurement = measurement_;
    f.host_data = host_data_;
    auto claims = Verify(f, chain->vcek_key.get(), chain->vcek_der, *chain, Options());
    ASSERT_TRUE(claims.ok()) << ProductName(product) << ": " << claims.status();
    EXPECT_THAT(claims->detail, HasSubstr("SEV-SNP " + ProductName(product)));
    auto verifier = kbs::CreateVerifier("snp", CertsDir(dir));
    auto report = BuildReport(f, chain->vcek_key.get());
    nlohmann::json cached = {{"attestation_report", tee::Base64Encode(*report)}};
    EXPECT_TRUE((*verifier)->Verify(cached, report_data_.substr(0, 48)).ok())
        << ProductName(product) << " VCEK not found by file name";
  }
}

TEST_F(VerifyTest, DefaultChainWithRsa4096LoadsAndVerifies) {
  auto chain = GenerateDevChain(dir_->Join("default"));
  ASSERT_TRUE(chain.ok()) << chain.status();
  auto ask = ParseCertificate(chain->ask_pem, "ask");
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(ask->get())), 4096);
  auto loaded = LoadDevChain(dir_->Join("default"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->chip_id, chain->chip_id);
  ReportFields f = FieldsForChain(*loaded);
  f.report_data = report_data_;
  f.measurement = measurement_;
  f.host_data = host_data_;
  EXPECT_TRUE(Verify(f, loaded->vcek_key.get(), loaded->vcek_der, *loaded, Options()).ok());
  // A second chain into the same directory is refused unless asked for.
  EXPECT_TRUE(absl::IsAlreadyExists(GenerateDevChain(dir_->Join("default")).status()));
}

TEST_F(VerifyTest, LoadRefusesAKeyThatIsNotTheVceks) {
  auto other = GenerateDevChain(dir_->Join("b"), FastChain());
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(WriteFileAtomic(chain_.vcek_key_path, *ReadFile(other->vcek_key_path), 0600).ok());
  EXPECT_THAT(LoadDevChain(dir_->Join("a")).status().message(), HasSubstr("is not the key of"));
}

}  // namespace
}  // namespace cloak::simsp
