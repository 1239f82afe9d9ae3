// Verifiers against the real vectors in tests/testdata: accepted as
// given, every tampered variant refused with a specific error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/temp_dir.h"
#include "tests/kbs/test_util.h"
#include "kbs/verify/snp.h"
#include "kbs/verify/tdx.h"
#include "kbs/verify/trust_anchors.h"
#include "kbs/verify/verifier.h"

namespace cloak::kbs {
namespace {

using ::testing::HasSubstr;
using testing::CertDer;
using testing::CertPem;
using testing::CertSpec;
using testing::DerInteger;
using testing::EcdsaRaw;
using testing::HaveTestdata;
using testing::MakeCert;
using testing::NewKey;
using testing::SelfSignedPem;
using testing::Slurp;
using testing::TestdataPath;

constexpr char kMilanMeasurement[] =
    "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81"
    "841f";

// The vectors are part of the repository (tests/testdata): missing is a failure.
#define REQUIRE_TESTDATA() \
  ASSERT_TRUE(HaveTestdata()) << "no test vectors at " << TestdataPath("")

class SnpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_TESTDATA();
    auto raw = tee::HexDecode(absl::StripAsciiWhitespace(Slurp("snp/report_milan.hex")));
    ASSERT_TRUE(raw.ok()) << raw.status();
    report_ = *raw;
    vcek_ = Slurp("snp/vcek_milan.der");
    milan_ = {Slurp("snp/milan_ark.pem"), Slurp("snp/milan_ask.pem")};
    options_.expected_report_data = report_.substr(0x50, 64);
    options_.reference.measurements["measurement"] = {kMilanMeasurement};
  }

  absl::StatusOr<Claims> Verify(const std::string& report) {
    return VerifySnpAttestation(report, vcek_, milan_, options_);
  }
  static std::string Flip(std::string data, size_t offset, int bit = 0) {
    data[offset] = static_cast<char>(data[offset] ^ (1 << bit));
    return data;
  }

  std::string report_;
  std::string vcek_;
  SnpTrustAnchors milan_;
  SnpVerifyOptions options_;
};

TEST_F(SnpTest, ParsesTheMilanReport) {
  auto r = ParseSnpReport(report_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version, 2u);
  EXPECT_EQ(r->policy, 0x30000u);
  EXPECT_EQ(r->vmpl, 0u);
  EXPECT_EQ(r->signature_algo, 1u);
  EXPECT_EQ(tee::HexEncode(r->measurement), kMilanMeasurement);
  EXPECT_FALSE(r->debug());
  SnpTcb tcb = DecodeSnpTcb(r->reported_tcb, SnpProduct::kMilan);
  EXPECT_EQ(tcb.bootloader, 3);
  EXPECT_EQ(tcb.snp, 8);
  EXPECT_EQ(tcb.microcode, 115);
}

TEST_F(SnpTest, AcceptsTheRealReport) {
  auto claims = Verify(report_);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tee, "snp");
  EXPECT_TRUE(claims->signature_verified);
  EXPECT_FALSE(claims->debug);
  EXPECT_EQ(claims->measurements.at("measurement"), kMilanMeasurement);
  EXPECT_EQ(claims->init_data_digest, "");  // host_data is all zero
  EXPECT_THAT(claims->detail, HasSubstr("Milan"));
  EXPECT_EQ(claims->trust_anchor,
            absl::StrCat("AMD ARK-Milan (pinned) sha256:", kAmdArkMilanSha256));
  EXPECT_FALSE(claims->simulated);
  EXPECT_EQ(claims->vmpl, 0u);
  EXPECT_EQ(claims->snp_policy, 0x30000u);
  EXPECT_EQ(claims->product, "Milan");
  EXPECT_EQ(claims->tcb.size(), 4u);
  // Claims travel in the attestation token: the new fields survive.
  auto again = Claims::FromJson(claims->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->trust_anchor, claims->trust_anchor);
  EXPECT_EQ(again->snp_policy, claims->snp_policy);
  EXPECT_EQ(again->tcb, claims->tcb);
}

