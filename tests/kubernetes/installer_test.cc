// kubernetes/installer/cloak-deploy.sh on this machine, against a scratch
// root (--root DIR --scratch; kubectl, and where said systemctl and ctr,
// faked on PATH):
//   - installing twice leaves the same files, byte for byte; uninstalling
//     puts back the original containerd config byte for byte and leaves no
//     file of ours; then a private containerd (CriEnv, tests/cri/cri_env.h)
//     started on the installed config runs a cloak-dev pod through CRI;
//   - containerd is restarted only when its config changes, and put back on
//     the original config when it does not answer.
// The payload is bundled as for the installer image (its own libraries, QEMU
// and firmware) where patchelf exists. Root only; skips, saying why, when a
// prerequisite is missing. Everything started is stopped by pid.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cri/cri_env.h"
#include "tests/util/host.h"

#ifndef CLOAK_BUILD_DIR
#error "CLOAK_BUILD_DIR must be defined"
#endif
#ifndef CLOAK_SOURCE_DIR
#error "CLOAK_SOURCE_DIR must be defined"
#endif

namespace cloak::kubernetes {
namespace {

namespace fs = std::filesystem;
using ::cloak::testutil::Exists;
using ::cloak::testutil::Slurp;
using ::cloak::testutil::Which;
using ::testing::HasSubstr;

const std::string kBuild = CLOAK_BUILD_DIR;
const std::string kSource = CLOAK_SOURCE_DIR;

// Every file and symlink under `root`: relative path -> mode, bytes or target.
std::map<std::string, std::string> Tree(const std::string& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string rel = e.path().lexically_relative(root).string();
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      out[rel] = "-> " + fs::read_symlink(e.path()).string();
    } else if (S_ISREG(st.st_mode)) {
      out[rel] = absl::StrCat(st.st_mode & 07777, " ", Slurp(e.path().string()));
    }
  }
  return out;
}

std::vector<std::string> Diff(const std::map<std::string, std::string>& a,
                              const std::map<std::string, std::string>& b) {
  std::vector<std::string> out;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) out.push_back("only before: " + k);
    else if (it->second != v) out.push_back("differs: " + k);
  }
  for (const auto& [k, v] : b) {
    if (!a.contains(k)) out.push_back("only after: " + k);
  }
  return out;
}

// A containerd config as a node has it before Cloak: comments, indentation
// and key order that a rewrite would lose.
constexpr char kNodeConfig[] =
    "# containerd on this node (hand-written; keep the layout)\n"
    "version = 2\n"
    "[plugins.\"io.containerd.grpc.v1.cri\"]\n"
    "  sandbox_image = \"registry.k8s.io/pause:3.9\"   # the pause image\n"
    "  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n"
    "    runtime_type = \"io.containerd.runc.v2\"\n";

class InstallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (containerd, QEMU, mounts)";
    for (const char* tool : {"containerd", "bash", "jq"}) {
      if (Which(tool).empty()) GTEST_SKIP() << tool << " is not installed";
    }
    if (!Exists(kBuild + "/guest-image/initrd.img")) {
      GTEST_SKIP() << "no guest image in " << kBuild << "/guest-image (ninja -C " << kBuild
                   << " guest-image)";
    }
    // Short: the shim's QMP socket lives under <root>/run/cloak/<64-char id>/.
    auto dir = TempDir::Create("cki-", "/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    d_ = dir_->path().string();
    root_ = d_ + "/r";
    payload_ = d_ + "/payload";
    config_ = root_ + "/etc/containerd/config.toml";
    fs::create_directories(root_ + "/etc/containerd");

    std::vector<std::string> assemble = {
        kSource + "/kubernetes/installer/assemble-payload.sh", kBuild, payload_};
    bundled_ = !Which("patchelf").empty();
    if (bundled_) {
      assemble.push_back("--bundle");
      assemble.push_back(root_ + "/opt/cloak");
    }
    ASSERT_EQ(Run(assemble), 0) << Slurp(d_ + "/run.out");
    std::cerr << "payload: " << (bundled_ ? "bundled (own libraries and QEMU)" : "host libraries")
              << "\n";
    snapshotter_ = Exists(payload_ + "/bin/cloak-snapshotter");
  }

  void TearDown() override {
    if (env_ && HasFailure()) {
      std::cerr << "---- containerd log (tail) ----\n" << env_->ContainerdLogTail() << "\n";
    }
    env_.reset();
    if (!dir_.has_value()) return;
    testutil::KillMentioning(d_);  // VMs of the installed config
    testutil::UnmountUnder(d_);
  }

  int Run(const std::vector<std::string>& argv) {
    return testutil::RunToFile(argv, d_ + "/run.out", absl::Seconds(180));
  }

  void WriteOriginal(const std::string& text) {
    original_ = text;
    std::ofstream(config_) << original_;
    ::chmod(config_.c_str(), 0640);
  }

  // A command on the installer's PATH that appends its arguments to
  // <d>/<name>.args and exits with the number in <d>/<name>.rc (0 if none).
  void Fake(const std::string& name) {
    const std::string path = d_ + "/fakebin/" + name;
    fs::create_directories(d_ + "/fakebin");
    std::ofstream(path) << "#!/bin/sh\necho \"$*\" >> " << d_ << "/" << name << ".args\n"
                        << "exit $(cat " << d_ << "/" << name << ".rc 2>/dev/null || echo 0)\n";
    ::chmod(path.c_str(), 0755);
  }

  // Runs the installer; the node is labelled through a fake kubectl.
  // `restart`: systemctl and ctr are faked too, and containerd is
  // "restarted" through them.
  int Installer(const std::string& action, bool with_snapshotter, bool restart = false) {
    Fake("kubectl");
    std::vector<std::string> argv = {
        "env", absl::StrCat("PATH=", d_, "/fakebin:", std::getenv("PATH")),
        kSource + "/kubernetes/installer/cloak-deploy.sh", action, "--root", root_, "--scratch",
        "--payload", payload_, "--node", "node-1", "--containerd-version", "1.6",
        "--containerd-wait", "2"};
    for (const std::string& r : insecure_registries_) {
      argv.push_back("--insecure-registry");
      argv.push_back(r);
    }
    if (restart) {
      Fake("systemctl");
      Fake("ctr");
    } else {
      argv.push_back("--no-restart");
    }
    if (!with_snapshotter) argv.push_back("--no-snapshotter");
    return Run(argv);
  }

  std::string d_, root_, payload_, config_, original_;
  std::vector<std::string> insecure_registries_;
  bool snapshotter_ = false;
  bool bundled_ = false;
  std::optional<TempDir> dir_;
  std::unique_ptr<cri::CriEnv> env_;
};

