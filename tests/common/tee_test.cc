// common/tee: RFC 8785 canonical JSON against the RFC's published examples,
// the report-data binding, encodings, digests, init-data and the SNP report
// and TDX quote parsers on the public vectors in tests/testdata.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/tee/canonical_json.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "common/tee/initdata.h"
#include "common/tee/report_data.h"
#include "common/tee/resource_path.h"
#include "common/tee/snp_report.h"
#include "common/tee/tdx_quote.h"

namespace cloak::tee {
namespace {

using ::testing::HasSubstr;

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(CLOAK_TESTDATA_DIR) + "/" + name, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// RFC 8785 §3.2.2: the sample input and its canonical form.
TEST(CanonicalJsonTest, Rfc8785SampleOfSection322) {
  const std::string input = R"({
    "numbers": [333333333.33333329, 1E30, 4.50,
                2e-3, 0.000000000000000000000000001],
    "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
    "literals": [null, true, false]
  })";
  const std::string want =
      "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
      "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
  absl::StatusOr<std::string> got = CanonicalizeJsonText(input);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, want);
}

// RFC 8785 §3.2.3: member names sort by their UTF-16 code units, so the
// emoji (a surrogate pair, D83D DE00) sorts before U+FB33 although its
// UTF-8 bytes (F0 ...) sort after EF AC B3.
TEST(CanonicalJsonTest, Rfc8785SortingOfSection323) {
  const std::string input = R"({
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\ud83d\ude00": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis"
  })";
  const std::string want =
      "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
      "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\","
      "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
      "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}";
  absl::StatusOr<std::string> got = CanonicalizeJsonText(input);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, want);
}

// RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
TEST(CanonicalJsonTest, Rfc8785NumberSerializationOfAppendixB) {
  const std::vector<std::pair<uint64_t, std::string>> vectors = {
      {0x0000000000000000, "0"},
      {0x8000000000000000, "0"},
      {0x0000000000000001, "5e-324"},
      {0x8000000000000001, "-5e-324"},
      {0x7fefffffffffffff, "1.7976931348623157e+308"},
      {0xffefffffffffffff, "-1.7976931348623157e+308"},
      {0x4340000000000000, "9007199254740992"},
      {0xc340000000000000, "-9007199254740992"},
      {0x4430000000000000, "295147905179352830000"},
      {0x44b52d02c7e14af5, "9.999999999999997e+22"},
      {0x44b52d02c7e14af6, "1e+23"},
      {0x44b52d02c7e14af7, "1.0000000000000001e+23"},
      {0x444b1ae4d6e2ef4e, "999999999999999700000"},
      {0x444b1ae4d6e2ef4f, "999999999999999900000"},
      {0x444b1ae4d6e2ef50, "1e+21"},
      {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
      {0x3eb0c6f7a0b5ed8d, "0.000001"},
      {0x41b3de4355555553, "333333333.3333332"},
      {0x41b3de4355555554, "333333333.33333325"},
      {0x41b3de4355555555, "333333333.3333333"},
      {0x41b3de4355555556, "333333333.3333334"},
      {0x41b3de4355555557, "333333333.33333343"},
      {0xbecbf647612f3696, "-0.0000033333333333333333"},
      {0x43143ff3c1cb0959, "1424953923781206.2"},
  };
  for (const auto& [bits, want] : vectors) {
    const double value = std::bit_cast<double>(bits);
    absl::StatusOr<std::string> got = CanonicalNumber(value);
    ASSERT_TRUE(got.ok()) << std::hex << bits;
    EXPECT_EQ(*got, want) << std::hex << bits;
    // The same through a whole document.
    EXPECT_EQ(*CanonicalJson(nlohmann::json{{"n", value}}), "{\"n\":" + want + "}");
  }
  // NaN and the infinities are not JSON numbers.
  for (uint64_t bits : {uint64_t{0x7fffffffffffffff}, uint64_t{0x7ff0000000000000}}) {
    EXPECT_EQ(CanonicalNumber(std::bit_cast<double>(bits)).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(CanonicalJson(nlohmann::json{{"n", std::nan("")}}).ok());
}

TEST(CanonicalJsonTest, IntegersAreNumbersToo) {
  EXPECT_EQ(*CanonicalJson(nlohmann::json::parse(R"({"b":1,"a":-7,"c":1e2,"d":100})")),
            R"({"a":-7,"b":1,"c":100,"d":100})");
}

TEST(CanonicalJsonTest, EscapesOnlyWhatJcsEscapes) {
  nlohmann::json j = {{"s", std::string("a\"b\\c\n\t\x01\x1f\x7f/\xc3\xa9\xe2\x80\xa8")}};
  EXPECT_EQ(*CanonicalJson(j),
            "{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\x7f/\xc3\xa9\xe2\x80\xa8\"}");
}

TEST(CanonicalJsonTest, RefusesWhatIsNotJson) {
  EXPECT_EQ(CanonicalJson(nlohmann::json{{"s", std::string("\xff")}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CanonicalJson(nlohmann::json{{std::string("\xc0\xaf"), 1}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(CanonicalizeJsonText("{").ok());
}

// KBS protocol 0.4.0: SHA-384 over the canonical runtime data.
TEST(ReportDataTest, RuntimeDataDigestIsSha384OfTheCanonicalRuntimeData) {
  nlohmann::json jwk = {
      {"y", "Y"}, {"x", "X"}, {"kty", "EC"}, {"crv", "P-256"}, {"alg", "ECDH-ES+A256KW"}};
  const std::string canonical =
      R"({"additional-evidence":"","nonce":"N","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"X","y":"Y"}})";
  absl::StatusOr<std::string> digest = RuntimeDataDigest("N", jwk, "");
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(*digest, Sha384(canonical));
  EXPECT_EQ(digest->size(), 48u);
  EXPECT_EQ(ReportData64(*digest), *digest + std::string(16, '\0'));
}

TEST(EncodingTest, HexRoundTripsAndRefusesGarbage) {
  EXPECT_EQ(HexEncode(std::string("\x00\xab\xff", 3)), "00abff");
  EXPECT_EQ(*HexDecode("00ABff"), std::string("\x00\xab\xff", 3));
  EXPECT_THAT(HexDecode("abc").status().message(), HasSubstr("odd length"));
  EXPECT_THAT(HexDecode("zz").status().message(), HasSubstr("not a hex digit"));
}

TEST(EncodingTest, Base64IsStrict) {
  const std::string bytes("\xfb\xff\x00\x01", 4);
  EXPECT_EQ(Base64Encode(bytes), "+/8AAQ==");
  EXPECT_EQ(Base64UrlEncode(bytes), "-_8AAQ");
  EXPECT_EQ(*Base64Decode("+/8AAQ=="), bytes);
  EXPECT_EQ(*Base64Decode("+/8AAQ"), bytes);  // padding optional
  EXPECT_EQ(*Base64UrlDecode("-_8AAQ"), bytes);
  EXPECT_EQ(*Base64Decode("-_8AAQ", Base64Alphabet::kEither), bytes);
  EXPECT_EQ(*Base64Decode("+/8AAQ==", Base64Alphabet::kEither), bytes);
  EXPECT_EQ(*Base64Decode(""), "");
  for (const char* bad : {"-_8AAQ", "+/8A AQ==", "+/8AAQ=", "+/8AAQ===", "A", "AB=C", "+/8AAR=="}) {
    EXPECT_EQ(Base64Decode(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(Base64UrlDecode("+/8AAQ").ok());
  EXPECT_FALSE(Base64Decode("-/8AAQ", Base64Alphabet::kEither).ok());  // mixed alphabets
}

TEST(DigestTest, AlgorithmsByName) {
  EXPECT_EQ(Hash(*ParseHashAlgorithm("sha256"), "abc"),
            *HexDecode("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  EXPECT_EQ(Sha384("").size(), 48u);
  EXPECT_EQ(Sha512("").size(), 64u);
  EXPECT_EQ(HashSize(HashAlgorithm::kSha384), 48u);
  EXPECT_EQ(HashAlgorithmName(HashAlgorithm::kSha512), "sha512");
  EXPECT_THAT(ParseHashAlgorithm("md5").status().message(), HasSubstr("md5"));
  EXPECT_TRUE(SecureEquals("ab", "ab"));
  EXPECT_FALSE(SecureEquals("ab", "abc"));
  EXPECT_EQ(RandomBytes(24)->size(), 24u);
}

TEST(InitDataTest, ParsesHashesAndConvertsTheDataTable) {
  const std::string doc =
      "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nkbs_url = \"http://127.0.0.1\"\n"
      "image_keys = [\"a/b/c\"]\nretries = 3\ndebug = false\n[data.nested]\nk = 1.5\n";
  absl::StatusOr<InitData> d = ParseInitData(doc);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->raw, doc);
  EXPECT_EQ(d->algorithm, HashAlgorithm::kSha256);
  EXPECT_EQ(d->digest, Sha256(doc));
  EXPECT_EQ(d->data["kbs_url"], "http://127.0.0.1");
  EXPECT_EQ(d->data["image_keys"], nlohmann::json::array({"a/b/c"}));
  EXPECT_EQ(d->data["retries"], 3);
  EXPECT_EQ(d->data["debug"], false);
  EXPECT_EQ(d->data["nested"]["k"], 1.5);
  EXPECT_EQ(ParseInitData("version = \"0.1.0\"\nalgorithm = \"sha512\"\n")->data,
            nlohmann::json::object());
}

TEST(InitDataTest, RefusesNamingTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"version = 1\nalgorithm = \"sha256\"\n", "version must be"},
      {"version = \"0.2.0\"\nalgorithm = \"sha256\"\n", "\"0.2.0\" is not supported"},
      {"version = \"0.1.0\"\nalgorithm = \"md5\"\n", "algorithm must be"},
      {"version = \"0.1.0\"\n", "algorithm must be"},
      {"version = \"0.1.0\"\nalgorithm = \"sha256\"\ndata = 3\n", "data must be a table"},
      {"version = \"0.1.0\"\nalgorithm = [\n", "not valid TOML"},
      {std::string(kMaxInitDataBytes + 1, '#'), "larger than"},
  };
  for (const auto& [doc, want] : cases) {
    absl::StatusOr<InitData> d = ParseInitData(doc);
    ASSERT_FALSE(d.ok()) << want;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(d.status().message(), HasSubstr("init-data")) << want;
    EXPECT_THAT(d.status().message(), HasSubstr(want)) << d.status();
  }
}

// Trustee fits the digest to the TEE field: zero-padded or truncated.
TEST(InitDataTest, FieldValuesPadOrTruncate) {
  const std::string d256(32, '\x11'), d384(48, '\x22');
  EXPECT_EQ(DigestForField(d256, 48), d256 + std::string(16, '\0'));
  EXPECT_EQ(DigestForField(d384, 32), std::string(32, '\x22'));
  EXPECT_EQ(DigestForField(d256, 32), d256);
  const std::string doc = "version = \"0.1.0\"\nalgorithm = \"sha384\"\n";
  EXPECT_EQ(*InitDataFieldValue(doc, kSnpHostDataSize), Sha384(doc).substr(0, 32));
  EXPECT_EQ(*InitDataFieldValue(doc, kTdxMrConfigIdSize), Sha384(doc));
  EXPECT_FALSE(InitDataFieldValue("version = 3", 32).ok());
}

TEST(SnpReportTest, ParsesThePublicMilanReport) {
  std::string hex = ReadTestdata("snp/report_milan.hex");
  hex.erase(std::remove_if(hex.begin(), hex.end(), [](char c) { return std::isspace(c); }),
            hex.end());
  absl::StatusOr<std::string> raw = HexDecode(hex);
  ASSERT_TRUE(raw.ok()) << raw.status();
  absl::StatusOr<SnpReport> r = ParseSnpReport(*raw);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->version, 2u);
  EXPECT_EQ(r->signature_algo, kSnpSignatureAlgoEcdsaP384);
  EXPECT_EQ(r->report_data, raw->substr(kSnpReportDataOffset, 64));
  EXPECT_EQ(r->host_data, raw->substr(kSnpHostDataOffset, 32));
  EXPECT_EQ(r->signed_bytes.size(), kSnpSignedSize);
  EXPECT_EQ(r->sig_r_be.size(), 48u);
  EXPECT_THAT(ParseSnpReport(raw->substr(1)).status().message(), HasSubstr("1184"));
  std::string v9 = *raw;
  v9[0] = 9;
  EXPECT_THAT(ParseSnpReport(v9).status().message(), HasSubstr("version 9"));
}

TEST(TdxQuoteTest, ParsesThePublicV5Quote) {
  const std::string raw = ReadTestdata("tdx/tdx_quote_5.dat");
  absl::StatusOr<TdxQuote> q = ParseTdxQuote(raw);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->version, 5);
  EXPECT_EQ(q->tee_type, kTdxTeeType);
  EXPECT_EQ(q->mrconfigid.size(), kTdxMrConfigIdSize);
  EXPECT_EQ(q->report_data.size(), 64u);
  EXPECT_FALSE(ParseTdxQuote(raw.substr(0, 600)).ok());
  std::string sgx = raw;
  sgx[4] = 0;
  EXPECT_THAT(ParseTdxQuote(sgx).status().message(), HasSubstr("not TDX"));
}

// A TDX quote built here: header, (v5: body type and size,) body with
// recognisable MRSEAM / attributes / XFAM, the declared signature data
// length, `sig` and `trailing` padding.
std::string BuildTdxQuote(uint16_t version, uint16_t body_type, const std::string& sig,
                          size_t trailing, int64_t declared_len = -1) {
  auto le = [](uint64_t v, size_t n) {
    std::string out(n, '\0');
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(v >> (8 * i));
    return out;
  };
  std::string q = le(version, 2) + le(2, 2) + le(kTdxTeeType, 4) + std::string(40, 'h');
  const size_t body_size = body_type == 3 ? kTdxBody15Size : kTdxBody10Size;
  if (version == 5) q += le(body_type, 2) + le(body_size, 4);
  std::string body(body_size, '\0');
  body.replace(16, 48, std::string(48, '\x5e'));  // MRSEAM
  body.replace(120, 8, le(0x10000000, 8));        // TD attributes (SEPT_VE_DISABLE)
  body.replace(128, 8, le(0x61ae7, 8));           // XFAM
  body.replace(kTdxReportDataOffset, 64, std::string(64, 'r'));
  q += body;
  q += le(declared_len < 0 ? sig.size() : static_cast<uint64_t>(declared_len), 4);
  q += sig + std::string(trailing, '\0');
  return q;
}

TEST(TdxQuoteTest, ParsedByDeclaredLengths) {
  const std::string sig = std::string(64, 's') + "certification data";
  for (const auto& [version, body_type] :
       std::vector<std::pair<uint16_t, uint16_t>>{{4, 2}, {5, 2}, {5, 3}}) {
    SCOPED_TRACE(absl::StrCat("v", version, " body ", body_type));
    // Exact, and in a fixed-size buffer with zeros after the signature data.
    for (size_t trailing : {size_t{0}, size_t{1}, size_t{4096}}) {
      absl::StatusOr<TdxQuote> q = ParseTdxQuote(BuildTdxQuote(version, body_type, sig, trailing));
      ASSERT_TRUE(q.ok()) << q.status();
      EXPECT_EQ(q->version, version);
      EXPECT_EQ(q->body_type, body_type);
      EXPECT_EQ(q->signature_data, sig);
      EXPECT_EQ(q->trailing_bytes, trailing);
      EXPECT_EQ(q->mrseam, std::string(48, '\x5e'));
      EXPECT_EQ(q->td_attributes, 0x10000000u);
      EXPECT_EQ(q->xfam, 0x61ae7u);
      EXPECT_EQ(q->report_data, std::string(64, 'r'));
    }
    // A declared length that overruns the data is refused.
    absl::StatusOr<TdxQuote> over =
        ParseTdxQuote(BuildTdxQuote(version, body_type, sig, 0, sig.size() + 1));
    ASSERT_FALSE(over.ok());
    EXPECT_THAT(over.status().message(), HasSubstr("overruns"));
    EXPECT_FALSE(
        ParseTdxQuote(BuildTdxQuote(version, body_type, sig, 0, 0xffffffffLL)).ok());
  }
  // The public v5 quote in a larger buffer still parses, to the same bytes.
  const std::string raw = ReadTestdata("tdx/tdx_quote_5.dat");
  absl::StatusOr<TdxQuote> exact = ParseTdxQuote(raw);
  absl::StatusOr<TdxQuote> padded = ParseTdxQuote(raw + std::string(8192 - raw.size() % 8192, '\0'));
  ASSERT_TRUE(exact.ok() && padded.ok()) << padded.status();
  EXPECT_EQ(exact->signature_data, padded->signature_data);
  EXPECT_EQ(exact->trailing_bytes, 0u);
}

}  // namespace
}  // namespace cloak::tee

namespace cloak::tee {
namespace {

TEST(ResourcePathTest, ThreeSafeParts) {
  absl::StatusOr<ResourcePath> p = ParseResourcePath("default/key/image-1.v2_x");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->repo, "default");
  EXPECT_EQ(p->tag, "image-1.v2_x");
  EXPECT_EQ(p->ToString(), "default/key/image-1.v2_x");
  for (const char* bad :
       {"a/b", "a/b/c/d", "../b/c", "a/./c", "a//c", "a/b/c d", "a/b/\xc3\xa9", ""}) {
    EXPECT_EQ(ParseResourcePath(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ParseResourcePath("a/b/" + std::string(129, 'x')).ok());
}

}  // namespace
}  // namespace cloak::tee
