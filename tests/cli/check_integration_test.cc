// The `cloak` binary on this machine: `check` must say what the shim will
// do here, and `containerd-config` edits a real file in place.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/process.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/util/host.h"
#include "tests/util/skip.h"

#ifndef CLOAK_CLI_BINARY
#error "CLOAK_CLI_BINARY must be defined"
#endif

namespace cloak::cli {
namespace {

using ::cloak::testutil::Exists;
using ::cloak::testutil::Slurp;
using ::testing::HasSubstr;

struct Result {
  int code = -1;
  std::string out, err;
};

Result Cloak(const TempDir& dir, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {CLOAK_CLI_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions o;
  o.stdout_path = dir.Join("out");
  o.stderr_path = dir.Join("err");
  std::filesystem::remove(o.stdout_path);
  std::filesystem::remove(o.stderr_path);
  Result r;
  auto p = Subprocess::Spawn(argv, o);
  if (!p.ok()) return r;
  auto exit = p->Wait(absl::Seconds(60));
  if (exit.ok()) r.code = exit->exit_code;
  r.out = Slurp(o.stdout_path);
  r.err = Slurp(o.stderr_path);
  return r;
}

class CloakBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-cli-it-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
  }
  std::optional<TempDir> dir_;
};

TEST_F(CloakBinaryTest, CheckSaysWhatThisMachineCanRun) {
  if (testutil::Which("qemu-system-x86_64").empty()) CLOAK_SKIP() << "QEMU is not installed";
  Result r = Cloak(*dir_, {"check", "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  std::cerr << r.out << "\n";

  const nlohmann::json& host = j["host"];
  if (!Exists("/dev/kvm")) {
    // Some development machines are kvm_pvm guests without a /dev/kvm.
    EXPECT_EQ(host["kvm"]["state"], "absent");
  } else if (Exists("/sys/module/kvm_pvm")) {
    // The development machines: /dev/kvm is kvm_pvm.
    EXPECT_EQ(host["kvm"]["state"], "pvm");
    EXPECT_THAT(host["kvm"]["detail"].get<std::string>(), HasSubstr("kvm_pvm"));
    EXPECT_THAT(host["kvm"]["detail"].get<std::string>(), HasSubstr("using TCG"));
  }
  if (!Exists("/sys/module/kvm_amd/parameters/sev_snp")) {
    EXPECT_EQ(host["sev-snp"]["state"], "no");
  }
  if (!Exists("/sys/module/kvm_intel/parameters/tdx")) {
    EXPECT_EQ(host["tdx"]["state"], "no");
  }
  EXPECT_EQ(host["vhost-vsock"]["state"], Exists("/dev/vhost-vsock") ? "yes" : "no");
  // The libvirt driver's daemon: reachable (its version) or not (why).
  ASSERT_TRUE(host.contains("libvirt")) << host.dump();
  if (host["libvirt"]["state"] != "unreachable") {
    EXPECT_THAT(host["libvirt"]["detail"].get<std::string>(), HasSubstr("launch security: "));
    EXPECT_THAT(host["libvirt"]["detail"].get<std::string>(), HasSubstr("cloak-snp through libvirt"));
  }
  ASSERT_EQ(j["runtime_classes"].size(), 3u);
  for (const nlohmann::json& v : j["runtime_classes"]) {
    EXPECT_FALSE(v["reason"].get<std::string>().empty());
    if (v["name"] == "cloak-dev") {
      EXPECT_EQ(v["usable"], true) << v.dump();
    }
    // QEMU 7.2 here: neither TEE object.
    if (v["name"] != "cloak-dev" && Exists("/sys/module/kvm_pvm")) {
      EXPECT_EQ(v["usable"], false) << v.dump();
      EXPECT_THAT(v["reason"].get<std::string>(), HasSubstr("kvm_pvm"));
    }
  }
  EXPECT_EQ(j["node_labels"]["cloak.io/runtime-cloak-dev"], "true");

  Result text = Cloak(*dir_, {"check"});
  EXPECT_EQ(text.code, 0);
  EXPECT_THAT(text.out, HasSubstr("RuntimeClass"));
  EXPECT_THAT(text.out, HasSubstr("cloak-dev    yes"));
}

TEST_F(CloakBinaryTest, ContainerdConfigEditsAFileAndTakesItBack) {
  const std::string config = dir_->Join("config.toml");
  const std::string original =
      "# the distribution's file\nversion = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n"
      "  sandbox_image = \"pause:1\"\n";
  std::ofstream(config) << original;
  ::chmod(config.c_str(), 0600);

  Result dry = Cloak(*dir_, {"containerd-config", "--config", config, "--containerd-version",
                             "1.6", "--dry-run"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_THAT(dry.out, HasSubstr("runtimes.cloak-dev]"));
  EXPECT_EQ(Slurp(config), original) << "--dry-run writes nothing";

  Result add = Cloak(*dir_, {"containerd-config", "--config", config, "--containerd-version",
                             "1.6", "--handlers", "cloak-dev"});
  ASSERT_EQ(add.code, 0) << add.err;
  const std::string added = Slurp(config);
  EXPECT_THAT(added, HasSubstr("runtimes.cloak-dev]"));
  EXPECT_THAT(added, ::testing::Not(HasSubstr("cloak-snp")));
  struct stat st {};
  ASSERT_EQ(::stat(config.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the file keeps its mode";

  Result again = Cloak(*dir_, {"containerd-config", "--config", config, "--containerd-version",
                               "1.6", "--handlers", "cloak-dev"});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_THAT(again.err, HasSubstr("already up to date"));
  EXPECT_EQ(Slurp(config), added);

  Result remove = Cloak(*dir_, {"containerd-config", "--config", config, "--remove"});
  ASSERT_EQ(remove.code, 0) << remove.err;
  EXPECT_THAT(Slurp(config), ::testing::Not(HasSubstr("cloak")));
  EXPECT_THAT(Slurp(config), HasSubstr("sandbox_image = \"pause:1\""));

  Result bad = Cloak(*dir_, {"containerd-config", "--config", config, "--containerd-version",
                             "0.9"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(bad.err, HasSubstr("1.6 or later"));
  Result usage = Cloak(*dir_, {"containerd-config"});
  EXPECT_EQ(usage.code, 2);
}

}  // namespace
}  // namespace cloak::cli