TEST_F(InstallerTest, InstallsIdempotentlyUninstallsExactlyAndRunsACloakDevPod) {
  cri::CriEnvOptions options{.build_dir = kBuild, .source_dir = kSource};
  if (std::string missing = cri::CriEnv::MissingPrerequisite(options); !missing.empty()) {
    GTEST_SKIP() << missing;
  }
  // The private containerd's own config, without Cloak, is the node's
  // config: the installer goes through its whole cycle on a copy of it in
  // the scratch root, and containerd then starts on what it installed.
  options.cloak_runtimes = false;
  options.shim_dir = root_ + "/usr/local/bin";  // the installed link
  std::map<std::string, std::string> before, once, twice, uninstalled;
  std::string installed, uninstalled_config, labelled, unlabelled;
  std::string failure;
  options.prepare_containerd = [&](const cri::CriEnv& env,
                                   const std::string& written) -> absl::StatusOr<std::string> {
    WriteOriginal(Slurp(written));
    insecure_registries_ = {env.registry_host()};
    before = Tree(root_);
    if (Installer("install", snapshotter_) != 0) return absl::InternalError(Slurp(d_ + "/run.out"));
    once = Tree(root_);
    labelled = Slurp(d_ + "/kubectl.args");
    if (Installer("install", snapshotter_) != 0) return absl::InternalError(Slurp(d_ + "/run.out"));
    if (!absl::StrContains(Slurp(d_ + "/run.out"), "already has Cloak")) {
      failure = "the second install changed containerd's config: " + Slurp(d_ + "/run.out");
    }
    twice = Tree(root_);
    installed = Slurp(config_);
    if (Installer("uninstall", snapshotter_) != 0) {
      return absl::InternalError(Slurp(d_ + "/run.out"));
    }
    unlabelled = Slurp(d_ + "/kubectl.args");
    uninstalled = Tree(root_);
    uninstalled_config = Slurp(config_);
    if (Installer("uninstall", snapshotter_) != 0) {
      return absl::InternalError("uninstall twice: " + Slurp(d_ + "/run.out"));
    }
    // Installed again for the pod (containerd's own snapshotter here:
    // cloak-snapshotter is not started under --no-restart).
    if (Installer("install", false) != 0) return absl::InternalError(Slurp(d_ + "/run.out"));
    return config_;
  };
  auto env = cri::CriEnv::Start(options);
  ASSERT_TRUE(env.ok()) << env.status();
  env_ = std::move(*env);
  EXPECT_EQ(failure, "");

  // Install twice: the same files, byte for byte.
  EXPECT_TRUE(Diff(once, twice).empty()) << absl::StrJoin(Diff(once, twice), "\n");
  for (const char* f : {"opt/cloak/bin/containerd-shim-cloak-v2", "opt/cloak/bin/cloak",
                        "opt/cloak/share/vmlinuz", "opt/cloak/share/initrd.img",
                        "etc/cloak/config.toml", "etc/cloak/cloak-dev.toml",
                        "etc/cloak/cloak-snp.toml", "etc/cloak/cloak-tdx.toml",
                        "usr/local/bin/containerd-shim-cloak-v2",
                        "etc/cloak/backup/etc_containerd_config.toml.orig"}) {
    EXPECT_TRUE(once.contains(f)) << f;
  }
  EXPECT_EQ(once.contains("etc/systemd/system/cloak-snapshotter.service"), snapshotter_);
  EXPECT_THAT(installed, HasSubstr("runtimes.cloak-dev]"));
  EXPECT_THAT(installed, HasSubstr("ConfigPath = \"" + root_ + "/etc/cloak/cloak-dev.toml\""));
  EXPECT_THAT(installed, HasSubstr("sandbox_image = \"" + env_->pause_image() + "\""));
  const std::string dev_config = Slurp(root_ + "/etc/cloak/cloak-dev.toml");
  EXPECT_THAT(dev_config, HasSubstr("kernel = \"" + root_ + "/opt/cloak/share/vmlinuz\""));
  if (bundled_) {
    EXPECT_THAT(dev_config,
                HasSubstr("qemu_path = \"" + root_ + "/opt/cloak/bin/qemu-system-x86_64\""));
  }
  // Labelled from `cloak check --json` (QEMU is here; the scratch root has
  // no /dev/sev or TDX: only cloak-dev is usable), unlabelled on uninstall.
  EXPECT_THAT(labelled, HasSubstr("label node node-1 --overwrite cloak.io/runtime-cloak-dev=true "
                                  "cloak.io/runtime-cloak-snp=false "
                                  "cloak.io/runtime-cloak-tdx=false"));
  EXPECT_THAT(unlabelled,
              HasSubstr("label node node-1 cloak.io/runtime-cloak-dev- cloak.io/runtime-cloak-snp- "
                        "cloak.io/runtime-cloak-tdx-"));

  // Uninstall: the original config, byte for byte, and no file of ours left.
  EXPECT_EQ(uninstalled_config, original_);
  EXPECT_TRUE(Diff(before, uninstalled).empty()) << absl::StrJoin(Diff(before, uninstalled), "\n");

  // The pod, on the installed config.
  const runtime::v1::PodSandboxConfig pod = env_->PodConfig("installed");
  auto pod_id = env_->RunPod(pod, "cloak-dev");
  ASSERT_TRUE(pod_id.ok()) << pod_id.status();
  cri::Client& client = env_->client();
  ASSERT_TRUE(client.PullImage(env_->image()).ok());
  runtime::v1::ContainerConfig ctr;
  ctr.mutable_metadata()->set_name("c");
  ctr.mutable_image()->set_image(env_->image());
  for (const char* a : {"sh", "-c", "sleep 300"}) ctr.add_command(a);
  ctr.set_log_path("c.log");
  auto ctr_id = client.CreateContainer(*pod_id, ctr, pod);
  ASSERT_TRUE(ctr_id.ok()) << ctr_id.status();
  ASSERT_TRUE(client.StartContainer(*ctr_id).ok());
  auto out = client.ExecSync(*ctr_id, {"sh", "-c", "echo installed-ok; uname -r"}, 60);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->exit_code(), 0);
  EXPECT_THAT(out->stdout(), HasSubstr("installed-ok"));
  // The guest's kernel, not this machine's: the pod ran in the VM.
  EXPECT_THAT(out->stdout(), HasSubstr("cloud-amd64"));
  ASSERT_TRUE(client.StopPodSandbox(*pod_id).ok());
  ASSERT_TRUE(client.RemovePodSandbox(*pod_id).ok());
  env_->ForgetPod(*pod_id);
}

