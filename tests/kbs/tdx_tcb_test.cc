// TDX TCB evaluation from Intel PCS-format collateral. Real collateral cannot
// be fetched here, so the tests make their own: a test root CA (an "other
// root", accepted only when allowed explicitly), a PCK platform CA and PCK
// certificate with Intel's SGX extensions, a TCB signing certificate, CRLs,
// TCB info and QE identity signed the way Intel signs them, and quotes over
// the real quote's body signed through that chain. The real quote vector is
// also evaluated, with its own Intel PCK chain and synthetic collateral.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/core_names.h>

#include <ctime>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/temp_dir.h"
#include "common/tee/bytes.h"
#include "kbs/policy.h"
#include "kbs/verify/tdx.h"
#include "kbs/verify/tdx_tcb.h"
#include "kbs/verify/trust_anchors.h"
#include "kbs/verify/verifier.h"
#include "tests/kbs/test_util.h"

namespace cloak::kbs {
namespace {

using ::testing::HasSubstr;
using testing::CertPem;
using testing::EcdsaRaw;
using testing::MakeCert;
using testing::NewKey;
using testing::Slurp;

constexpr char kSgxExt[] = "1.2.840.113741.1.13.1";
constexpr size_t kBody = 54;  // v5 quote: header 48 + type/size 6

std::string Tlv(uint8_t tag, const std::string& content) {
  std::string out(1, static_cast<char>(tag));
  size_t n = content.size();
  if (n < 128) {
    out += static_cast<char>(n);
  } else if (n < 256) {
    out += '\x81';
    out += static_cast<char>(n);
  } else {
    out += '\x82';
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
  }
  return out + content;
}

std::string Oid(const std::string& dotted) {
  ASN1_OBJECT* obj = OBJ_txt2obj(dotted.c_str(), 1);
  unsigned char* der = nullptr;
  int len = i2d_ASN1_OBJECT(obj, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  ASN1_OBJECT_free(obj);
  return out;
}

std::string Int(uint32_t v) {
  std::string c;
  do {
    c.insert(c.begin(), static_cast<char>(v & 0xff));
    v >>= 8;
  } while (v != 0);
  if (static_cast<uint8_t>(c[0]) & 0x80) c.insert(c.begin(), '\0');
  return Tlv(0x02, c);
}

// The PCK certificate's SGX extensions as Intel encodes them.
std::string SgxExtensions(const std::string& fmspc, uint8_t comp_svn, uint16_t pcesvn) {
  const std::string base = kSgxExt;
  std::string tcb;
  for (int i = 1; i <= 16; ++i) {
    tcb += Tlv(0x30, Oid(absl::StrCat(base, ".2.", i)) + Int(comp_svn));
  }
  tcb += Tlv(0x30, Oid(base + ".2.17") + Int(pcesvn));
  tcb += Tlv(0x30, Oid(base + ".2.18") + Tlv(0x04, std::string(16, static_cast<char>(comp_svn))));
  std::string items = Tlv(0x30, Oid(base + ".1") + Tlv(0x04, std::string(16, '\x42'))) +
                      Tlv(0x30, Oid(base + ".2") + Tlv(0x30, tcb)) +
                      Tlv(0x30, Oid(base + ".3") + Tlv(0x04, std::string(2, '\0'))) +
                      Tlv(0x30, Oid(base + ".4") + Tlv(0x04, fmspc)) +
                      Tlv(0x30, Oid(base + ".5") + Tlv(0x0A, std::string(1, '\0')));
  return Tlv(0x30, items);
}

std::string CrlPem(X509* issuer, EVP_PKEY* key, const std::vector<long>& revoked,
                   long next_update = 3600L * 24) {
  X509_CRL* crl = X509_CRL_new();
  X509_CRL_set_version(crl, 1);
  X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
  ASN1_TIME* t = ASN1_TIME_adj(nullptr, std::time(nullptr), 0, -3600);
  X509_CRL_set1_lastUpdate(crl, t);
  ASN1_TIME_free(t);
  t = ASN1_TIME_adj(nullptr, std::time(nullptr), 0, next_update);
  X509_CRL_set1_nextUpdate(crl, t);
  ASN1_TIME_free(t);
  for (long serial : revoked) {
    X509_REVOKED* r = X509_REVOKED_new();
    ASN1_INTEGER* s = ASN1_INTEGER_new();
    ASN1_INTEGER_set(s, serial);
    X509_REVOKED_set_serialNumber(r, s);
    ASN1_INTEGER_free(s);
    ASN1_TIME* rt = ASN1_TIME_adj(nullptr, std::time(nullptr), 0, -60);
    X509_REVOKED_set_revocationDate(r, rt);
    ASN1_TIME_free(rt);
    X509_CRL_add0_revoked(crl, r);
  }
  X509_CRL_sort(crl);
  X509_CRL_sign(crl, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_CRL(bio, crl);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  X509_CRL_free(crl);
  return out;
}

std::string RawXY(EVP_PKEY* key) {
  size_t len = 0;
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0, &len);
  std::string buf(len, '\0');
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY,
                                  reinterpret_cast<unsigned char*>(buf.data()), len, &len);
  return buf.substr(1);  // 04 || X || Y
}

std::string Date(absl::Duration from_now) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now() + from_now, absl::UTCTimeZone());
}

