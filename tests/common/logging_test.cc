#include "common/logging.h"

#include <fstream>
#include <sstream>

#include "common/temp_dir.h"
#include "gtest/gtest.h"

namespace cloak {
namespace {

TEST(Logging, NamedLoggersWriteToConfiguredFile) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir.ok());
  LogOptions o;
  o.file = dir->Join("log");
  o.level = "debug";
  o.component = "cloak-test";
  ASSERT_TRUE(InitLogging(o).ok());
  Logger("ttrpc")->debug("hello {}", 1);
  Logger("ttrpc")->trace("hidden");
  std::ifstream in(o.file);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find("cloak-test [ttrpc] hello 1"), std::string::npos) << ss.str();
  EXPECT_EQ(ss.str().find("hidden"), std::string::npos);
  ASSERT_TRUE(InitLogging(LogOptions{}).ok());
}

TEST(Logging, UnknownLevelIsInvalid) {
  LogOptions o;
  o.level = "loud";
  absl::Status s = InitLogging(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("loud"), std::string::npos);
}

}  // namespace
}  // namespace cloak
