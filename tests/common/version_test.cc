// Every Cloak binary answers --version with the build's one version string
// (common/version.h): the CMake project version, plus the git commit when
// built from a checkout.
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "common/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#ifndef CLOAK_VERSION_BINARIES
#error "CLOAK_VERSION_BINARIES must list the binaries (:-separated paths)"
#endif
#ifndef CLOAK_PROJECT_VERSION
#error "CLOAK_PROJECT_VERSION must be the CMake project version"
#endif
#ifndef CLOAK_SOURCE_DIR
#error "CLOAK_SOURCE_DIR must name the source tree"
#endif

namespace cloak {
namespace {

std::string Slurp(const std::string& path) {
  std::string out;
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

TEST(VersionTest, StringIsTheProjectVersionWithTheCommit) {
  const std::string v = VersionString();
  ASSERT_TRUE(absl::StartsWith(v, CLOAK_PROJECT_VERSION)) << v;
  const std::string rest = v.substr(std::string(CLOAK_PROJECT_VERSION).size());
  if (!std::filesystem::exists(std::string(CLOAK_SOURCE_DIR) + "/.git")) {
    EXPECT_EQ(rest, "") << "built outside a git checkout: the project version alone";
    return;
  }
  // Built from a checkout: "+git.<12 hex>[.dirty]".
  ASSERT_TRUE(absl::StartsWith(rest, "+git.")) << v;
  const std::string commit = rest.substr(5, 12);
  EXPECT_EQ(commit.size(), 12u) << v;
  EXPECT_EQ(commit.find_first_not_of("0123456789abcdef"), std::string::npos) << v;
  EXPECT_TRUE(rest.size() == 17 || rest.substr(17) == ".dirty") << v;
}

TEST(VersionTest, EveryBinaryAnswersVersion) {
  const std::vector<std::string> binaries =
      absl::StrSplit(CLOAK_VERSION_BINARIES, ':', absl::SkipEmpty());
  // cloak, cloak-kbs, cloak-snapshotter, cloak-cri, cloak-agent and the shim.
  ASSERT_EQ(binaries.size(), 6u) << CLOAK_VERSION_BINARIES;
  auto dir = TempDir::Create("cloak-version-", "/tmp");
  ASSERT_TRUE(dir.ok()) << dir.status();
  int n = 0;
  for (const std::string& binary : binaries) {
    SCOPED_TRACE(binary);
    const std::string out = dir->Join(absl::StrCat("out-", ++n));
    SpawnOptions o;
    o.stdout_path = o.stderr_path = out;
    auto p = Subprocess::Spawn({binary, "--version"}, o);
    ASSERT_TRUE(p.ok()) << p.status();
    auto exit = p->Wait(absl::Seconds(30));
    ASSERT_TRUE(exit.ok()) << exit.status();
    const std::string text = Slurp(out);
    EXPECT_EQ(exit->exit_code, 0) << text;
    EXPECT_THAT(text, ::testing::HasSubstr(VersionString()));
    // Exactly the one string: no other version-looking token.
    EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("0.0.0")));
  }
}

TEST(VersionTest, ShimAnswersHelp) {
  const std::vector<std::string> binaries =
      absl::StrSplit(CLOAK_VERSION_BINARIES, ':', absl::SkipEmpty());
  std::string shim;
  for (const std::string& b : binaries) {
    if (absl::EndsWith(b, "/containerd-shim-cloak-v2")) shim = b;
  }
  ASSERT_FALSE(shim.empty());
  auto dir = TempDir::Create("cloak-version-", "/tmp");
  ASSERT_TRUE(dir.ok()) << dir.status();
  for (const char* flag : {"-h", "--help"}) {
    SCOPED_TRACE(flag);
    const std::string out = dir->Join(absl::StrCat("help", flag));
    SpawnOptions o;
    o.stdout_path = o.stderr_path = out;
    auto p = Subprocess::Spawn({shim, flag}, o);
    ASSERT_TRUE(p.ok()) << p.status();
    auto exit = p->Wait(absl::Seconds(30));
    ASSERT_TRUE(exit.ok()) << exit.status();
    const std::string text = Slurp(out);
    EXPECT_EQ(exit->exit_code, 0) << text;
    EXPECT_THAT(text, ::testing::HasSubstr("Usage: containerd-shim-cloak-v2"));
    EXPECT_THAT(text, ::testing::HasSubstr("-address"));
  }
}

}  // namespace
}  // namespace cloak