// Signs `body` (pretty-printed, so that only the raw text can verify) as
// Intel PCS serves it: {"<member>":<body>,"signature":"<hex r||s>"}.
std::string SignedDoc(const char* member, const nlohmann::json& body, EVP_PKEY* key) {
  std::string text = body.dump(2);
  return absl::StrCat("{\"", member, "\": ", text, ", \"signature\":\"",
                      tee::HexEncode(EcdsaRaw(key, text, 256)), "\"}");
}

nlohmann::json Components(uint8_t svn, bool tdx) {
  nlohmann::json out = nlohmann::json::array();
  for (int i = 0; i < 16; ++i) {
    out.push_back({{"svn", tdx && i == 1 ? 0 : svn}, {"category", "BIOS"}, {"type", ""}});
  }
  return out;
}

// What a test's TCB info and QE identity say.
struct CollateralSpec {
  std::string fmspc = std::string("\x00\x80\x6f\x05\x00\x00", 6);
  // Platform levels: {required svn (SGX and TDX components alike), status}.
  std::vector<std::pair<uint8_t, std::string>> levels = {{5, "UpToDate"},
                                                          {4, "SWHardeningNeeded"},
                                                          {3, "ConfigurationNeeded"},
                                                          {2, "ConfigurationAndSWHardeningNeeded"},
                                                          {1, "OutOfDate"},
                                                          {0, "Revoked"}};
  absl::Duration next_update = absl::Hours(24 * 30);
  std::string module_mrsigner = std::string(48, '\0');
  uint8_t module_id = 0;  // TEE_TCB_SVN[1] the module identity is for (0: none)
  std::vector<std::pair<uint8_t, std::string>> module_levels = {{3, "UpToDate"},
                                                                {0, "OutOfDate"}};
  std::string qe_mrsigner = std::string(32, '\xdc');
  uint16_t qe_isvprodid = 2;
  std::vector<std::pair<uint16_t, std::string>> qe_levels = {{8, "UpToDate"},
                                                             {0, "OutOfDate"}};
};

class TdxTcbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(::cloak::kbs::testing::HaveTestdata());
    real_ = Slurp("tdx/tdx_quote_5.dat");
    ASSERT_EQ(real_.size(), 5006u);
    root_key_ = NewKey("P-256");
    ca_key_ = NewKey("P-256");
    pck_key_ = NewKey("P-256");
    signer_key_ = NewKey("P-256");
    att_key_ = NewKey("P-256");
    root_ = MakeCert(root_key_.get(), {.cn = "Test SGX Root CA", .ca = true, .serial = 1});
    ca_ = MakeCert(ca_key_.get(), {.cn = "Test SGX PCK Platform CA",
                                   .issuer = root_.get(),
                                   .issuer_key = root_key_.get(),
                                   .ca = true,
                                   .serial = 2});
    signer_ = MakeCert(signer_key_.get(), {.cn = "Test SGX TCB Signing",
                                           .issuer = root_.get(),
                                           .issuer_key = root_key_.get(),
                                           .serial = 3});
    MakePck(5, 11);
    root_crl_ = CrlPem(root_.get(), root_key_.get(), {});
    pck_crl_ = CrlPem(ca_.get(), ca_key_.get(), {});
    Sign(spec_);
  }

  void MakePck(uint8_t comp_svn, uint16_t pcesvn, long serial = 10) {
    pck_ = MakeCert(pck_key_.get(),
                    {.cn = "Test SGX PCK Certificate",
                     .issuer = ca_.get(),
                     .issuer_key = ca_key_.get(),
                     .serial = serial,
                     .extensions = {{kSgxExt, SgxExtensions(spec_.fmspc, comp_svn, pcesvn)}}});
  }

  // TCB info and QE identity for `spec`, signed by the TCB signing key.
  void Sign(const CollateralSpec& spec) {
    nlohmann::json levels = nlohmann::json::array();
    for (const auto& [svn, status] : spec.levels) {
      levels.push_back({{"tcb",
                         {{"sgxtcbcomponents", Components(svn, false)},
                          {"pcesvn", svn},
                          {"tdxtcbcomponents", Components(svn, true)}}},
                        {"tcbDate", "2024-03-13T00:00:00Z"},
                        {"tcbStatus", status},
                        {"advisoryIDs", {absl::StrCat("INTEL-SA-000", static_cast<int>(svn))}}});
    }
    nlohmann::json info = {{"id", "TDX"},
                           {"version", 3},
                           {"issueDate", Date(-absl::Hours(1))},
                           {"nextUpdate", Date(spec.next_update)},
                           {"fmspc", tee::HexEncode(spec.fmspc)},
                           {"pceId", "0000"},
                           {"tcbType", 0},
                           {"tcbEvaluationDataNumber", 17},
                           {"tdxModule",
                            {{"mrsigner", tee::HexEncode(spec.module_mrsigner)},
                             {"attributes", "0000000000000000"},
                             {"attributesMask", "FFFFFFFFFFFFFFFF"}}},
                           {"tcbLevels", levels}};
    if (spec.module_id != 0) {
      nlohmann::json module_levels = nlohmann::json::array();
      for (const auto& [svn, status] : spec.module_levels) {
        module_levels.push_back(
            {{"tcb", {{"isvsvn", svn}}}, {"tcbDate", "2024-03-13T00:00:00Z"}, {"tcbStatus", status}});
      }
      char id[8];
      std::snprintf(id, sizeof(id), "TDX_%02X", spec.module_id);
      info["tdxModuleIdentities"] = {{{"id", id},
                                      {"mrsigner", tee::HexEncode(spec.module_mrsigner)},
                                      {"attributes", "0000000000000000"},
                                      {"attributesMask", "FFFFFFFFFFFFFFFF"},
                                      {"tcbLevels", module_levels}}};
    }
    nlohmann::json qe_levels = nlohmann::json::array();
    for (const auto& [svn, status] : spec.qe_levels) {
      qe_levels.push_back(
          {{"tcb", {{"isvsvn", svn}}}, {"tcbDate", "2024-03-13T00:00:00Z"}, {"tcbStatus", status}});
    }
    nlohmann::json qe = {{"id", "TD_QE"},
                         {"version", 2},
                         {"issueDate", Date(-absl::Hours(1))},
                         {"nextUpdate", Date(spec.next_update)},
                         {"tcbEvaluationDataNumber", 17},
                         {"miscselect", "00000000"},
                         {"miscselectMask", "FFFFFFFF"},
                         {"attributes", "11000000000000000000000000000000"},
                         {"attributesMask", "FBFFFFFFFFFFFFFF0000000000000000"},
                         {"mrsigner", tee::HexEncode(spec.qe_mrsigner)},
                         {"isvprodid", spec.qe_isvprodid},
                         {"tcbLevels", qe_levels}};
    collateral_.tcb_info = SignedDoc("tcbInfo", info, signer_key_.get());
    collateral_.qe_identity = SignedDoc("enclaveIdentity", qe, signer_key_.get());
    collateral_.signing_chain = CertPem(signer_.get()) + CertPem(root_.get());
    collateral_.crls = {root_crl_, pck_crl_};
  }

  // The real quote's header and body with TEE_TCB_SVN `tee_svn` (byte 1:
  // `module`) and REPORTDATA `report_data`, signed through the test chain,
  // its QE at ISVSVN `qe_svn`.
  std::string Quote(uint8_t tee_svn, uint8_t module = 0, uint16_t qe_svn = 8,
                    const std::string& report_data = std::string(64, '\x07')) {
    std::string q = real_.substr(0, kBody + 648);
    std::string svn(16, static_cast<char>(tee_svn));
    svn[1] = static_cast<char>(module);
    q.replace(kBody, 16, svn);
    q.replace(kBody + 64, 48, std::string(48, '\0'));  // MRSIGNERSEAM: Intel's module
    q.replace(kBody + 112, 8, std::string(8, '\0'));   // SEAM attributes
    q.replace(kBody + 520, 64, report_data);
    std::string att = RawXY(att_key_.get());
    std::string auth(32, '\x01');
    std::string qe(384, '\0');
    qe[48] = '\x11';  // ATTRIBUTES: INIT | MODE64BIT
    qe.replace(128, 32, std::string(32, '\xdc'));
    qe[256] = 2;  // ISVPRODID
    qe[258] = static_cast<char>(qe_svn & 0xff);
    qe[259] = static_cast<char>(qe_svn >> 8);
    qe.replace(320, 32, tee::Sha256(att + auth));
    std::string chain = CertPem(pck_.get()) + CertPem(ca_.get()) + CertPem(root_.get());
    std::string cert_data = qe + EcdsaRaw(pck_key_.get(), qe, 256);
    cert_data += std::string{static_cast<char>(auth.size()), '\0'} + auth;
    cert_data += std::string{'\x05', '\0'} + U32(chain.size()) + chain;
    std::string sig = EcdsaRaw(att_key_.get(), q, 256) + att + std::string{'\x06', '\0'} +
                      U32(cert_data.size()) + cert_data;
    return q + U32(sig.size()) + sig;
  }
  static std::string U32(size_t v) {
    std::string out(4, '\0');
    tee::PutLe(out, 0, 4, v);
    return out;
  }

  absl::StatusOr<Claims> Verify(const std::string& quote) {
    TdxVerifyOptions options;
    options.expected_report_data = quote.substr(kBody + 520, 64);
    options.collateral = TdxCollateral{.root_ca = CertPem(root_.get()),
                                       .allow_unpinned_root = true,
                                       .tcb = collateral_};
    return VerifyTdxAttestation(quote, options);
  }

  std::string real_;
  PkeyPtr root_key_, ca_key_, pck_key_, signer_key_, att_key_;
  X509Ptr root_, ca_, signer_, pck_;
  std::string root_crl_, pck_crl_;
  CollateralSpec spec_;
  TdxTcbCollateral collateral_;
};

