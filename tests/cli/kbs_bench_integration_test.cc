// `cloak kbs-bench` against the real cloak-kbs on 127.0.0.1: flows whose
// sample evidence carries the init-data the key-release policy pins are all
// served, concurrent ones too; with an init-data the policy does not pin,
// the first flow fails with the key broker's reason.
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/util/host.h"
#include "tests/util/kbs.h"
#include "tests/util/skip.h"

#ifndef CLOAK_CLI_BINARY
#error "CLOAK_CLI_BINARY must be defined"
#endif
#ifndef CLOAK_KBS_BINARY
#error "CLOAK_KBS_BINARY must be defined"
#endif

namespace cloak::cli {
namespace {

using ::cloak::testutil::RunCommand;
using ::testing::HasSubstr;

class KbsBenchIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-kbs-bench-it-", "/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    d_ = dir_->path().string();
    const std::string state = d_ + "/state";
    Write("secret", "the resource");
    Ok({CLOAK_KBS_BINARY, "admin", "put-resource", "--state-dir", state, kResource, "--file",
        d_ + "/secret"});
    auto kbs = testutil::StartDevKbs(CLOAK_KBS_BINARY, state, d_);
    ASSERT_TRUE(kbs.ok()) << kbs.status();
    kbs_.emplace(std::move(*kbs));
    url_ = "http://127.0.0.1:" + kbs_->port;
    pinned_ = absl::StrCat("version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\nkbs_url = \"",
                           url_, "\"\n");
    Write("pinned.toml", pinned_);
    Write("other.toml", pinned_ + "image_keys = []\n");
    Write("policy.json", absl::StrCat(R"({"allowed_tees": ["sample"], "init_data_digests": [")",
                                      testutil::Sha384Hex(pinned_), R"("]})"));
    Ok({CLOAK_KBS_BINARY, "admin", "set-policy", "--state-dir", state, kResource, "--file",
        d_ + "/policy.json"});
  }

  void TearDown() override {
    if (kbs_.has_value()) kbs_->process.Stop(absl::Seconds(5));
  }

  void Write(const std::string& name, const std::string& text) {
    std::ofstream(d_ + "/" + name, std::ios::binary) << text;
  }

  void Ok(const std::vector<std::string>& argv) {
    testutil::CommandResult r = RunCommand(argv);
    ASSERT_EQ(r.exit_code, 0) << argv[0] << ": " << r.output;
  }

  testutil::CommandResult Bench(const std::string& initdata, const std::string& requests,
                                const std::string& concurrency) {
    return RunCommand({CLOAK_CLI_BINARY, "kbs-bench", "--url", url_, "--resource", kResource,
                       "--initdata", d_ + "/" + initdata, "-n", requests, "-c", concurrency,
                       "--json"});
  }

  static constexpr char kResource[] = "default/key/bench";
  std::optional<TempDir> dir_;
  std::string d_;
  std::optional<testutil::DevKbs> kbs_;
  std::string url_;
  std::string pinned_;
};

TEST_F(KbsBenchIntegrationTest, EveryFlowIsServedOneAtATimeAndConcurrently) {
  for (const char* concurrency : {"1", "3"}) {
    testutil::CommandResult r = Bench("pinned.toml", "12", concurrency);
    ASSERT_EQ(r.exit_code, 0) << r.output << "\n" << testutil::Slurp(d_ + "/kbs.log");
    nlohmann::json j = nlohmann::json::parse(r.output, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.output;
    EXPECT_EQ(j["failures"], 0);
    EXPECT_EQ(j["concurrency"], std::stoi(concurrency));
    EXPECT_EQ(j["flow"]["count"], 12);
    EXPECT_GT(j["flow"]["median_ms"].get<double>(), 0.0);
    EXPECT_GE(j["flow"]["p99_ms"].get<double>(), j["flow"]["median_ms"].get<double>());
    EXPECT_GT(j["auth"]["median_ms"].get<double>(), 0.0);
    EXPECT_GT(j["attest"]["median_ms"].get<double>(), 0.0);
  }
  // 2 × (12 + the first, untimed flow) resources released.
  std::string log = testutil::Slurp(d_ + "/kbs.log");
  size_t released = 0;
  for (size_t at = 0; (at = log.find("step=resource path=default/key/bench tee=sample status=200",
                                     at)) != std::string::npos;
       ++at) {
    ++released;
  }
  EXPECT_EQ(released, 26u) << log;
}

TEST_F(KbsBenchIntegrationTest, AnUnpinnedInitDataIsRefusedWithTheKbsReason) {
  testutil::CommandResult r = Bench("other.toml", "5", "1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("the first flow against " + url_));
  // The key broker's reason, with the digest it refused.
  EXPECT_THAT(r.output, HasSubstr("init-data digest"));
  EXPECT_THAT(r.output, HasSubstr("matches none"));

  testutil::CommandResult bad = RunCommand({CLOAK_CLI_BINARY, "kbs-bench", "--url", url_,
                                            "--resource", kResource, "-c", "0"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output, HasSubstr("--concurrency 0"));
}

}  // namespace
}  // namespace cloak::cli