TEST(TrustAnchorsTest, PinnedFingerprintsAreThoseOfTheVendorCertificates) {
  REQUIRE_TESTDATA();
  for (auto [file, pinned] : {std::pair{"snp/milan_ark.pem", kAmdArkMilanSha256},
                              std::pair{"snp/genoa_ark.pem", kAmdArkGenoaSha256},
                              std::pair{"snp/turin_ark.pem", kAmdArkTurinSha256}}) {
    auto cert = ParseCertificate(Slurp(file), file);
    ASSERT_TRUE(cert.ok()) << cert.status();
    EXPECT_EQ(CertificateSha256(cert->get()), pinned) << file;
    auto v = ClassifyRoot(cert->get(), "x", pinned, true, false);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->kind, RootKind::kPinned);
  }
  // Another root: refused unless explicitly allowed, then named.
  auto milan = ParseCertificate(Slurp("snp/milan_ark.pem"), "ark");
  auto refused = ClassifyRoot(milan->get(), "AMD ARK-Genoa", kAmdArkGenoaSha256, true, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.status().message(), HasSubstr("--allow-unpinned-root"));
  auto allowed = ClassifyRoot(milan->get(), "AMD ARK-Genoa", kAmdArkGenoaSha256, true, true);
  ASSERT_TRUE(allowed.ok());
  EXPECT_EQ(allowed->kind, RootKind::kUnpinned);
  EXPECT_THAT(allowed->description,
              HasSubstr(absl::StrCat("UNPINNED root \"ARK-Milan\" sha256:", kAmdArkMilanSha256)));
}

TEST_F(SnpTest, ChainVerifiesAndNamesTheProduct) {
  auto vcek = ParseCertificate(vcek_, "VCEK");
  ASSERT_TRUE(vcek.ok());
  auto product = VerifySnpCertChain(vcek->get(), milan_);
  ASSERT_TRUE(product.ok()) << product.status();
  EXPECT_EQ(*product, SnpProduct::kMilan);
}

TEST_F(SnpTest, RefusesAFlippedBitInTheSignedBody) {
  for (size_t offset : {size_t{0x008}, size_t{0x050}, size_t{0x090}, size_t{0x0C0},
                        size_t{0x1A0} + 63, size_t{0x29F}}) {
    std::string tampered = Flip(report_, offset, 1);
    if (offset == 0x050) options_.expected_report_data = tampered.substr(0x50, 64);
    auto claims = Verify(tampered);
    ASSERT_FALSE(claims.ok()) << "offset " << offset;
    EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied) << claims.status();
    if (offset != 0x1A0 + 63) {  // CHIP_ID no longer matches the VCEK first
      EXPECT_THAT(claims.status().message(), HasSubstr("report signature")) << offset;
    } else {
      EXPECT_THAT(claims.status().message(), HasSubstr("wrong VCEK")) << offset;
    }
    options_.expected_report_data = report_.substr(0x50, 64);
  }
}

TEST_F(SnpTest, RefusesAFlippedBitInTheSignature) {
  for (size_t offset : {size_t{0x2A0}, size_t{0x2A0 + 47}, size_t{0x2E8}, size_t{0x2E8 + 20}}) {
    auto claims = Verify(Flip(report_, offset, 3));
    ASSERT_FALSE(claims.ok()) << offset;
    EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(claims.status().message(), HasSubstr("report signature")) << claims.status();
  }
}

TEST_F(SnpTest, RefusesAVcekNotIssuedByTheAsk) {
  vcek_ = SelfSignedPem("SEV-VCEK", false, "SEV-Milan");
  auto claims = Verify(report_);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("VCEK"));
}

TEST_F(SnpTest, RefusesACertificateInTheVcekSlotThatIsNotAVcek) {
  vcek_ = milan_.ask;  // a real AMD certificate, but the ASK, not this chip's VCEK
  auto claims = Verify(report_);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("not an AMD SEV signing key"));
}

TEST_F(SnpTest, RefusesTheWrongArkGeneration) {
  SnpTrustAnchors genoa{Slurp("snp/genoa_ark.pem"), Slurp("snp/genoa_ask.pem")};
  auto claims = VerifySnpAttestation(report_, vcek_, genoa, options_);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("VCEK certificate"));
  EXPECT_THAT(claims.status().message(), HasSubstr("Milan"));
}

TEST_F(SnpTest, RefusesAnAskFromAnotherArk) {
  SnpTrustAnchors mixed{Slurp("snp/turin_ark.pem"), milan_.ask};
  auto claims = VerifySnpAttestation(report_, vcek_, mixed, options_);
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("ASK certificate was issued by \"ARK-Milan\""));
}

TEST_F(SnpTest, RefusesAnArkThatIsNotSelfSigned) {
  SnpTrustAnchors swapped{milan_.ask, milan_.ark};
  auto claims = VerifySnpAttestation(report_, vcek_, swapped, options_);
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("ARK is not self-signed"));
}

TEST_F(SnpTest, RefusesAForgedArkWithTheRightName) {
  SnpTrustAnchors forged{SelfSignedPem("ARK-Milan", true), milan_.ask};
  auto claims = VerifySnpAttestation(report_, vcek_, forged, options_);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("RSASSA-PSS"));
}

