// The simulated SP's wire format: round trips and malformed input.
#include "common/tee/sp_protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/tee/snp_report.h"

namespace cloak::simsp {
namespace {

using ::testing::HasSubstr;

std::string Le32(uint32_t v) {
  std::string out;
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

std::string Header(absl::string_view magic, uint32_t status, uint32_t report, uint32_t vcek,
                   uint32_t message) {
  return std::string(magic) + Le32(status) + Le32(report) + Le32(vcek) + Le32(message);
}

TEST(ProtocolTest, RequestRoundTrip) {
  std::string rd(64, 'r');
  auto req = EncodeRequest(rd);
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->size(), kRequestSize);
  EXPECT_EQ(req->substr(0, 4), "CSQ1");
  auto back = DecodeRequest(*req);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, rd);
}

TEST(ProtocolTest, MalformedRequestsAreRefused) {
  EXPECT_THAT(EncodeRequest(std::string(63, 'x')).status().message(), HasSubstr("64 bytes"));
  EXPECT_THAT(EncodeRequest(std::string(65, 'x')).status().message(), HasSubstr("64 bytes"));
  std::string good = *EncodeRequest(std::string(64, 'r'));
  EXPECT_THAT(DecodeRequest("").status().message(), HasSubstr("bad magic"));
  EXPECT_THAT(DecodeRequest("CS").status().message(), HasSubstr("bad magic"));
  EXPECT_THAT(DecodeRequest("XXXX" + good.substr(4)).status().message(), HasSubstr("bad magic"));
  EXPECT_THAT(DecodeRequest(good.substr(0, 67)).status().message(), HasSubstr("68 bytes, got 67"));
  EXPECT_THAT(DecodeRequest(good + "x").status().message(), HasSubstr("68 bytes, got 69"));
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeRequest("CSQ1").status()));
}

TEST(ProtocolTest, ResponseRoundTrip) {
  SpResponse ok{.status = SpStatus::kOk,
                .report = std::string(tee::kSnpReportSize, 'R'),
                .vcek_der = "vcek-der",
                .message = ""};
  auto bytes = EncodeResponse(ok);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(bytes->size(), kResponseHeaderSize + tee::kSnpReportSize + 8);
  EXPECT_EQ(*ResponseBodySize(*bytes), tee::kSnpReportSize + 8);
  auto back = DecodeResponse(*bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->status, SpStatus::kOk);
  EXPECT_EQ(back->report, ok.report);
  EXPECT_EQ(back->vcek_der, "vcek-der");
  EXPECT_EQ(back->message, "");

  SpResponse err{.status = SpStatus::kBadRequest, .report = "", .vcek_der = "", .message = "nope"};
  back = DecodeResponse(*EncodeResponse(err));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->status, SpStatus::kBadRequest);
  EXPECT_EQ(back->message, "nope");
}

TEST(ProtocolTest, InconsistentResponsesAreNotEncoded) {
  EXPECT_FALSE(EncodeResponse({.status = SpStatus::kOk, .report = "short", .vcek_der = "",
                               .message = ""})
                   .ok());
  EXPECT_FALSE(EncodeResponse({.status = SpStatus::kInternal,
                               .report = std::string(tee::kSnpReportSize, 'R'),
                               .vcek_der = "",
                               .message = ""})
                   .ok());
  EXPECT_FALSE(EncodeResponse({.status = SpStatus::kOk,
                               .report = std::string(tee::kSnpReportSize, 'R'),
                               .vcek_der = std::string(kMaxVcekSize + 1, 'v'),
                               .message = ""})
                   .ok());
  EXPECT_FALSE(EncodeResponse({.status = static_cast<SpStatus>(9), .report = "", .vcek_der = "",
                               .message = ""})
                   .ok());
  // An over-long message is clamped, not refused.
  auto clamped = EncodeResponse({.status = SpStatus::kInternal, .report = "", .vcek_der = "",
                                 .message = std::string(5000, 'm')});
  ASSERT_TRUE(clamped.ok());
  EXPECT_EQ(DecodeResponse(*clamped)->message.size(), kMaxMessageSize);
}

TEST(ProtocolTest, MalformedResponsesAreRefused) {
  struct Case {
    std::string bytes;
    std::string error;
  };
  std::string report(tee::kSnpReportSize, 'R');
  std::vector<Case> cases = {
      {"", "header must be 20 bytes"},
      {"CSR1", "header must be 20 bytes"},
      {Header("CSQ1", 0, tee::kSnpReportSize, 0, 0) + report, "bad magic"},
      {Header("CSR1", 7, 0, 0, 0), "unknown status 7"},
      {Header("CSR1", 0, 100, 0, 0) + std::string(100, 'R'), "OK with a report of 100 bytes"},
      {Header("CSR1", 0, 0, 0, 0), "OK with a report of 0 bytes"},
      {Header("CSR1", 1, tee::kSnpReportSize, 0, 0) + report, "error status with a report"},
      {Header("CSR1", 2, 0, 3, 0) + "abc", "error status with a report or VCEK"},
      {Header("CSR1", 0, tee::kSnpReportSize, 0xFFFFFFFF, 0) + report, "longer than allowed"},
      {Header("CSR1", 1, 0, 0, 0xFFFFFFFF), "longer than allowed"},
      {Header("CSR1", 0, tee::kSnpReportSize, 4, 0) + report + "abc",
       "announces 1208 bytes, got 1207"},
      {Header("CSR1", 0, tee::kSnpReportSize, 0, 0) + report + "x",
       "announces 1204 bytes, got 1205"},
  };
  for (const Case& c : cases) {
    auto r = DecodeResponse(c.bytes);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << c.error << ": " << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(c.error));
  }
}

TEST(ProtocolTest, EveryTruncationOfAValidResponseIsRefused) {
  std::string bytes = *EncodeResponse({.status = SpStatus::kOk,
                                       .report = std::string(tee::kSnpReportSize, 'R'),
                                       .vcek_der = "0123456789",
                                       .message = "hi"});
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeResponse(bytes.substr(0, n)).ok()) << n;
  }
  EXPECT_TRUE(DecodeResponse(bytes).ok());
}

}  // namespace
}  // namespace cloak::simsp
