// agent/image_process: the image config applied to a sanitized process.
#include "agent/image_process.h"

#include <filesystem>
#include <fstream>

#include "agent/spec_builder.h"
#include "common/temp_dir.h"
#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

using nlohmann::json;

void WriteFile(const std::filesystem::path& p, const std::string& content) {
  std::ofstream(p) << content;
}

TEST(ImageProcessTest, AppliesImageConfig) {
  absl::StatusOr<TempDir> dir = TempDir::Create("rootfs-");
  ASSERT_TRUE(dir.ok());
  std::filesystem::create_directories(dir->path() / "etc");
  WriteFile(dir->path() / "etc" / "passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n");
  WriteFile(dir->path() / "etc" / "group", "app:x:1000:\nextra:x:2000:app\n");
  const std::string config = R"({"config":{"Entrypoint":["/entry"],"Cmd":["--flag"],
      "Env":["PATH=/usr/bin","IMG=1"],"WorkingDir":"/app","User":"app"}})";
  SpecOptions o;
  o.allow_empty_args = true;
  json process = *SanitizeProcess(json::parse(R"({"env":["IMG=2","HOST=1"]})"), o);
  absl::Status s = ApplyImageConfigToProcess(config, dir->path().string(), &process);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(process["args"], json({"/entry", "--flag"}));
  EXPECT_EQ(process["env"], json({"PATH=/usr/bin", "IMG=2", "HOST=1"}));
  EXPECT_EQ(process["cwd"], "/app");
  EXPECT_EQ(process["user"]["uid"], 1000);
  EXPECT_EQ(process["user"]["gid"], 1000);
  EXPECT_EQ(process["user"]["additionalGids"], json({2000}));

  // The host's args are the command; a non-root host user wins.
  json host = *SanitizeProcess(
      json::parse(R"({"args":["/bin/sh"],"cwd":"/w","user":{"uid":5,"gid":6}})"), o);
  ASSERT_TRUE(ApplyImageConfigToProcess(config, dir->path().string(), &host).ok());
  EXPECT_EQ(host["args"], json({"/bin/sh"}));
  EXPECT_EQ(host["cwd"], "/w");
  EXPECT_EQ(host["user"]["uid"], 5);

  // No image config and no args: refused.
  json empty = *SanitizeProcess(json::object(), o);
  EXPECT_EQ(ApplyImageConfigToProcess("", "/", &empty).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cloak::agent