TEST_F(TdxTcbTest, UpToDatePlatformGivesTheClaim) {
  auto claims = Verify(Quote(5));
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tcb_status, "UpToDate");
  EXPECT_EQ(claims->advisory_ids, std::vector<std::string>{"INTEL-SA-0005"});
  EXPECT_THAT(claims->trust_anchor, HasSubstr("UNPINNED root \"Test SGX Root CA\""));
  EXPECT_THAT(claims->detail, HasSubstr("PCK chain and CRLs verified, TCB UpToDate"));
  auto again = Claims::FromJson(claims->ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->tcb_status, "UpToDate");
  EXPECT_EQ(again->advisory_ids, claims->advisory_ids);
}

TEST_F(TdxTcbTest, EachPlatformLevelGivesItsStatus) {
  for (const auto& [svn, status] : spec_.levels) {
    auto claims = Verify(Quote(svn));
    if (status == "Revoked") {
      ASSERT_FALSE(claims.ok());
      EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
      EXPECT_THAT(claims.status().message(), HasSubstr("TCB status is Revoked"));
      continue;
    }
    ASSERT_TRUE(claims.ok()) << status << ": " << claims.status();
    EXPECT_EQ(claims->tcb_status, status);
  }
  // The PCK's SGX components below the TDX ones: the SGX side decides.
  MakePck(2, 11);
  auto claims = Verify(Quote(5));
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tcb_status, "ConfigurationAndSWHardeningNeeded");
  // PCESVN alone below a level.
  MakePck(5, 4);
  EXPECT_EQ(Verify(Quote(5))->tcb_status, "SWHardeningNeeded");
}

