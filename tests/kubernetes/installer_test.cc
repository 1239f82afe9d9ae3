// kubernetes/installer/cloak-deploy.sh on this machine, against a scratch
// root (--root DIR --scratch --no-restart, kubectl faked): installing twice
// leaves the same files, uninstalling puts back the original containerd
// config byte for byte, and a private containerd started on the installed
// config runs a cloak-dev pod through CRI (host network, busybox from a
// private registry on 127.0.0.1). Root only; skips, saying why, when a
// prerequisite is missing. Everything started is stopped by pid.
//
// The private containerd, registry and CRI client follow tests/cri/e2e_test.cc
// (kept small so it can move onto the shared CRI fixture).
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
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cli/cri/client.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/host.h"
#include "tests/util/registry.h"

#ifndef CLOAK_BUILD_DIR
#error "CLOAK_BUILD_DIR must be defined"
#endif
#ifndef CLOAK_SOURCE_DIR
#error "CLOAK_SOURCE_DIR must be defined"
#endif

namespace cloak::kubernetes {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::runtime::v1;
using ::cloak::testutil::Exists;
using ::cloak::testutil::FreePort;
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

class InstallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (containerd, QEMU, mounts)";
    for (const char* tool : {"containerd", "qemu-system-x86_64", "docker-registry", "skopeo",
                             "busybox", "bash"}) {
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
    fs::create_directories(root_ + "/etc/containerd");

    // With patchelf, the payload is bundled as for the installer image
    // (its own libraries and QEMU), for the scratch root's prefix.
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

    port_ = FreePort();
    registry_host_ = absl::StrCat("127.0.0.1:", port_);
    // The node's containerd config as a distribution ships it: comments,
    // indentation and key order that a rewrite would lose.
    const std::string cri = "[plugins.\"io.containerd.grpc.v1.cri\"";
    original_ = absl::StrCat(
        "# containerd on this node (hand-written; keep the layout)\n", "version = 2\n",
        "root = \"", d_, "/croot\"\nstate = \"", d_, "/cstate\"\n\n[grpc]\n  address = \"", d_,
        "/c.sock\"\n[ttrpc]\n  address = \"", d_, "/c.sock.ttrpc\"\n\n", cri, "]\n",
        "  sandbox_image = \"", registry_host_, "/pause:i\"\n",
        "  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n", cri,
        ".cni]\n  bin_dir = \"", d_, "/cni/bin\"\n  conf_dir = \"", d_, "/cni/conf\"\n", cri,
        ".registry.mirrors.\"", registry_host_, "\"]\n  endpoint = [\"http://", registry_host_,
        "\"]\n");
    config_ = root_ + "/etc/containerd/config.toml";
    std::ofstream(config_) << original_;
    ::chmod(config_.c_str(), 0640);
  }

  void TearDown() override {
    if (!dir_.has_value()) return;
    if (HasFailure() && Exists(d_ + "/containerd.log")) {
      std::string log = Slurp(d_ + "/containerd.log");
      std::cerr << "---- containerd log (tail) ----\n"
                << log.substr(log.size() > 20000 ? log.size() - 20000 : 0) << "\n";
    }
    if (client_ && !pod_id_.empty()) {
      (void)client_->StopPodSandbox(pod_id_);
      (void)client_->RemovePodSandbox(pod_id_);
    }
    client_.reset();
    containerd_.reset();
    testutil::KillMentioning(d_);  // shims and VMs containerd started
    registry_.reset();
    testutil::UnmountUnder(d_);
  }

  int Run(const std::vector<std::string>& argv) {
    return testutil::RunToFile(argv, d_ + "/run.out", absl::Seconds(180));
  }

