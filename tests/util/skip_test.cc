// CLOAK_SKIP() fails under CI=true; CLOAK_SKIP_ALLOWED_ON_CI() only skips
// there for the tests docs/development.md lists.
#include "tests/util/skip.h"

#include <cstdlib>

#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace cloak::testutil {
namespace {

void SkipForMissingTool() { CLOAK_SKIP() << "frobnicate is not installed"; }
void SkipAsAllowedOnCi() { CLOAK_SKIP_ALLOWED_ON_CI() << "no such device here"; }

class CiEnv {
 public:
  explicit CiEnv(const char* value) {
    if (const char* old = std::getenv("CI")) old_ = old, had_ = true;
    if (value) ::setenv("CI", value, 1); else ::unsetenv("CI");
  }
  ~CiEnv() {
    if (had_) ::setenv("CI", old_.c_str(), 1); else ::unsetenv("CI");
  }

 private:
  std::string old_;
  bool had_ = false;
};

TEST(CiSkipTest, ASkipFailsUnderCi) {
  CiEnv ci("true");
  EXPECT_FATAL_FAILURE(SkipForMissingTool(), "must not happen on the CI machine");
  EXPECT_FATAL_FAILURE(SkipForMissingTool(), "frobnicate is not installed");
  // Not a listed test: the "allowed" form fails too.
  EXPECT_FATAL_FAILURE(SkipAsAllowedOnCi(), "no such device here");
}

TEST(CiSkipTest, OutsideCiItIsASkip) {
  CiEnv ci(nullptr);
  EXPECT_EQ(SkipResult(false), ::testing::TestPartResult::kSkip);
  CiEnv other("false");
  EXPECT_EQ(SkipResult(false), ::testing::TestPartResult::kSkip);
}

TEST(CiSkipTest, OnlyTheDocumentedTestsMaySkipOnCi) {
  CiEnv ci("true");
  EXPECT_FALSE(SkipAllowedOnCi());
  EXPECT_EQ(SkipResult(SkipAllowedOnCi()), ::testing::TestPartResult::kFatalFailure);
  EXPECT_EQ(SkipResult(true), ::testing::TestPartResult::kSkip);
  EXPECT_EQ(std::size(kSkipsAllowedOnCi), 3u);
}

}  // namespace
}  // namespace cloak::testutil