TEST_F(TdxTcbTest, BelowEveryLevelIsNotSupported) {
  spec_.levels = {{5, "UpToDate"}};
  Sign(spec_);
  auto claims = Verify(Quote(4));
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("below every level"));
}

TEST_F(TdxTcbTest, TheQeAndTheModuleLowerTheStatus) {
  // QE ISVSVN below the identity's UpToDate level.
  auto claims = Verify(Quote(5, 0, /*qe_svn=*/7));
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tcb_status, "OutOfDate");
  claims = Verify(Quote(3, 0, 7));
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tcb_status, "OutOfDateConfigurationNeeded");
  // TDX 1.5: TEE_TCB_SVN byte 1 names the module identity, byte 0 its ISVSVN.
  spec_.module_id = 1;
  Sign(spec_);
  claims = Verify(Quote(5, 1));
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tcb_status, "UpToDate");
  // The module's ISVSVN (byte 0) below its identity's UpToDate level; the
  // platform's TDX components are compared from byte 2 on.
  spec_.module_levels = {{6, "UpToDate"}, {0, "OutOfDate"}};
  Sign(spec_);
  claims = Verify(Quote(5, 1));
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tcb_status, "OutOfDate");
  // A module identity the TCB info does not list.
  auto unknown = Verify(Quote(5, 2));
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("no TDX module identity TDX_02"));
}

TEST_F(TdxTcbTest, RefusesAQeOrModuleTheIdentitiesDoNotName) {
  spec_.qe_mrsigner = std::string(32, '\xab');
  Sign(spec_);
  auto claims = Verify(Quote(5));
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("MRSIGNER"));
  spec_ = CollateralSpec{};
  spec_.qe_isvprodid = 1;
  Sign(spec_);
  EXPECT_THAT(Verify(Quote(5)).status().message(), HasSubstr("ISVPRODID"));
  spec_ = CollateralSpec{};
  spec_.module_mrsigner = std::string(48, '\x01');
  Sign(spec_);
  EXPECT_THAT(Verify(Quote(5)).status().message(), HasSubstr("MRSIGNERSEAM"));
}

TEST_F(TdxTcbTest, RefusesTamperedCollateral) {
  std::string info = collateral_.tcb_info;
  size_t at = info.find("\"tcbEvaluationDataNumber\": 17");
  ASSERT_NE(at, std::string::npos);
  collateral_.tcb_info = info.replace(at, 29, "\"tcbEvaluationDataNumber\": 18");
  auto claims = Verify(Quote(5));
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("TDX TCB info signature"));
  // The QE identity signed by another key.
  Sign(spec_);
  PkeyPtr other = NewKey("P-256");
  std::string qe = collateral_.qe_identity;
  size_t sig = qe.find("\"signature\":\"");
  std::string body(*RawJsonMember(qe, "enclaveIdentity"));
  collateral_.qe_identity = qe.substr(0, sig) + "\"signature\":\"" +
                            tee::HexEncode(EcdsaRaw(other.get(), body, 256)) + "\"}";
  EXPECT_THAT(Verify(Quote(5)).status().message(), HasSubstr("TD QE identity signature"));
  // A signing certificate the root did not issue.
  Sign(spec_);
  X509Ptr rogue = MakeCert(signer_key_.get(), {.cn = "Test SGX TCB Signing", .serial = 3});
  collateral_.signing_chain = CertPem(rogue.get());
  EXPECT_THAT(Verify(Quote(5)).status().message(), HasSubstr("TCB signing certificate chain"));
  // TCB info for another platform.
  spec_.fmspc = std::string("\x00\x90\x6e\xa1\x00\x00", 6);
  Sign(spec_);
  EXPECT_THAT(Verify(Quote(5)).status().message(), HasSubstr("FMSPC 00906EA10000"));
}

TEST_F(TdxTcbTest, RefusesExpiredCollateralAndCrls) {
  spec_.next_update = -absl::Hours(1);
  Sign(spec_);
  auto claims = Verify(Quote(5));
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(claims.status().message(), HasSubstr("expired at its nextUpdate"));
  spec_ = CollateralSpec{};
  Sign(spec_);
  collateral_.crls = {root_crl_, CrlPem(ca_.get(), ca_key_.get(), {}, -60)};
  EXPECT_THAT(Verify(Quote(5)).status().message(), HasSubstr("CRL has expired"));
}