TEST_F(SnpTest, RefusesTheWrongReportData) {
  options_.expected_report_data = std::string(64, '\x01');
  auto claims = Verify(report_);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("REPORT_DATA"));
}

TEST_F(SnpTest, RefusesTheWrongMeasurement) {
  options_.reference.measurements["measurement"] = {std::string(96, '0')};
  auto claims = Verify(report_);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("measurement 7a1e5c26"));
}

TEST_F(SnpTest, RefusesTheWrongHostData) {
  options_.reference.measurements["host_data"] = {std::string(64, 'a')};
  auto claims = Verify(report_);
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("host_data"));
}

TEST_F(SnpTest, RequiresAnInitDataDigestWhenOneIsExpected) {
  options_.reference.init_data_digests = {std::string(64, 'a')};
  auto claims = Verify(report_);
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("carries none"));
}

TEST_F(SnpTest, RefusesATcbBelowTheMinimum) {
  options_.min_tcb = SnpTcb{.bootloader = 3, .tee = 0, .snp = 8, .microcode = 116};
  auto claims = Verify(report_);
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("microcode 115 is below the minimum 116"));
  options_.min_tcb = SnpTcb{.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
  EXPECT_TRUE(Verify(report_).ok());
}

TEST_F(SnpTest, RefusesMalformedReports) {
  EXPECT_EQ(Verify(report_.substr(0, 1000)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Verify("").status().code(), absl::StatusCode::kInvalidArgument);
  std::string v9 = report_;
  v9[0] = 9;
  EXPECT_THAT(Verify(v9).status().message(), HasSubstr("version 9"));
  std::string algo = report_;
  algo[0x34] = 2;
  EXPECT_THAT(Verify(algo).status().message(), HasSubstr("signature algorithm 2"));
  vcek_ = "garbage";
  EXPECT_EQ(Verify(report_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ReferenceValuesTest, DebugGuestsAreRefusedUnlessAllowed) {
  Claims claims;
  claims.tee = "snp";
  claims.debug = true;
  ReferenceValues reference;
  absl::Status status = CheckReferenceValues(claims, reference);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("debug"));
  reference.allow_debug = true;
  EXPECT_TRUE(CheckReferenceValues(claims, reference).ok());
}

// The virtee sev crate's serde form of a raw report, as Trustee's attester
// and cloak-agent send it.
nlohmann::json SerdeForm(const std::string& raw) { return tee::SnpReportToSevJson(raw); }

TEST_F(SnpTest, RebuildsTheReportFromEveryJsonForm) {
  auto from_serde = SnpReportFromJson(SerdeForm(report_));
  ASSERT_TRUE(from_serde.ok()) << from_serde.status();
  EXPECT_EQ(*from_serde, report_);
  auto from_b64 = SnpReportFromJson(tee::Base64Encode(report_));
  ASSERT_TRUE(from_b64.ok());
  EXPECT_EQ(*from_b64, report_);
  // sev crates before 4 (older Trustee releases) name some fields apart.
  nlohmann::json old_form = SerdeForm(report_);
  old_form["_author_key_en"] = old_form["key_info"];
  old_form.erase("key_info");
  for (const char* v : {"current", "committed"}) {
    for (const char* part : {"build", "minor", "major"}) {
      old_form[absl::StrCat(v, "_", part)] = old_form[v][part];
    }
    old_form.erase(v);
  }
  auto from_old = SnpReportFromJson(old_form);
  ASSERT_TRUE(from_old.ok()) << from_old.status();
  EXPECT_EQ(*from_old, report_);
  nlohmann::json broken = SerdeForm(report_);
  broken.erase("measurement");
  EXPECT_THAT(SnpReportFromJson(broken).status().message(), HasSubstr("\"measurement\" is missing"));
}

TEST_F(SnpTest, VerifierChecksTheChainFromTheCertsDirAndTheBinding) {
  VerifierConfig config;
  config.snp_certs_dir = TestdataPath("snp");
  auto verifier = CreateVerifier("snp", config);
  ASSERT_TRUE(verifier.ok());
  std::vector<unsigned char> vcek_bytes(vcek_.begin(), vcek_.end());
  nlohmann::json evidence = {
      {"attestation_report", SerdeForm(report_)},
      {"cert_chain", {{{"cert_type", "VCEK"}, {"data", vcek_bytes}}}}};
  // The real report binds 64 bytes we cannot produce from a 48-byte digest:
  // everything up to the binding verifies, and the binding is refused.
  auto claims = (*verifier)->Verify(evidence, report_.substr(0x50, 48));
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("REPORT_DATA"));
  evidence.erase("cert_chain");
  claims = (*verifier)->Verify(evidence, report_.substr(0x50, 48));
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(claims.status().message(), HasSubstr("no VCEK"));
  auto unconfigured = CreateVerifier("snp", VerifierConfig{});
  evidence["cert_chain"] = {{{"cert_type", "VCEK"}, {"data", tee::Base64Encode(vcek_)}}};
  claims = (*unconfigured)->Verify(evidence, report_.substr(0x50, 48));
  EXPECT_THAT(claims.status().message(), HasSubstr("no AMD certificate directory"));
}

// No public VLEK-signed report exists: the chain ARK → ASVK → VLEK is made
// here with test keys (an "other root", accepted only when allowed
// explicitly), and the real Milan report is re-signed as a v3 report whose
// KEY_INFO names the VLEK.
class VlekTest : public SnpTest {
 protected:
  void SetUp() override {
    SnpTest::SetUp();
    ark_key_ = NewKey("RSA");
    asvk_key_ = NewKey("RSA");
    vlek_key_ = NewKey("P-384");
    ark_ = MakeCert(ark_key_.get(), {.cn = "ARK-Milan", .rsa_pss = true, .ca = true});
    asvk_ = MakeCert(asvk_key_.get(), {.cn = "SEV-VLEK-Milan",
                                       .issuer = ark_.get(),
                                       .issuer_key = ark_key_.get(),
                                       .rsa_pss = true,
                                       .ca = true});
    anchors_ = {CertPem(ark_.get()), "", CertPem(asvk_.get())};
    vlek_ = MakeVlek(vlek_key_.get(), /*ucode=*/115);
    vlek_report_ = SignAsVlek(report_, vlek_key_.get());
    options_.allow_unpinned_root = true;
  }

  // A VLEK for Milan TCB bl=3 tee=0 snp=8 ucode=`ucode`, issued by the ASVK
  // (or by `issuer` with `issuer_key`).
  std::string MakeVlek(EVP_PKEY* key, uint8_t ucode, X509* issuer = nullptr,
                       EVP_PKEY* issuer_key = nullptr, bool with_tcb = true) {
    CertSpec spec{.cn = "SEV-VLEK",
                  .issuer = issuer != nullptr ? issuer : asvk_.get(),
                  .issuer_key = issuer_key != nullptr ? issuer_key : asvk_key_.get(),
                  .rsa_pss = true};
    if (with_tcb) {
      spec.extensions = {{"1.3.6.1.4.1.3704.1.3.1", DerInteger(3)},
                         {"1.3.6.1.4.1.3704.1.3.2", DerInteger(0)},
                         {"1.3.6.1.4.1.3704.1.3.3", DerInteger(8)},
                         {"1.3.6.1.4.1.3704.1.3.8", DerInteger(ucode)}};
    }
    spec.extensions.push_back({"1.3.6.1.4.1.3704.1.5", std::string("\x16\x09TestCloud")});
    return CertDer(MakeCert(key, spec).get());
  }

  // The Milan report as version 3 with KEY_INFO signing key `signing_key`,
  // signed by `key` (raw r, s little-endian in 72-byte fields).
  static std::string SignAsVlek(std::string report, EVP_PKEY* key, uint32_t signing_key = 1) {
    report[0] = 3;
    report[0x48] = static_cast<char>(signing_key << 2);
    std::string rs = EcdsaRaw(key, report.substr(0, kSnpSignedSize), 384);
    for (size_t half = 0; half < 2; ++half) {
      std::string le = rs.substr(48 * half, 48);
      std::reverse(le.begin(), le.end());
      le.resize(72, '\0');
      report.replace(half == 0 ? 0x2A0 : 0x2E8, 72, le);
    }
    return report;
  }

  absl::StatusOr<Claims> VerifyVlek(const std::string& report, const std::string& cert) {
    return VerifySnpAttestation(report, cert, anchors_, options_);
  }

  PkeyPtr ark_key_, asvk_key_, vlek_key_;
  X509Ptr ark_, asvk_;
  SnpTrustAnchors anchors_;
  std::string vlek_, vlek_report_;
};

TEST_F(VlekTest, AcceptsAVlekSignedV3ReportUnderAnExplicitlyAllowedRoot) {
  auto claims = VerifyVlek(vlek_report_, vlek_);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->signing_key, "VLEK");
  EXPECT_TRUE(claims->signature_verified);
  EXPECT_FALSE(claims->simulated);
  EXPECT_EQ(claims->measurements.at("measurement"), kMilanMeasurement);
  EXPECT_THAT(claims->trust_anchor, HasSubstr("UNPINNED root \"ARK-Milan\""));
  EXPECT_THAT(claims->detail, HasSubstr("report v3, VLEK chain verified (VLEK of TestCloud)"));
  EXPECT_EQ(Claims::FromJson(claims->ToJson())->signing_key, "VLEK");
  // The same chain without the explicit flag: refused, naming the root.
  options_.allow_unpinned_root = false;
  auto refused = VerifyVlek(vlek_report_, vlek_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.status().message(), HasSubstr("is not AMD ARK-Milan"));
}

