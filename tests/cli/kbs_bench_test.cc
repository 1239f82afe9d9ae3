// `cloak kbs-bench`'s statistics and report. The flows against a real
// cloak-kbs are in kbs_bench_integration_test.cc.
#include "cli/cloak/kbs_bench.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace cloak::cli {
namespace {

using ::testing::HasSubstr;

std::vector<absl::Duration> Ms(std::initializer_list<int> ms) {
  std::vector<absl::Duration> out;
  for (int m : ms) out.push_back(absl::Milliseconds(m));
  return out;
}

TEST(KbsBenchTest, NearestRankPercentiles) {
  std::vector<absl::Duration> hundred;
  for (int i = 100; i >= 1; --i) hundred.push_back(absl::Milliseconds(i));  // unsorted
  EXPECT_EQ(Percentile(hundred, 50), absl::Milliseconds(50));
  EXPECT_EQ(Percentile(hundred, 99), absl::Milliseconds(99));
  EXPECT_EQ(Percentile(hundred, 100), absl::Milliseconds(100));
  EXPECT_EQ(Percentile(Ms({7}), 99), absl::Milliseconds(7));
  EXPECT_EQ(Percentile(Ms({3, 1, 2}), 50), absl::Milliseconds(2));
  // p99 of ten samples is the largest: one slow flow shows.
  EXPECT_EQ(Percentile(Ms({1, 1, 1, 1, 1, 1, 1, 1, 1, 40}), 99), absl::Milliseconds(40));
  EXPECT_EQ(Percentile({}, 50), absl::ZeroDuration());
}

TEST(KbsBenchTest, SummaryHasMedianP99MinMax) {
  LatencySummary s = Summarize(Ms({5, 1, 9, 3, 7}));
  EXPECT_EQ(s.count, 5u);
  EXPECT_EQ(s.median, absl::Milliseconds(5));
  EXPECT_EQ(s.p99, absl::Milliseconds(9));
  EXPECT_EQ(s.min, absl::Milliseconds(1));
  EXPECT_EQ(s.max, absl::Milliseconds(9));
  EXPECT_EQ(Summarize({}).count, 0u);
}

TEST(KbsBenchTest, ReportShowsFiguresAndTheFirstFailure) {
  KbsBenchResult r;
  r.concurrency = 4;
  r.wall = absl::Seconds(2);
  r.flow = Summarize(Ms({4, 6, 8, 10}));
  r.auth = Summarize(Ms({1, 1, 2, 2}));
  std::string text = KbsBenchReportText(r);
  EXPECT_THAT(text, HasSubstr("4 flows (auth + attest + resource), 4 at once: 2.0 flows/s, 0 failed"));
  EXPECT_THAT(text, HasSubstr("median    6.00 ms  p99   10.00 ms"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("first failure")));
  r.failures = 2;
  r.first_failure = "KBS refused the evidence";
  EXPECT_THAT(KbsBenchReportText(r), HasSubstr("first failure: KBS refused the evidence"));
  nlohmann::json j = KbsBenchReportJson(r);
  EXPECT_DOUBLE_EQ(j["flow"]["median_ms"].get<double>(), 6.0);
  EXPECT_DOUBLE_EQ(j["flow"]["p99_ms"].get<double>(), 10.0);
  EXPECT_EQ(j["failures"], 2);
  EXPECT_EQ(j["first_failure"], "KBS refused the evidence");
}

}  // namespace
}  // namespace cloak::cli
