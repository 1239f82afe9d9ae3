// kubernetes/installer/cloak-deploy.sh on this machine, against a scratch
// root (--root DIR --scratch; kubectl, and where said systemctl and ctr,
// faked on PATH):
//   - installing twice leaves the same files, byte for byte; uninstalling
//     puts back the original containerd config byte for byte and leaves no
//     file of ours; then, installed again, what a node gets runs: the
//     installed cloak-snapshotter started as its systemd unit says, a
//     private containerd (CriEnv, tests/cli/cri/cri_env.h) on the installed
//     config, and a cloak-dev pod through CRI whose skopeo-encrypted image
//     the host pulls with no key and the guest decrypts with the key it gets
//     from cloak-kbs (the payload's, on the host's loopback) after attesting;
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

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cri/cri_env.h"
#include "tests/util/host.h"
#include "tests/util/kbs.h"
#include "tests/util/skip.h"

#ifndef CLOAK_BUILD_DIR
#error "CLOAK_BUILD_DIR must be defined"
#endif
#ifndef CLOAK_SOURCE_DIR
#error "CLOAK_SOURCE_DIR must be defined"
#endif

namespace cloak::kubernetes {
namespace {

namespace fs = std::filesystem;
using ::cloak::testutil::CommandResult;
using ::cloak::testutil::Exists;
using ::cloak::testutil::RunCommand;
using ::cloak::testutil::Slurp;
using ::cloak::testutil::Which;
using ::testing::ElementsAre;
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

// The command line of a systemd unit's ExecStart= (no quoting in ours).
std::vector<std::string> ExecStart(const std::string& unit) {
  for (absl::string_view line : absl::StrSplit(unit, '\n')) {
    if (absl::ConsumePrefix(&line, "ExecStart=")) {
      return absl::StrSplit(line, ' ', absl::SkipEmpty());
    }
  }
  return {};
}

// The value of `flag` in argv ("" if absent).
std::string FlagValue(const std::vector<std::string>& argv, const std::string& flag) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) return argv[i + 1];
  }
  return "";
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
    if (::geteuid() != 0) CLOAK_SKIP() << "needs root (containerd, QEMU, mounts)";
    for (const char* tool : {"containerd", "bash", "jq"}) {
      if (Which(tool).empty()) CLOAK_SKIP() << tool << " is not installed";
    }
    if (!Exists(kBuild + "/guest-image/initrd.img")) {
      CLOAK_SKIP() << "no guest image in " << kBuild << "/guest-image (ninja -C " << kBuild
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
  }

  void TearDown() override {
    if (env_ && HasFailure()) {
      std::cerr << "---- containerd log (tail) ----\n" << env_->ContainerdLogTail() << "\n";
      for (const char* log : {"/snapshotter.log", "/kbs.log"}) {
        std::cerr << "---- " << log << " ----\n" << Slurp(d_ + log) << "\n";
      }
    }
    // Pods through CRI and containerd first, then what they used.
    env_.reset();
    snapshotter_process_.reset();
    kbs_.reset();
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

  // Starts cloak-snapshotter as the installed unit says (its ExecStart;
  // systemd is not used here) and waits for its socket.
  absl::Status StartInstalledSnapshotter() {
    snapshotter_argv_ = ExecStart(Slurp(root_ + "/etc/systemd/system/cloak-snapshotter.service"));
    if (snapshotter_argv_.empty()) {
      return absl::NotFoundError("the installed cloak-snapshotter.service has no ExecStart");
    }
    const std::string socket = FlagValue(snapshotter_argv_, "--address");
    SpawnOptions o;
    o.stdout_path = o.stderr_path = d_ + "/snapshotter.log";
    auto p = Subprocess::Spawn(snapshotter_argv_, o);
    if (!p.ok()) return p.status();
    snapshotter_process_.emplace(std::move(*p));
    for (int i = 0; i < 100 && !Exists(socket); ++i) absl::SleepFor(absl::Milliseconds(50));
    if (socket.empty() || !Exists(socket)) {
      return absl::DeadlineExceededError(absl::StrCat(
          "cloak-snapshotter made no socket at \"", socket,
          "\": ", Slurp(d_ + "/snapshotter.log")));
    }
    return absl::OkStatus();
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
    if (!containerd_socket_.empty()) {
      argv.push_back("--containerd-socket");
      argv.push_back(containerd_socket_);
    }
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
  // Passed as --containerd-socket when set.
  std::string containerd_socket_;
  std::vector<std::string> insecure_registries_;
  bool bundled_ = false;
  std::vector<std::string> snapshotter_argv_;
  std::optional<TempDir> dir_;
  std::unique_ptr<cri::CriEnv> env_;
  std::optional<Subprocess> snapshotter_process_;
  std::optional<testutil::DevKbs> kbs_;
};

TEST_F(InstallerTest, InstallsIdempotentlyUninstallsExactlyAndRunsACloakDevPod) {
  cri::CriEnvOptions options{.build_dir = kBuild, .source_dir = kSource};
  if (std::string missing = cri::CriEnv::MissingPrerequisite(options); !missing.empty()) {
    CLOAK_SKIP() << missing;
  }
  // What a node gets: the snapshotter (encrypted images) and, for the dev
  // overlay, cloak-kbs.
  for (const char* bin : {"cloak-snapshotter", "cloak-kbs"}) {
    if (!Exists(payload_ + "/bin/" + bin)) {
      CLOAK_SKIP() << "the payload has no bin/" << bin << " (build it: scripts/build)";
    }
  }
  if (Which("openssl").empty()) CLOAK_SKIP() << "openssl is not installed";
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
    containerd_socket_ = env.socket();
    before = Tree(root_);
    if (Installer("install", true) != 0) return absl::InternalError(Slurp(d_ + "/run.out"));
    once = Tree(root_);
    labelled = Slurp(d_ + "/kubectl.args");
    if (Installer("install", true) != 0) return absl::InternalError(Slurp(d_ + "/run.out"));
    if (!absl::StrContains(Slurp(d_ + "/run.out"), "already has Cloak")) {
      failure = "the second install changed containerd's config: " + Slurp(d_ + "/run.out");
    }
    twice = Tree(root_);
    installed = Slurp(config_);
    if (Installer("uninstall", true) != 0) {
      return absl::InternalError(Slurp(d_ + "/run.out"));
    }
    unlabelled = Slurp(d_ + "/kubectl.args");
    uninstalled = Tree(root_);
    uninstalled_config = Slurp(config_);
    if (Installer("uninstall", true) != 0) {
      return absl::InternalError("uninstall twice: " + Slurp(d_ + "/run.out"));
    }
    // Installed again for the pod, and cloak-snapshotter started as systemd
    // would (--no-restart starts no unit), before containerd.
    if (Installer("install", true) != 0) {
      return absl::InternalError(Slurp(d_ + "/run.out"));
    }
    if (absl::Status s = StartInstalledSnapshotter(); !s.ok()) return s;
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
  EXPECT_TRUE(once.contains("etc/systemd/system/cloak-snapshotter.service"));
  EXPECT_TRUE(once.contains("opt/cloak/bin/cloak-snapshotter"));
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

  // The unit names the installed binary, its state and socket under the
  // scratch root, and containerd's socket; containerd's config the same
  // socket, as its snapshotter for every pod (containerd 1.6).
  EXPECT_THAT(snapshotter_argv_,
              ElementsAre(root_ + "/opt/cloak/bin/cloak-snapshotter", "--root",
                          root_ + "/var/lib/cloak-snapshotter", "--address",
                          root_ + "/run/cloak-snapshotter/snapshotter.sock",
                          "--containerd-address", env_->socket()));
  const std::string installed_again = Slurp(config_);
  EXPECT_THAT(installed_again, HasSubstr("[proxy_plugins.cloak]"));
  EXPECT_THAT(installed_again,
              HasSubstr("address = \"" + root_ + "/run/cloak-snapshotter/snapshotter.sock\""));
  EXPECT_THAT(installed_again, HasSubstr("snapshotter = \"cloak\""));
  EXPECT_THAT(installed_again, HasSubstr("disable_snapshot_annotations = false"));

  // The secret image: encrypted to a key only cloak-kbs keeps. The key
  // pair and the marker file are deleted before anything is pulled.
  CommandResult r = RunCommand({"openssl", "genrsa", "-out", d_ + "/image.key", "2048"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunCommand(
      {"openssl", "rsa", "-in", d_ + "/image.key", "-pubout", "-out", d_ + "/image.pub"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string marker = testutil::RandomMarker("cloak-installed-secret-");
  std::ofstream(d_ + "/marker.txt") << marker << "\n";
  const std::string secret = env_->registry_host() + "/secret:enc";
  absl::Status pushed = env_->PushImage(
      secret, {.marker_file = d_ + "/marker.txt", .encryption_pubkey = d_ + "/image.pub"});
  fs::remove(d_ + "/marker.txt");
  fs::remove(d_ + "/image.pub");
  ASSERT_TRUE(pushed.ok()) << pushed;

  // cloak-kbs from the installed payload, on the host's loopback (as the
  // dev overlay runs it), holding the key for guests whose init-data is the
  // pod's.
  const std::string kbs = root_ + "/opt/cloak/bin/cloak-kbs";
  const std::string kbs_state = d_ + "/kbs";
  r = RunCommand({kbs, "admin", "put-resource", "--state-dir", kbs_state,
                  "default/image-key/installed", "--file", d_ + "/image.key"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  fs::remove(d_ + "/image.key");
  auto kbs_proc = testutil::StartDevKbs(kbs, kbs_state, d_);
  ASSERT_TRUE(kbs_proc.ok()) << kbs_proc.status();
  kbs_.emplace(std::move(*kbs_proc));
  const testutil::DevInitData initdata =
      testutil::DevInitDataFor(
          kbs_->port, "default/image-key/installed",
          // The agent policy lets the test exec `sh -c ...` into "c" and
          // otherwise keeps the built-in default (docs/policy.md).
          R"("policy.json" = '''{"version": "1", "rpcs": {"SetPolicy": "deny"}, )"
          R"("containers": [{"name": "*", "sandbox": true}, {"name": "c", )"
          R"("exec": [{"argv": ["sh", "-c", {"regex": ".*"}]}], "max_instances": 1}]}''')"
          "\n");
  std::ofstream(d_ + "/policy.json")
      << R"({"allowed_tees":["sample"],"init_data_digests":[")" << initdata.sha384_hex << R"("]})";
  r = RunCommand({kbs, "admin", "set-policy", "--state-dir", kbs_state,
                  "default/image-key/installed", "--file", d_ + "/policy.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // The host pulls it with no key anywhere on it: through cloak-snapshotter
  // its encrypted layer is neither fetched nor unpacked here.
  cri::Client& client = env_->client();
  auto ref = client.PullImage(secret);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_THAT(Slurp(d_ + "/snapshotter.log"), HasSubstr("recorded for guest pull"));

  // The pod, on the installed config, with init-data naming the KBS and
  // the key.
  runtime::v1::PodSandboxConfig pod = env_->PodConfig("installed");
  (*pod.mutable_annotations())["io.cloak.initdata"] = absl::Base64Escape(initdata.document);
  auto pod_id = env_->RunPod(pod, "cloak-dev");
  ASSERT_TRUE(pod_id.ok()) << pod_id.status();
  runtime::v1::ContainerConfig ctr;
  ctr.mutable_metadata()->set_name("c");
  ctr.mutable_image()->set_image(secret);
  for (const char* a : {"sh", "-c", "sleep 300"}) ctr.add_command(a);
  ctr.set_log_path("c.log");
  auto ctr_id = client.CreateContainer(*pod_id, ctr, pod);
  ASSERT_TRUE(ctr_id.ok()) << ctr_id.status();
  ASSERT_TRUE(client.StartContainer(*ctr_id).ok());
  // The guest decrypted the image: its /marker is there.
  auto out = client.ExecSync(*ctr_id, {"sh", "-c", "cat /marker; uname -r"}, 60);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->exit_code(), 0) << out->stderr();
  EXPECT_THAT(out->stdout(), HasSubstr(marker));
  // The guest's kernel, not this machine's: the pod ran in the VM.
  EXPECT_THAT(out->stdout(), HasSubstr("cloud-amd64"));
  EXPECT_THAT(Slurp(d_ + "/kbs.log"),
              HasSubstr("step=resource path=default/image-key/installed tee=sample status=200"));
  EXPECT_THAT(env_->ContainerdLogTail(1 << 20), HasSubstr("rootfs holds no host layers"));
  ASSERT_TRUE(client.StopPodSandbox(*pod_id).ok());
  ASSERT_TRUE(client.RemovePodSandbox(*pod_id).ok());
  env_->ForgetPod(*pod_id);
  // No plaintext of the image on the host: not under containerd's root,
  // state or the pods' logs, the snapshotter's state or the shim's.
  EXPECT_EQ(testutil::FilesHoldingMarker(
                marker, {env_->dir() + "/root", env_->dir() + "/state", env_->dir() + "/logs",
                         root_ + "/var/lib/cloak-snapshotter", root_ + "/run/cloak"}),
            "")
      << "plaintext of the encrypted image on the host";
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