TEST_F(InstallerTest, RestartsContainerdOnlyOnChangeAndPutsTheConfigBackWhenItFails) {
  WriteOriginal(kNodeConfig);
  ASSERT_EQ(Installer("install", false, /*restart=*/true), 0) << Slurp(d_ + "/run.out");
  EXPECT_THAT(Slurp(d_ + "/systemctl.args"), HasSubstr("restart containerd.service"));
  EXPECT_THAT(Slurp(d_ + "/ctr.args"), HasSubstr("--address /run/containerd/containerd.sock version"));
  EXPECT_THAT(Slurp(config_), HasSubstr("runtimes.cloak-dev]"));

  // Nothing to change: containerd is left alone.
  const std::string restarts = Slurp(d_ + "/systemctl.args");
  ASSERT_EQ(Installer("install", false, true), 0) << Slurp(d_ + "/run.out");
  EXPECT_EQ(Slurp(d_ + "/systemctl.args"), restarts);

  ASSERT_EQ(Installer("uninstall", false, true), 0) << Slurp(d_ + "/run.out");
  EXPECT_EQ(Slurp(config_), original_);
  EXPECT_NE(Slurp(d_ + "/systemctl.args"), restarts) << "restarted on the original config";

  // containerd does not answer after the restart: the install fails and
  // leaves the original config, byte for byte.
  std::ofstream(d_ + "/ctr.rc") << "1\n";
  EXPECT_EQ(Installer("install", false, true), 1);
  EXPECT_THAT(Slurp(d_ + "/run.out"), HasSubstr("putting the previous one back"));
  EXPECT_EQ(Slurp(config_), original_);
}

}  // namespace
}  // namespace cloak::kubernetes
