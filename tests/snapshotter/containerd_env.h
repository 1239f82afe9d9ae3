// The fixture of cloak-snapshotter's integration and e2e tests: a private
// containerd 1.6 (its own root, state and socket under a temp dir; CRI on;
// snapshotter "cloak" as a proxy plugin), cloak-snapshotter, and a private
// registry on 127.0.0.1. Root only; skips, saying why, when a prerequisite
// is missing. Everything it starts is stopped by pid and everything mounted
// under its directory is unmounted, even when a step fails.
#ifndef CLOAK_TESTS_SNAPSHOTTER_CONTAINERD_ENV_H_
#define CLOAK_TESTS_SNAPSHOTTER_CONTAINERD_ENV_H_

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
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
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/util/host.h"
#include "tests/util/registry.h"
#include "tests/util/skip.h"

#ifndef CLOAK_SNAPSHOTTER_BINARY
#error "CLOAK_SNAPSHOTTER_BINARY must be defined"
#endif
#ifndef CLOAK_SOURCE_DIR
#error "CLOAK_SOURCE_DIR must be defined"
#endif

namespace cloak::snapshotter {

using ::cloak::testutil::CommandResult;
using ::cloak::testutil::Exists;
using ::cloak::testutil::FilesHoldingMarker;
using ::cloak::testutil::FreePort;
using ::cloak::testutil::PidsMentioning;
using ::cloak::testutil::RunCommand;
using ::cloak::testutil::Slurp;
using ::cloak::testutil::Which;

inline const std::string kSource = CLOAK_SOURCE_DIR;

// One row of `ctr snapshots ls`: KEY PARENT KIND.
struct Row {
  std::string parent;
  std::string kind;
};

class SnapshotterEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) CLOAK_SKIP() << "needs root (containerd, mounts)";
    for (const char* tool :
         {"containerd", "ctr", "docker-registry", "skopeo", "busybox", "openssl"}) {
      if (Which(tool).empty()) CLOAK_SKIP() << tool << " is not installed";
    }
    auto dir = TempDir::Create("cksnap-it-", "/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    d_ = dir_->path().string();
    port_ = FreePort();
    auto registry = testutil::StartLocalRegistry(d_, port_);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_.emplace(std::move(*registry));
    registry_host_ = absl::StrCat("127.0.0.1:", port_);
  }

  void TearDown() override {
    if (!dir_.has_value()) return;
    if (HasFailure()) {
      for (const char* log : {"/containerd.log", "/snapshotter.log"}) {
        std::string text = Slurp(d_ + log);
        std::cerr << "---- " << log << " (tail) ----\n"
                  << text.substr(text.size() > 20000 ? text.size() - 20000 : 0) << "\n";
      }
    }
    // Best effort through CRI first, so containerd unmounts what it mounted.
    if (cri_ && !pod_id_.empty()) {
      (void)cri_->StopPodSandbox(pod_id_);
      (void)cri_->RemovePodSandbox(pod_id_);
    }
    cri_.reset();
    containerd_.reset();
    snapshotter_.reset();
    registry_.reset();
    for (pid_t pid : PidsMentioning(d_)) ::kill(pid, SIGKILL);
    UnmountAllUnder(d_);
  }

  static void UnmountAllUnder(const std::string& dir) {
    std::vector<std::string> ours;
    for (absl::string_view line : absl::StrSplit(Slurp("/proc/self/mounts"), '\n')) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f.size() > 1 && absl::StartsWith(f[1], dir)) ours.push_back(f[1]);
    }
    for (auto it = ours.rbegin(); it != ours.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  }

  // Pushes a one-layer busybox image (with `marker_file` as /marker if
  // given, `cmd_json` as its Cmd if given), encrypted to `pubkey` if given,
  // as `ref`.
  void PushImage(const std::string& ref, const std::string& marker_file = "",
                 const std::string& pubkey = "", const std::string& cmd_json = "") {
    const std::string layout = d_ + "/oci-" + std::to_string(++images_);
    std::vector<std::string> make = {kSource + "/scripts/make-busybox-image", layout, "t",
                                     marker_file};
    if (!cmd_json.empty()) make.push_back(cmd_json);
    CommandResult r = RunCommand(make, absl::Seconds(60));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::vector<std::string> copy = {"skopeo", "copy", "--dest-tls-verify=false"};
    if (!pubkey.empty()) copy.insert(copy.end(), {"--encryption-key", "jwe:" + pubkey});
    copy.insert(copy.end(), {"oci:" + layout + ":t", "docker://" + ref});
    for (int i = 0; i < 50; ++i) {
      r = RunCommand(copy, absl::Seconds(120));
      if (r.exit_code == 0) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::filesystem::remove_all(layout);
  }

  // An RSA key pair for image encryption: d_/image.key, d_/image.pub.
  void MakeImageKeyPair() {
    CommandResult r = RunCommand({"openssl", "genrsa", "-out", d_ + "/image.key", "2048"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = RunCommand(
        {"openssl", "rsa", "-in", d_ + "/image.key", "-pubout", "-out", d_ + "/image.pub"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  void StartSnapshotter() {
    SpawnOptions o;
    o.stdout_path = o.stderr_path = d_ + "/snapshotter.log";
    std::filesystem::remove(d_ + "/snap.sock");
    auto p = Subprocess::Spawn(
        {CLOAK_SNAPSHOTTER_BINARY, "--root", d_ + "/snap-root", "--address", d_ + "/snap.sock",
         "--containerd-address", d_ + "/c.sock", "--log-level", "debug"},
        o);
    ASSERT_TRUE(p.ok()) << p.status();
    snapshotter_.emplace(std::move(*p));
    for (int i = 0; i < 100 && !Exists(d_ + "/snap.sock"); ++i) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    ASSERT_TRUE(Exists(d_ + "/snap.sock")) << Slurp(d_ + "/snapshotter.log");
  }

  // containerd with CRI using `snapshotter` ("cloak" or "overlayfs");
  // `extra_toml` is appended to its config, and `shim_dir` (if given) is
  // its working directory and first on its PATH.
  void StartContainerd(const std::string& snapshotter, const std::string& extra_toml = "",
                       const std::string& shim_dir = "") {
    const std::string cri = "[plugins.\"io.containerd.grpc.v1.cri\"";
    std::ofstream(d_ + "/containerd.toml")
        << "version = 2\nroot = \"" << d_ << "/root\"\nstate = \"" << d_ << "/state\"\n"
        << "[grpc]\n  address = \"" << d_ << "/c.sock\"\n"
        << "[ttrpc]\n  address = \"" << d_ << "/c.sock.ttrpc\"\n"
        << "[debug]\n  level = \"debug\"\n"
        << "[proxy_plugins.cloak]\n  type = \"snapshot\"\n  address = \"" << d_ << "/snap.sock\"\n"
        << cri << "]\n"
        << (sandbox_image_.empty() ? "" : "  sandbox_image = \"" + sandbox_image_ + "\"\n")
        << "  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n"
        << cri << ".cni]\n  bin_dir = \"" << d_ << "/cni/bin\"\n  conf_dir = \"" << d_
        << "/cni/conf\"\n"
        << cri << ".containerd]\n  snapshotter = \"" << snapshotter << "\"\n"
        << "  disable_snapshot_annotations = false\n"
        << cri << ".registry.mirrors.\"" << registry_host_ << "\"]\n"
        << "  endpoint = [\"http://" << registry_host_ << "\"]\n"
        << extra_toml;
    SpawnOptions o;
    o.stdout_path = o.stderr_path = d_ + "/containerd.log";
    if (!shim_dir.empty()) {
      o.env = {absl::StrCat("PATH=", shim_dir, ":", std::getenv("PATH"))};
      o.cwd = shim_dir;  // containerd looks in its working directory first (docs/shim.md)
    }
    std::filesystem::remove(d_ + "/c.sock");
    auto p = Subprocess::Spawn({"containerd", "--config", d_ + "/containerd.toml"}, o);
    ASSERT_TRUE(p.ok()) << p.status();
    containerd_.emplace(std::move(*p));
    for (int i = 0; i < 100 && !Exists(d_ + "/c.sock"); ++i)
      absl::SleepFor(absl::Milliseconds(100));
    ASSERT_TRUE(Exists(d_ + "/c.sock")) << Slurp(d_ + "/containerd.log");
    auto client = cri::Client::Create({.endpoint = d_ + "/c.sock", .timeout = absl::Minutes(4)});
    ASSERT_TRUE(client.ok()) << client.status();
    cri_ = std::move(*client);
    absl::Status version;
    for (int i = 0; i < 100; ++i) {
      version = cri_->Version().status();
      if (version.ok()) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_TRUE(version.ok()) << version;
  }

  void KillNine(std::optional<Subprocess>& p) {
    ASSERT_TRUE(p.has_value());
    ASSERT_TRUE(p->Signal(SIGKILL).ok());
    (void)p->Wait(absl::Seconds(10));
    p.reset();
  }

  CommandResult Ctr(std::vector<std::string> args) {
    args.insert(args.begin(), {"ctr", "--address", d_ + "/c.sock", "-n", "k8s.io"});
    return RunCommand(args, absl::Seconds(60));
  }

  // `ctr snapshots --snapshotter cloak ls`, by key.
  std::map<std::string, Row> CtrSnapshots() {
    CommandResult r = Ctr({"snapshots", "--snapshotter", "cloak", "ls"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::map<std::string, Row> out;
    std::vector<std::string> lines = absl::StrSplit(r.output, '\n', absl::SkipEmpty());
    for (size_t i = 1; i < lines.size(); ++i) {  // below the header
      std::vector<std::string> f = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
      if (f.size() == 3) out[f[0]] = {f[1], f[2]};
      if (f.size() == 2) out[f[0]] = {"", f[1]};
    }
    return out;
  }

  // The snapshotter's own state (metadata.json), by name.
  nlohmann::json OwnState() {
    nlohmann::json doc =
        nlohmann::json::parse(Slurp(d_ + "/snap-root/metadata.json"), nullptr, false);
    EXPECT_FALSE(doc.is_discarded());
    return doc.is_discarded() ? nlohmann::json::array() : doc["snapshots"];
  }

  // containerd's keys are its own names; the snapshotter's are containerd's
  // backend names "<ns>/<n>/<key>" or, for guest-pull layers,
  // "cloak/<n>/<chainID>": both end in the containerd key.
  // containerd removes a snapshot from its own records at once and from the
  // snapshotter in its garbage collection, which runs in the background
  // shortly after: the two may differ for a moment, so this waits (up to
  // 20 s) for them to agree before it compares.
  void ExpectStatesAgree() {
    std::map<std::string, std::string> kinds = {{"1", "View"}, {"2", "Active"}, {"3", "Committed"}};
    std::set<std::string> ctr_rows, our_rows;
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (attempt > 0) absl::SleepFor(absl::Milliseconds(200));
      ctr_rows.clear();
      our_rows.clear();
      for (const auto& [key, row] : CtrSnapshots()) ctr_rows.insert(key + " " + row.kind);
      for (const nlohmann::json& s : OwnState()) {
        const std::string name = s["name"];
        const std::string key = name.substr(name.find('/', name.find('/') + 1) + 1);
        our_rows.insert(key + " " + kinds[std::to_string(s["kind"].get<int>())]);
      }
      if (ctr_rows == our_rows) break;
    }
    EXPECT_EQ(ctr_rows, our_rows) << "ctr snapshots ls and " << d_ << "/snap-root/metadata.json";
  }

  // Mounts containerd hands out for a new active snapshot `key` over
  // `parent` (ctr snapshots prepare --mounts), labelled as a GC root.
  nlohmann::json PrepareThroughContainerd(const std::string& key, const std::string& parent) {
    CommandResult r =
        Ctr({"snapshots", "--snapshotter", "cloak", "prepare", "--mounts", key, parent});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    CommandResult l =
        Ctr({"snapshots", "--snapshotter", "cloak", "label", key, "containerd.io/gc.root=test"});
    EXPECT_EQ(l.exit_code, 0) << l.output;
    nlohmann::json m = nlohmann::json::parse(r.output, nullptr, false);
    EXPECT_TRUE(m.is_array()) << r.output;
    return m.is_array() ? m : nlohmann::json::array();
  }

  // Mounts `mounts` (containerd's JSON) on `target`.
  void MountAll(const nlohmann::json& mounts, const std::string& target) {
    std::filesystem::create_directories(target);
    ASSERT_EQ(mounts.size(), 1u) << mounts.dump();
    const nlohmann::json& m = mounts[0];
    const std::string type = m["Type"], source = m["Source"];
    std::vector<std::string> options = m["Options"];
    if (type == "bind") {
      ASSERT_EQ(::mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr), 0)
          << "bind " << source << ": " << std::strerror(errno);
    } else {
      ASSERT_EQ(type, "overlay");
      const std::string data = absl::StrJoin(options, ",");
      ASSERT_EQ(::mount("overlay", target.c_str(), "overlay", 0, data.c_str()), 0)
          << "overlay " << data << ": " << std::strerror(errno);
    }
  }

  std::string NewCommittedKey(const std::set<std::string>& before) {
    for (const auto& [key, row] : CtrSnapshots()) {
      if (row.kind == "Committed" && before.count(key) == 0) return key;
    }
    return "";
  }
  std::set<std::string> Keys() {
    std::set<std::string> out;
    for (const auto& [key, row] : CtrSnapshots()) out.insert(key);
    return out;
  }

  std::string d_, registry_host_, sandbox_image_, pod_id_;
  int port_ = 0;
  int images_ = 0;
  std::optional<TempDir> dir_;
  std::optional<Subprocess> registry_;
  std::optional<Subprocess> snapshotter_;
  std::optional<Subprocess> containerd_;
  std::unique_ptr<cri::Client> cri_;
};

}  // namespace cloak::snapshotter

#endif  // CLOAK_TESTS_SNAPSHOTTER_CONTAINERD_ENV_H_