TEST_F(VlekTest, RefusesAReportSignedByAnotherKey) {
  PkeyPtr other = NewKey("P-384");
  auto claims = VerifyVlek(SignAsVlek(report_, other.get()), vlek_);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("report signature"));
  EXPECT_THAT(claims.status().message(), HasSubstr("VLEK key"));
  // A flipped bit of the signed body, too.
  std::string flipped = vlek_report_;
  flipped[0x90] ^= 1;
  EXPECT_THAT(VerifyVlek(flipped, vlek_).status().message(), HasSubstr("report signature"));
}

TEST_F(VlekTest, RefusesAVlekNotIssuedByTheAsvk) {
  PkeyPtr rogue_key = NewKey("RSA");
  X509Ptr rogue = MakeCert(rogue_key.get(), {.cn = "SEV-VLEK-Milan",
                                             .issuer = ark_.get(),
                                             .issuer_key = rogue_key.get(),
                                             .rsa_pss = true});
  auto claims = VerifyVlek(vlek_report_,
                           MakeVlek(vlek_key_.get(), 115, rogue.get(), rogue_key.get()));
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("VLEK certificate does not verify"));
  // An ASVK the ARK did not sign.
  anchors_.asvk = CertPem(rogue.get());
  EXPECT_THAT(VerifyVlek(vlek_report_, vlek_).status().message(),
              HasSubstr("the signature on the ASVK certificate does not verify"));
  // No ASVK at all.
  anchors_.asvk.clear();
  EXPECT_EQ(VerifyVlek(vlek_report_, vlek_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(VlekTest, RefusesTheWrongKindOfEndorsementKey) {
  // The real VCEK for a report whose KEY_INFO names the VLEK.
  auto claims = VerifyVlek(vlek_report_, vcek_);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("it is a VCEK"));
  // A VLEK for a report whose KEY_INFO names the VCEK.
  auto vcek_named = VerifyVlek(SignAsVlek(report_, vlek_key_.get(), 0), vlek_);
  ASSERT_FALSE(vcek_named.ok());
  EXPECT_THAT(vcek_named.status().message(), HasSubstr("it is a VLEK"));
}

TEST_F(VlekTest, RefusesUnsignedAndReservedKeyInfo) {
  for (uint32_t key : {7u, 2u}) {
    auto claims = VerifyVlek(SignAsVlek(report_, vlek_key_.get(), key), vlek_);
    ASSERT_FALSE(claims.ok()) << key;
    EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(claims.status().message(), HasSubstr(key == 7 ? "not signed" : "reserved")) << key;
  }
}

TEST_F(VlekTest, ChecksTheVleksTcbExtensions) {
  auto claims = VerifyVlek(vlek_report_, MakeVlek(vlek_key_.get(), 116));
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("VLEK was issued for TCB"));
  claims = VerifyVlek(vlek_report_,
                      MakeVlek(vlek_key_.get(), 115, nullptr, nullptr, /*with_tcb=*/false));
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("VLEK has no extension"));
}

