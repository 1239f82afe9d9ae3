// The guest-image build's reference-values.json (docs/measurement.md,
// "Reference values from the build"): each value is what `cloak measure
// --config` prints for that runtime class over this build's image, the
// classes whose firmware the build machine lacks say so and how to compute
// them on the node, and `cloak-kbs admin import-reference-values` takes the
// file.
#include <algorithm>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/util/host.h"
#include "tests/util/skip.h"

namespace cloak {
namespace {

using ::testing::HasSubstr;
using testutil::RunCommand;

const std::string kDir = CLOAK_GUEST_IMAGE_DIR;

class ReferenceValuesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testutil::Exists(kDir + "/reference-values.json")) {
      CLOAK_SKIP() << "no " << kDir << "/reference-values.json (build the guest-image target)";
    }
    auto dir = TempDir::Create("cloak-rv-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    doc_ = nlohmann::json::parse(testutil::Slurp(kDir + "/reference-values.json"), nullptr, false);
    ASSERT_FALSE(doc_.is_discarded());
  }

  std::optional<TempDir> dir_;
  nlohmann::json doc_;
};

TEST_F(ReferenceValuesTest, DevClassValuesAreWhatCloakMeasurePrintsForTheClass) {
  const nlohmann::json& dev = doc_["classes"]["cloak-dev"];
  ASSERT_TRUE(dev.is_object()) << doc_.dump(2);
  EXPECT_EQ(dev["tee"], "snp");
  EXPECT_EQ(dev["simulated"], true);
  ASSERT_EQ(dev["variants"].size(), 2u);
  std::vector<std::string> seen;
  for (const char* channel : {"serial", "vsock"}) {
    SCOPED_TRACE(channel);
    // The installer's cloak-dev class with this channel, over this build's image.
    const std::string config = dir_->Join(absl::StrCat("cloak-dev-", channel, ".toml"));
    std::ofstream(config) << "[hypervisor]\nkernel = \"" << kDir << "/vmlinuz\"\ninitrd = \""
                          << kDir << "/initrd.img\"\n[tee]\ntype = \"none\"\n[agent]\nchannel = \""
                          << channel << "\"\n";
    testutil::CommandResult m =
        RunCommand({CLOAK_CLI_BINARY, "measure", "snp", "--config", config});
    ASSERT_EQ(m.exit_code, 0) << m.output;
    const std::string value(absl::StripAsciiWhitespace(m.output));
    ASSERT_EQ(value.size(), 96u) << m.output;
    bool found = false;
    for (const auto& v : dev["variants"]) {
      if (v["agent_channel"] == channel) {
        found = true;
        EXPECT_EQ(v["reference_values"]["measurement"][0], value);
        EXPECT_THAT(v["append"].get<std::string>(), HasSubstr("cloak.tee=none"));
      }
    }
    EXPECT_TRUE(found);
    const auto& list = dev["reference_values"]["measurement"];
    EXPECT_NE(std::find(list.begin(), list.end(), value), list.end());
    seen.push_back(value);
  }
  EXPECT_NE(seen[0], seen[1]) << "the channel is on the measured command line";
  // The image the values were computed over is this build's.
  testutil::CommandResult sha = RunCommand({"sha256sum", kDir + "/initrd.img"});
  ASSERT_EQ(sha.exit_code, 0);
  EXPECT_EQ(sha.output.substr(0, 64), doc_["guest_image"]["initrd_sha256"]);
}

TEST_F(ReferenceValuesTest, ClassesWithoutTheirFirmwareSayWhatIsMissing) {
  for (const char* name : {"cloak-snp", "cloak-tdx"}) {
    SCOPED_TRACE(name);
    const nlohmann::json& c = doc_["classes"][name];
    ASSERT_TRUE(c.is_object());
    if (!c.contains("missing")) continue;  // the build was given that firmware
    EXPECT_THAT(c["missing"].get<std::string>(), HasSubstr("hypervisor.firmware"));
    EXPECT_THAT(c["compute_on_node"].get<std::string>(), HasSubstr("cloak measure"));
    EXPECT_THAT(c["compute_on_node"].get<std::string>(), HasSubstr("--config"));
  }
}

TEST_F(ReferenceValuesTest, KbsImportsAClassByName) {
  const std::string state = dir_->Join("kbs");
  const std::string file = kDir + "/reference-values.json";
  testutil::CommandResult r =
      RunCommand({CLOAK_KBS_BINARY, "admin", "import-reference-values", "--state-dir", state,
                  "default/key/dev", "--file", file, "--class", "cloak-dev"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunCommand({CLOAK_KBS_BINARY, "admin", "show-policy", "--state-dir", state, "default/key/dev"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const auto& v : doc_["classes"]["cloak-dev"]["reference_values"]["measurement"]) {
    EXPECT_THAT(r.output, HasSubstr(v.get<std::string>()));
  }
  EXPECT_THAT(r.output, HasSubstr("\"allow_simulated\": true"));
  // The whole file is not taken blindly: the simulated dev value needs its
  // class named, a missing value is refused with its reason, and an
  // unknown class is named.
  r = RunCommand({CLOAK_KBS_BINARY, "admin", "import-reference-values", "--state-dir", state,
                  "default/key/all", "--file", file});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  if (doc_["classes"]["cloak-snp"].contains("missing")) {
    r = RunCommand({CLOAK_KBS_BINARY, "admin", "import-reference-values", "--state-dir", state,
                    "default/key/snp", "--file", file, "--class", "cloak-snp"});
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_THAT(r.output, HasSubstr("missing"));
  }
  r = RunCommand({CLOAK_KBS_BINARY, "admin", "import-reference-values", "--state-dir", state,
                  "default/key/x", "--file", file, "--class", "cloak-nope"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("cloak-dev"));
}

}  // namespace
}  // namespace cloak