  // Runs the installer; the node is labelled through a kubectl on PATH that
  // records its arguments in <d>/kubectl.args.
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
        "--insecure-registry", registry_host_, "--containerd-wait", "2"};
    if (restart) {
      Fake("systemctl");
      Fake("ctr");
    } else {
      argv.push_back("--no-restart");
    }
    if (!with_snapshotter) argv.push_back("--no-snapshotter");
    return Run(argv);
  }

  std::string d_, root_, payload_, config_, original_, registry_host_, pod_id_;
  int port_ = 0;
  bool snapshotter_ = false;
  bool bundled_ = false;
  std::optional<TempDir> dir_;
  std::optional<Subprocess> registry_;
  std::optional<Subprocess> containerd_;
  std::unique_ptr<cri::Client> client_;
};

TEST_F(InstallerTest, InstallsIdempotentlyUninstallsExactlyAndRunsACloakDevPod) {
  const auto before = Tree(root_);

  // Install twice: the same files, byte for byte.
  ASSERT_EQ(Installer("install", snapshotter_), 0) << Slurp(d_ + "/run.out");
  const auto once = Tree(root_);
  ASSERT_EQ(Installer("install", snapshotter_), 0) << Slurp(d_ + "/run.out");
  EXPECT_THAT(Slurp(d_ + "/run.out"), HasSubstr("already has Cloak"));
  const auto twice = Tree(root_);
  EXPECT_TRUE(Diff(once, twice).empty()) << absl::StrJoin(Diff(once, twice), "\n");
  // The node was labelled from `cloak check --json` (QEMU is here, the
  // scratch root has no /dev/sev or TDX: only cloak-dev is usable).
  const std::string labelled = Slurp(d_ + "/kubectl.args");
  EXPECT_THAT(labelled, HasSubstr("label node node-1 --overwrite cloak.io/runtime-cloak-dev=true "
                                  "cloak.io/runtime-cloak-snp=false "
                                  "cloak.io/runtime-cloak-tdx=false"));

  for (const char* f : {"opt/cloak/bin/containerd-shim-cloak-v2", "opt/cloak/bin/cloak",
                        "opt/cloak/share/vmlinuz", "opt/cloak/share/initrd.img",
                        "etc/cloak/config.toml", "etc/cloak/cloak-dev.toml",
                        "etc/cloak/cloak-snp.toml", "etc/cloak/cloak-tdx.toml",
                        "usr/local/bin/containerd-shim-cloak-v2",
                        "etc/cloak/backup/etc_containerd_config.toml.orig"}) {
    EXPECT_TRUE(once.contains(f)) << f;
  }
  EXPECT_EQ(once.contains("etc/systemd/system/cloak-snapshotter.service"), snapshotter_);
  const std::string installed = Slurp(config_);
  EXPECT_THAT(installed, HasSubstr("runtimes.cloak-dev]"));
  EXPECT_THAT(installed, HasSubstr("ConfigPath = \"" + root_ + "/etc/cloak/cloak-dev.toml\""));
  EXPECT_THAT(installed, HasSubstr("sandbox_image = \"" + registry_host_ + "/pause:i\""));
  EXPECT_THAT(Slurp(root_ + "/etc/cloak/cloak-dev.toml"),
              HasSubstr("kernel = \"" + root_ + "/opt/cloak/share/vmlinuz\""));
  if (bundled_) {
    EXPECT_THAT(Slurp(root_ + "/etc/cloak/cloak-dev.toml"),
                HasSubstr("qemu_path = \"" + root_ + "/opt/cloak/bin/qemu-system-x86_64\""));
  }

  // Uninstall: the original config, byte for byte and with its mode, and no
  // file of ours left.
  ASSERT_EQ(Installer("uninstall", snapshotter_), 0) << Slurp(d_ + "/run.out");
  EXPECT_THAT(Slurp(d_ + "/kubectl.args"),
              HasSubstr("label node node-1 cloak.io/runtime-cloak-dev- cloak.io/runtime-cloak-snp- "
                        "cloak.io/runtime-cloak-tdx-"));
  EXPECT_EQ(Slurp(config_), original_);
  struct stat st {};
  ASSERT_EQ(::stat(config_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_TRUE(Diff(before, Tree(root_)).empty()) << absl::StrJoin(Diff(before, Tree(root_)), "\n");
  ASSERT_EQ(Installer("uninstall", snapshotter_), 0) << "uninstall twice: " << Slurp(d_ + "/run.out");
  EXPECT_EQ(Slurp(config_), original_);

  // Install again (containerd's own snapshotter here: cloak-snapshotter is
  // not started by --no-restart) and run a pod through CRI on that config.
  ASSERT_EQ(Installer("install", false), 0) << Slurp(d_ + "/run.out");

  auto registry = testutil::StartLocalRegistry(d_, port_);
  ASSERT_TRUE(registry.ok()) << registry.status();
  registry_.emplace(std::move(*registry));
  ASSERT_EQ(Run({kSource + "/scripts/make-busybox-image", d_ + "/oci", "i"}), 0)
      << Slurp(d_ + "/run.out");
  for (const std::string& ref : {registry_host_ + "/busybox:i", registry_host_ + "/pause:i"}) {
    int rc = -1;
    for (int i = 0; i < 50 && rc != 0; ++i) {
      rc = Run({"skopeo", "copy", "--dest-tls-verify=false", "oci:" + d_ + "/oci:i",
                "docker://" + ref});
      if (rc != 0) absl::SleepFor(absl::Milliseconds(200));
    }
    ASSERT_EQ(rc, 0) << Slurp(d_ + "/run.out");
  }

  SpawnOptions co;
  co.stdout_path = co.stderr_path = d_ + "/containerd.log";
  // containerd finds containerd-shim-cloak-v2 through the installed link.
  co.env = {absl::StrCat("PATH=", root_, "/usr/local/bin:", std::getenv("PATH"))};
  auto containerd = Subprocess::Spawn({"containerd", "--config", config_}, co);
  ASSERT_TRUE(containerd.ok()) << containerd.status();
  containerd_.emplace(std::move(*containerd));
  auto client = cri::Client::Create({.endpoint = d_ + "/c.sock", .timeout = absl::Minutes(4)});
  ASSERT_TRUE(client.ok()) << client.status();
  client_ = std::move(*client);
  absl::Status version;
  for (int i = 0; i < 150; ++i) {
    version = client_->Version().status();
    if (version.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(version.ok()) << version;

  ASSERT_TRUE(client_->PullImage(registry_host_ + "/busybox:i").ok());
  v1::PodSandboxConfig pod;
  pod.mutable_metadata()->set_name("installed");
  pod.mutable_metadata()->set_namespace_("default");
  pod.mutable_metadata()->set_uid("installed-uid");
  pod.set_log_directory(d_ + "/logs");
  pod.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
      v1::NODE);
  auto pod_id = client_->RunPodSandbox(pod, "cloak-dev");
  ASSERT_TRUE(pod_id.ok()) << pod_id.status();
  pod_id_ = *pod_id;
  v1::ContainerConfig ctr;
  ctr.mutable_metadata()->set_name("c");
  ctr.mutable_image()->set_image(registry_host_ + "/busybox:i");
  for (const char* a : {"sh", "-c", "sleep 300"}) ctr.add_command(a);
  ctr.set_log_path("c.log");
  auto ctr_id = client_->CreateContainer(pod_id_, ctr, pod);
  ASSERT_TRUE(ctr_id.ok()) << ctr_id.status();
  ASSERT_TRUE(client_->StartContainer(*ctr_id).ok());
  auto out = client_->ExecSync(*ctr_id, {"sh", "-c", "echo installed-ok; uname -r"}, 60);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->exit_code(), 0);
  EXPECT_THAT(out->stdout(), HasSubstr("installed-ok"));
  // The guest's kernel, not this machine's: the pod ran in the VM.
  EXPECT_THAT(out->stdout(), HasSubstr("cloud-amd64"));
  ASSERT_TRUE(client_->StopPodSandbox(pod_id_).ok());
  ASSERT_TRUE(client_->RemovePodSandbox(pod_id_).ok());
  pod_id_.clear();
}

TEST_F(InstallerTest, RestartsContainerdOnlyOnChangeAndPutsTheConfigBackWhenItFails) {
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