// Trustee's SNP attester sends the sev crate's serde objects: the report as
// an object, cert_chain entries with byte arrays and enum names ("VLEK",
// "ASK", {"OTHER": guid}).
TEST_F(VlekTest, VerifierTakesTrusteesEvidenceForm) {
  auto dir = TempDir::Create("kbs-vlek-");
  ASSERT_TRUE(dir.ok());
  std::ofstream(dir->Join("milan_ark.pem")) << anchors_.ark;
  VerifierConfig config;
  config.snp_certs_dir = dir->path().string();
  config.allow_unpinned_root = true;
  auto verifier = CreateVerifier("snp", config);
  ASSERT_TRUE(verifier.ok());
  std::string binding = tee::Sha384("runtime data");
  std::string report = report_;
  report.replace(0x50, 64, *PadReportData(binding));
  report = SignAsVlek(report, vlek_key_.get());
  auto bytes = [](const std::string& data) {
    nlohmann::json a = nlohmann::json::array();
    for (unsigned char c : data) a.push_back(c);
    return a;
  };
  nlohmann::json evidence = {
      {"attestation_report", SerdeForm(report)},
      {"cert_chain",
       {{{"cert_type", "VLEK"}, {"data", bytes(vlek_)}},
        {{"cert_type", "ASK"}, {"data", bytes(CertDer(asvk_.get()))}},
        {{"cert_type", {{"OTHER", "00000000-0000-0000-0000-000000000001"}}},
         {"data", nlohmann::json::array()}}}}};
  auto claims = (*verifier)->Verify(evidence, binding);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->signing_key, "VLEK");
  EXPECT_THAT(claims->trust_anchor, HasSubstr("UNPINNED"));
  // The ASVK may come from the certificate directory instead.
  std::ofstream(dir->Join("milan_asvk.pem")) << anchors_.asvk;
  evidence["cert_chain"].erase(1);
  EXPECT_TRUE((*verifier)->Verify(evidence, binding).ok());
  std::filesystem::remove(dir->Join("milan_asvk.pem"));
  auto no_asvk = (*verifier)->Verify(evidence, binding);
  EXPECT_EQ(no_asvk.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(no_asvk.status().message(), HasSubstr("carries no ASVK"));
  // The VCEK in the chain for a VLEK-signed report: refused by name.
  evidence["cert_chain"] = {{{"cert_type", "VCEK"}, {"data", bytes(vcek_)}}};
  EXPECT_THAT((*verifier)->Verify(evidence, binding).status().message(), HasSubstr("it is a VCEK"));
  // No VLEK at all.
  evidence["cert_chain"] = nullptr;
  EXPECT_THAT((*verifier)->Verify(evidence, binding).status().message(),
              HasSubstr("carries no VLEK certificate"));
}