TEST_F(TdxTcbTest, RefusesRevokedCertificatesAndMissingCrls) {
  collateral_.crls = {root_crl_, CrlPem(ca_.get(), ca_key_.get(), {10})};
  auto claims = Verify(Quote(5));
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(claims.status().message(), HasSubstr("PCK certificate chain"));
  EXPECT_THAT(claims.status().message(), HasSubstr("revoked"));
  // The TCB signing certificate revoked by the root.
  collateral_.crls = {CrlPem(root_.get(), root_key_.get(), {3}), pck_crl_};
  claims = Verify(Quote(5));
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("TCB signing certificate chain"));
  EXPECT_THAT(claims.status().message(), HasSubstr("revoked"));
  // The PCK CA's CRL missing: the PCK cannot be checked, so it is refused.
  collateral_.crls = {root_crl_};
  EXPECT_THAT(Verify(Quote(5)).status().message(), HasSubstr("unable to get certificate CRL"));
}

TEST_F(TdxTcbTest, RefusesTheTestRootUnlessAllowed) {
  TdxVerifyOptions options;
  std::string quote = Quote(5);
  options.expected_report_data = quote.substr(kBody + 520, 64);
  options.collateral =
      TdxCollateral{.root_ca = CertPem(root_.get()), .allow_unpinned_root = false, .tcb = collateral_};
  auto claims = VerifyTdxAttestation(quote, options);
  ASSERT_FALSE(claims.ok());
  EXPECT_THAT(claims.status().message(), HasSubstr("--allow-unpinned-root"));
}

TEST_F(TdxTcbTest, ParsesTheRealPckCertificatesExtensions) {
  size_t begin = real_.find("-----BEGIN CERTIFICATE-----");
  auto chain = ParsePemCertificates(real_.substr(begin), "chain");
  ASSERT_TRUE(chain.ok()) << chain.status();
  auto ext = ParsePckSgxExtensions((*chain)[0].get());
  ASSERT_TRUE(ext.ok()) << ext.status();
  EXPECT_EQ(ext->fmspc.size(), 6u);
  EXPECT_EQ(ext->pce_id, std::string(2, '\0'));
  EXPECT_EQ(ext->cpusvn.size(), 16u);
  // The intermediate CA is no PCK: refused with a reason.
  EXPECT_THAT(ParsePckSgxExtensions((*chain)[1].get()).status().message(),
              HasSubstr("no SGX extensions"));
}

// The real quote, its real Intel PCK chain (pinned root), and collateral the
// test signs with its own root: the collateral's root is reported apart.
TEST_F(TdxTcbTest, EvaluatesTheRealQuoteAgainstSyntheticCollateral) {
  size_t begin = real_.find("-----BEGIN CERTIFICATE-----");
  auto chain = ParsePemCertificates(real_.substr(begin), "chain");
  ASSERT_TRUE(chain.ok());
  auto ext = ParsePckSgxExtensions((*chain)[0].get());
  ASSERT_TRUE(ext.ok());
  auto quote = ParseTdxQuote(real_);
  ASSERT_TRUE(quote.ok());
  // The identities as this platform's own values (real ones are not
  // downloadable here), the levels at the platform's SVNs.
  size_t sig = kBody + 648 + 4;
  std::string qe_report = real_.substr(sig + 134, 384);
  spec_.fmspc = ext->fmspc;
  spec_.levels = {{0, "SWHardeningNeeded"}};
  spec_.module_mrsigner = quote->mrsignerseam;
  spec_.module_id = static_cast<uint8_t>(quote->tee_tcb_svn[1]);
  spec_.module_levels = {{0, "UpToDate"}};
  spec_.qe_mrsigner = qe_report.substr(128, 32);
  spec_.qe_isvprodid = tee::Le16(qe_report, 256);
  spec_.qe_levels = {{0, "UpToDate"}};
  Sign(spec_);
  // QE identity attributes/miscselect as the real QE has them.
  nlohmann::json qe = nlohmann::json::parse(*RawJsonMember(collateral_.qe_identity, "enclaveIdentity"));
  std::string misc(qe_report.substr(16, 4));
  std::reverse(misc.begin(), misc.end());
  qe["miscselect"] = tee::HexEncode(misc);
  qe["attributes"] = tee::HexEncode(qe_report.substr(48, 16));
  qe["attributesMask"] = std::string(32, 'F');
  collateral_.qe_identity = SignedDoc("enclaveIdentity", qe, signer_key_.get());
  collateral_.crls.clear();  // Intel's CRLs cannot be fetched here
  collateral_.root_ca = CertPem(root_.get());

  TdxVerifyOptions options;
  options.expected_report_data = quote->report_data;
  options.collateral = TdxCollateral{.root_ca = CertPem((*chain)[2].get()),
                                     .allow_unpinned_root = true,
                                     .tcb = collateral_};
  auto claims = VerifyTdxAttestation(real_, options);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tcb_status, "SWHardeningNeeded");
  EXPECT_THAT(claims->trust_anchor, HasSubstr("Intel SGX Root CA (pinned)"));
  EXPECT_THAT(claims->trust_anchor, HasSubstr("TCB collateral root UNPINNED"));
  // The same collateral for another FMSPC: refused.
  spec_.fmspc = std::string(6, '\x11');
  Sign(spec_);
  collateral_.crls.clear();
  collateral_.root_ca = CertPem(root_.get());
  options.collateral->tcb = collateral_;
  EXPECT_THAT(VerifyTdxAttestation(real_, options).status().message(), HasSubstr("FMSPC"));
}

