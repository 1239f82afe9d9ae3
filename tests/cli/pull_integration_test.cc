// `cloak pull` against Debian's docker-registry on 127.0.0.1: an image
// encrypted by skopeo (JWE, ocicrypt) with a marker file is pulled,
// decrypted and unpacked by the binary, and its files compared with the
// originals; without the key, or with another key, the pull fails and says
// why.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/util/host.h"
#include "tests/util/registry.h"
#include "tests/util/skip.h"

#ifndef CLOAK_CLI_BINARY
#error "CLOAK_CLI_BINARY must be defined"
#endif
#ifndef CLOAK_SOURCE_DIR
#error "CLOAK_SOURCE_DIR must be defined"
#endif

namespace cloak::cli {
namespace {

namespace fs = std::filesystem;
using ::cloak::testutil::RunCommand;
using ::cloak::testutil::Slurp;
using ::testing::HasSubstr;

class PullIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"docker-registry", "skopeo", "busybox", "openssl"}) {
      if (testutil::Which(tool).empty()) {
        CLOAK_SKIP() << tool << " is not installed (scripts/install-deps)";
      }
    }
    auto dir = TempDir::Create("cloak-pull-it-", "/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    d_ = dir_->path().string();
    int port = testutil::FreePort();
    auto registry = testutil::StartLocalRegistry(d_, port);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_.emplace(std::move(*registry));
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!testutil::CanConnect(port)) {
      ASSERT_LT(absl::Now(), deadline) << "docker-registry did not listen: "
                                       << Slurp(d_ + "/registry.log");
      absl::SleepFor(absl::Milliseconds(50));
    }
    ref_ = absl::StrCat("127.0.0.1:", port, "/cloak/pull:enc");
    marker_ = testutil::RandomMarker("pull-marker-");
    Ok({"sh", "-c", "printf %s " + marker_ + " > " + d_ + "/marker"});
    for (const char* name : {"k", "other"}) {
      Ok({"openssl", "genrsa", "-out", absl::StrCat(d_, "/", name, ".pem"), "2048"});
    }
    Ok({"openssl", "rsa", "-in", d_ + "/k.pem", "-pubout", "-out", d_ + "/pub.pem"});
    Ok({std::string(CLOAK_SOURCE_DIR) + "/scripts/make-busybox-image", d_ + "/oci", "t",
        d_ + "/marker"});
    Ok({"skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
        "--encryption-key", "jwe:" + d_ + "/pub.pem", "oci:" + d_ + "/oci:t", "docker://" + ref_});
  }

  void TearDown() override {
    if (registry_.has_value()) registry_->Stop(absl::Seconds(5));
  }

  void Ok(const std::vector<std::string>& argv) {
    testutil::CommandResult r = RunCommand(argv);
    ASSERT_EQ(r.exit_code, 0) << argv[0] << ": " << r.output;
  }

  testutil::CommandResult Pull(std::vector<std::string> args) {
    args.insert(args.begin(), {CLOAK_CLI_BINARY, "pull", "--plain-http"});
    return RunCommand(args);
  }

  std::optional<TempDir> dir_;
  std::string d_;
  std::optional<Subprocess> registry_;
  std::string ref_;
  std::string marker_;
};

TEST_F(PullIntegrationTest, DecryptsAndUnpacksWithTheKey) {
  testutil::CommandResult r =
      Pull({"--decryption-key", d_ + "/other.pem", "--decryption-key", d_ + "/k.pem", "--json",
            ref_, d_ + "/out"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string rootfs = d_ + "/out/rootfs";
  EXPECT_EQ(Slurp(rootfs + "/marker"), marker_);
  const std::string busybox = Slurp(testutil::Which("busybox"));
  ASSERT_FALSE(busybox.empty());
  EXPECT_EQ(Slurp(rootfs + "/bin/busybox"), busybox);
  EXPECT_TRUE(fs::is_symlink(rootfs + "/bin/sh"));
  nlohmann::json config = nlohmann::json::parse(Slurp(d_ + "/out/image-config.json"), nullptr, false);
  ASSERT_TRUE(config.is_object());
  EXPECT_EQ(config["config"]["Cmd"][0], "/bin/sh");
  // The report: every step timed, the staging directory gone.
  nlohmann::json report = nlohmann::json::parse(r.output.substr(r.output.find('{')), nullptr, false);
  ASSERT_TRUE(report.is_object()) << r.output;
  std::vector<std::string> steps;
  for (const nlohmann::json& s : report["steps"]) steps.push_back(s["step"]);
  EXPECT_THAT(steps, ::testing::IsSupersetOf({"resolve", "config", "fetch layer 1/1",
                                              "decrypt layer 1/1", "unpack layer 1/1"}));
  EXPECT_GT(report["bytes_downloaded"].get<int64_t>(), 100000);
  for (const auto& e : fs::directory_iterator(d_ + "/out")) {
    EXPECT_THAT(e.path().filename().string(), ::testing::AnyOf("rootfs", "image-config.json"));
  }

  // Again into the same directory: refused before anything is fetched.
  testutil::CommandResult again = Pull({"--decryption-key", d_ + "/k.pem", ref_, d_ + "/out"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.output, HasSubstr("is not empty"));
}

TEST_F(PullIntegrationTest, WithoutTheKeyTheLayerStaysClosedAndItSaysWhy) {
  testutil::CommandResult none = Pull({ref_, d_ + "/none"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.output, HasSubstr("no --decryption-key"));
  EXPECT_THAT(testutil::FilesHoldingMarker(marker_, {d_ + "/none"}), "");

  testutil::CommandResult wrong = Pull({"--decryption-key", d_ + "/other.pem", ref_, d_ + "/wrong"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.output, HasSubstr("layer"));
  EXPECT_THAT(wrong.output, HasSubstr("remove it before pulling again"));
  EXPECT_THAT(testutil::FilesHoldingMarker(marker_, {d_ + "/wrong"}), "");

  testutil::CommandResult not_a_key =
      Pull({"--decryption-key", d_ + "/pub.pem", ref_, d_ + "/pub"});
  EXPECT_EQ(not_a_key.exit_code, 1);
  EXPECT_THAT(not_a_key.output, HasSubstr("holds no usable private key"));
}

}  // namespace
}  // namespace cloak::cli