TEST(AsvkTest, RealAsvkCertificatesChainToThePinnedArks) {
  REQUIRE_TESTDATA();
  for (const char* product : {"milan", "genoa", "turin"}) {
    SnpTrustAnchors anchors{Slurp(absl::StrCat("snp/", product, "_ark.pem")), "",
                            Slurp(absl::StrCat("snp/", product, "_asvk.pem"))};
    ASSERT_FALSE(anchors.asvk.empty()) << product;
    auto asvk = VerifySnpIntermediate(anchors, SnpSigningKey::kVlek);
    ASSERT_TRUE(asvk.ok()) << product << ": " << asvk.status();
    EXPECT_EQ(SubjectCommonName(asvk->get()).rfind("SEV-VLEK-", 0), 0u) << product;
    auto ark = ParseCertificate(anchors.ark, "ARK");
    auto parsed = ParseSnpProduct(product);
    ASSERT_TRUE(parsed.ok());
    auto root = ClassifyRoot(ark->get(), "AMD ARK", PinnedArkSha256(*parsed), true, false);
    ASSERT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(root->kind, RootKind::kPinned);
  }
  // Another product's ASVK under the Milan ARK: refused.
  SnpTrustAnchors mixed{Slurp("snp/milan_ark.pem"), "", Slurp("snp/genoa_asvk.pem")};
  auto refused = VerifySnpIntermediate(mixed, SnpSigningKey::kVlek);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("ASVK certificate was issued by \"ARK-Genoa\""));
}

class TdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_TESTDATA();
    quote_ = Slurp("tdx/tdx_quote_5.dat");
    ASSERT_EQ(quote_.size(), 5006u);
    // The Intel SGX Root CA: the last certificate of the chain the quote
    // carries (the same public certificate an operator configures).
    size_t begin = quote_.find("-----BEGIN CERTIFICATE-----");
    ASSERT_NE(begin, std::string::npos);
    auto chain = ParsePemCertificates(quote_.substr(begin), "chain");
    ASSERT_TRUE(chain.ok()) << chain.status();
    ASSERT_EQ(chain->size(), 3u);
    root_ = Pem(chain->back().get());
    options_.expected_report_data = quote_.substr(54 + 520, 64);
    options_.collateral = TdxCollateral{root_};
  }
  static std::string Pem(X509* cert) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(len));
    BIO_free(bio);
    return out;
  }
  static std::string Flip(std::string data, size_t offset) {
    data[offset] = static_cast<char>(data[offset] ^ 0x10);
    return data;
  }

  std::string quote_;
  std::string root_;
  TdxVerifyOptions options_;
};

TEST_F(TdxTest, ParsesTheV5Quote) {
  auto q = ParseTdxQuote(quote_);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->version, 5);
  EXPECT_EQ(q->body_type, 3);
  EXPECT_EQ(q->tee_type, 0x81u);
  EXPECT_EQ(tee::HexEncode(q->mrtd),
            "dfba221b48a22af8511542ee796603f37382800840dcd978703909bf8e64d4c8a1e9de86e7c9638bfcba42"
            "2f3886400a");
  EXPECT_EQ(tee::HexEncode(q->rtmr[0]).substr(0, 16), "9b529f3689e2e8eb");
  EXPECT_EQ(tee::HexEncode(q->report_data).substr(0, 16), "6d6ab13b046cff60");
  EXPECT_FALSE(q->debug());
}

