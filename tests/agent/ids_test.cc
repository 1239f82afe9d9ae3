// agent/ids: container, exec and sandbox ids and hostnames.
#include "agent/ids.h"

#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

TEST(IdsTest, AcceptsAndRefuses) {
  for (const char* ok : {"a", "abc123", "a.b-c_d", "pod-1.container_2", "X9"}) {
    EXPECT_TRUE(ValidateId("id", ok).ok()) << ok;
  }
  for (const char* bad : {"", ".", "..", "../etc", "a/b", "-a", "a-", "a..b", "a b", "a\nb",
                          "a--b", "_x", "ä"}) {
    EXPECT_EQ(ValidateId("id", bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(ValidateId("id", std::string(76, 'a')).ok());
  EXPECT_FALSE(ValidateId("id", std::string(77, 'a')).ok());
}

TEST(IdsTest, Hostname) {
  EXPECT_TRUE(ValidateHostname("pod-1.example").ok());
  EXPECT_FALSE(ValidateHostname("").ok());
  EXPECT_FALSE(ValidateHostname("-x").ok());
  EXPECT_FALSE(ValidateHostname("a..b").ok());
  EXPECT_FALSE(ValidateHostname("a_b").ok());
  EXPECT_FALSE(ValidateHostname(std::string(65, 'a')).ok());
}

}  // namespace
}  // namespace cloak::agent