TEST_F(TdxTcbTest, TheKbsLoadsCollateralFromADirectory) {
  auto dir = TempDir::Create("kbs-tdx-collateral-");
  ASSERT_TRUE(dir.ok());
  std::ofstream(dir->Join("root.pem")) << CertPem(root_.get());
  std::ofstream(dir->Join("tcb_info.json")) << collateral_.tcb_info;
  std::ofstream(dir->Join("qe_identity.json")) << collateral_.qe_identity;
  std::ofstream(dir->Join("tcb_signing_chain.pem")) << collateral_.signing_chain;
  std::ofstream(dir->Join("root_ca_crl.pem")) << root_crl_;
  VerifierConfig config;
  config.tdx_root_ca_file = dir->Join("root.pem");
  config.tdx_collateral_dir = dir->path().string();
  config.allow_unpinned_root = true;
  // The PCK CRL is required.
  auto missing = CreateVerifier("tdx", config);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("pck_crl"));
  std::ofstream(dir->Join("pck_crl.pem")) << pck_crl_;
  auto verifier = CreateVerifier("tdx", config);
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  std::string binding = tee::Sha384("runtime data");
  std::string quote = Quote(4, 0, 8, *PadReportData(binding));
  auto claims = (*verifier)->Verify({{"cc_eventlog", nullptr}, {"quote", tee::Base64Encode(quote)}},
                                    binding);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tcb_status, "SWHardeningNeeded");

  // A policy that requires UpToDate refuses it; one that allows it releases.
  auto strict = ParseResourcePolicy(
      R"({"allow_any_launch": true, "tdx_allowed_tcb_status": ["UpToDate"]})");
  ASSERT_TRUE(strict.ok()) << strict.status();
  PolicyDecision decision = EvaluatePolicy(*strict, *claims);
  EXPECT_FALSE(decision.allowed);
  EXPECT_THAT(decision.reason, HasSubstr("TDX TCB status SWHardeningNeeded"));
  auto lenient = ParseResourcePolicy(
      R"({"allow_any_launch": true, "tdx_allowed_tcb_status": ["UpToDate", "SWHardeningNeeded"]})");
  ASSERT_TRUE(lenient.ok());
  EXPECT_TRUE(EvaluatePolicy(*lenient, *claims).allowed) << EvaluatePolicy(*lenient, *claims).reason;
  // Without collateral there is no status, and the policy refuses.
  Claims unevaluated = *claims;
  unevaluated.tcb_status.clear();
  EXPECT_THAT(EvaluatePolicy(*lenient, unevaluated).reason, HasSubstr("was not evaluated"));
  EXPECT_FALSE(ParseResourcePolicy(R"({"allow_any_launch": true, "tdx_allowed_tcb_status": ["Fine"]})").ok());
  // Collateral without the root it chains to is a configuration error.
  config.tdx_root_ca_file.clear();
  EXPECT_EQ(CreateVerifier("tdx", config).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cloak::kbs