TEST_F(TdxTest, ParsesAV4Layout) {
  // A v4 quote is the v5 one without the type/size fields and the TDX 1.5
  // tail of the body.
  std::string v4 = quote_.substr(0, 48) + quote_.substr(54, 584) + quote_.substr(54 + 648);
  v4[0] = 4;
  auto q = ParseTdxQuote(v4);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->version, 4);
  EXPECT_EQ(tee::HexEncode(q->mrtd).substr(0, 16), "dfba221b48a22af8");
  EXPECT_EQ(q->report_data, quote_.substr(54 + 520, 64));
}

TEST_F(TdxTest, AcceptsTheRealQuoteWithCollateral) {
  options_.reference.measurements["mrtd"] = {tee::HexEncode(quote_.substr(54 + 136, 48))};
  auto claims = VerifyTdxAttestation(quote_, options_);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tee, "tdx");
  EXPECT_TRUE(claims->signature_verified);
  // mrtd, mrconfigid, rtmr0-3, and the TDX module / TD configuration.
  EXPECT_EQ(claims->measurements.size(), 9u);
  EXPECT_EQ(claims->measurements.at("mrseam"), tee::HexEncode(quote_.substr(54 + 16, 48)));
  EXPECT_EQ(claims->measurements.at("td_attributes").size(), 16u);
  EXPECT_EQ(claims->measurements.at("xfam").size(), 16u);
  // A real quote arrives in a fixed-size buffer: the bytes after the
  // declared signature data do not count.
  auto padded = VerifyTdxAttestation(quote_ + std::string(16384 - quote_.size() % 4096, '\0'),
                                     options_);
  ASSERT_TRUE(padded.ok()) << padded.status();
  EXPECT_EQ(padded->measurements, claims->measurements);
  EXPECT_EQ(claims->init_data_digest, "");  // mrconfigid is zero
  // The root in the quote's chain is Intel's, as pinned.
  EXPECT_EQ(claims->trust_anchor,
            absl::StrCat("Intel SGX Root CA (pinned) sha256:", kIntelSgxRootCaSha256));
  EXPECT_FALSE(claims->simulated);
}

TEST_F(TdxTest, RefusesWithoutCollateralUnlessAllowed) {
  options_.collateral.reset();
  auto claims = VerifyTdxAttestation(quote_, options_);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(claims.status().message(), HasSubstr("no collateral"));
  options_.allow_unverified = true;
  claims = VerifyTdxAttestation(quote_, options_);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_FALSE(claims->signature_verified);
}

TEST_F(TdxTest, RefusesAFlippedBitInTheBody) {
  for (size_t offset : {size_t{2 + 8}, size_t{54 + 136}, size_t{54 + 328}, size_t{54 + 600}}) {
    auto claims = VerifyTdxAttestation(Flip(quote_, offset), options_);
    ASSERT_FALSE(claims.ok()) << offset;
    EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied) << claims.status();
    EXPECT_THAT(claims.status().message(), HasSubstr("TDX quote signature")) << offset;
  }
}

TEST_F(TdxTest, RefusesAFlippedBitInTheSignatureOrQeReport) {
  size_t sig = 54 + 648 + 4;
  auto claims = VerifyTdxAttestation(Flip(quote_, sig + 5), options_);
  EXPECT_THAT(claims.status().message(), HasSubstr("TDX quote signature"));
  claims = VerifyTdxAttestation(Flip(quote_, sig + 64 + 3), options_);  // attestation key
  EXPECT_FALSE(claims.ok());
  claims = VerifyTdxAttestation(Flip(quote_, sig + 134 + 100), options_);  // QE report body
  EXPECT_THAT(claims.status().message(), HasSubstr("QE report signature"));
  claims = VerifyTdxAttestation(Flip(quote_, sig + 134 + 384 + 7), options_);  // QE signature
  EXPECT_THAT(claims.status().message(), HasSubstr("QE report signature"));
}

TEST_F(TdxTest, RefusesAChainToAnotherRoot) {
  // A root that is not Intel's pinned one is refused before any chain check.
  options_.collateral = TdxCollateral{SelfSignedPem("Intel SGX Root CA")};
  auto claims = VerifyTdxAttestation(quote_, options_);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("is not Intel SGX Root CA"));
  EXPECT_THAT(claims.status().message(), HasSubstr(kIntelSgxRootCaSha256));
  // Allowed explicitly, it must still be the root the chain ends at.
  options_.collateral->allow_unpinned_root = true;
  claims = VerifyTdxAttestation(quote_, options_);
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("does not verify up to the root"));
}

TEST_F(TdxTest, RefusesTheWrongReportDataAndMeasurements) {
  options_.expected_report_data = std::string(64, '\0');
  EXPECT_THAT(VerifyTdxAttestation(quote_, options_).status().message(), HasSubstr("REPORTDATA"));
  options_.expected_report_data = quote_.substr(54 + 520, 64);
  options_.reference.measurements["rtmr1"] = {std::string(96, 'f')};
  EXPECT_THAT(VerifyTdxAttestation(quote_, options_).status().message(), HasSubstr("rtmr1"));
}

TEST_F(TdxTest, RefusesMalformedQuotes) {
  EXPECT_EQ(VerifyTdxAttestation(quote_.substr(0, 600), options_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(VerifyTdxAttestation(quote_.substr(0, 4000), options_).status().message(),
              HasSubstr("overruns"));
  std::string sgx = quote_;
  sgx[4] = 0;
  EXPECT_THAT(VerifyTdxAttestation(sgx, options_).status().message(), HasSubstr("not TDX"));
}

TEST_F(TdxTest, VerifierTakesBase64QuotesAndTheRootFromAFile) {
  auto verifier = CreateVerifier("tdx", VerifierConfig{});
  ASSERT_TRUE(verifier.ok());
  nlohmann::json evidence = {{"cc_eventlog", nullptr}, {"quote", tee::Base64Encode(quote_)}};
  auto claims = (*verifier)->Verify(evidence, std::string(48, '\0'));
  EXPECT_THAT(claims.status().message(), HasSubstr("no collateral"));
  EXPECT_EQ((*verifier)->Verify(nlohmann::json{{"quote", 5}}, "").status().code(),
            absl::StatusCode::kInvalidArgument);

  auto dir = TempDir::Create("kbs-tdx-");
  ASSERT_TRUE(dir.ok());
  std::ofstream(dir->Join("root.pem")) << root_;
  VerifierConfig config;
  config.tdx_root_ca_file = dir->Join("root.pem");
  auto with_root = CreateVerifier("tdx", config);
  ASSERT_TRUE(with_root.ok()) << with_root.status();
  // The chain verifies; only the binding (zeros here) is refused.
  claims = (*with_root)->Verify(evidence, std::string(48, '\0'));
  EXPECT_THAT(claims.status().message(), HasSubstr("REPORTDATA"));
  // Trustee's attester may send the CC event log (base64): it does not
  // change what is verified.
  evidence["cc_eventlog"] = tee::Base64Encode("TCG event log bytes");
  claims = (*with_root)->Verify(evidence, std::string(48, '\0'));
  EXPECT_THAT(claims.status().message(), HasSubstr("REPORTDATA"));
  config.tdx_root_ca_file = dir->Join("missing.pem");
  EXPECT_EQ(CreateVerifier("tdx", config).status().code(), absl::StatusCode::kNotFound);
}

TEST(SampleTest, AcceptsMatchingReportDataOnly) {
  std::string digest = tee::Sha384("runtime data");
  nlohmann::json evidence = {{"svn", "1"}, {"report_data", tee::Base64Encode(digest)}};
  auto claims = VerifySampleEvidence(evidence, digest);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tee, "sample");
  EXPECT_FALSE(claims->signature_verified);
  evidence["init_data"] = "ABCD";
  EXPECT_EQ(VerifySampleEvidence(evidence, digest)->init_data_digest, "abcd");
  auto wrong = VerifySampleEvidence(evidence, tee::Sha384("other"));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(wrong.status().message(), HasSubstr("does not match"));
  EXPECT_EQ(VerifySampleEvidence(nlohmann::json::array(), digest).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifySampleEvidence({{"report_data", "!!"}}, digest).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(VerifierTest, UnknownTeeIsUnimplemented) {
  EXPECT_EQ(CreateVerifier("sgx", {}).status().code(), absl::StatusCode::kUnimplemented);
}

TEST(EncodingTest, RoundTrips) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00\x01"}) {
    EXPECT_EQ(*tee::Base64Decode(tee::Base64Encode(s)), s);
    EXPECT_EQ(*tee::Base64UrlDecode(tee::Base64UrlEncode(s)), s);
    EXPECT_EQ(*tee::HexDecode(tee::HexEncode(s)), s);
  }
  EXPECT_EQ(tee::Base64Encode("foobar!"), "Zm9vYmFyIQ==");
  EXPECT_EQ(tee::Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(tee::Base64Decode("a").ok());
  EXPECT_FALSE(tee::HexDecode("zz").ok());
}

}  // namespace
}  // namespace cloak::kbs
