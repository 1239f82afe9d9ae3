// Pods through containerd's real CRI plugin with the cloak-dev runtime
// handler, driven by cloak::cri::Client: a private containerd 1.6 (its own
// root, state and socket under a temp dir, CRI on), a private registry on
// 127.0.0.1 holding a busybox image and a tiny pause image made from it,
// QEMU under TCG with this build's guest image. Host-network pods only (no
// CNI yet). Root only; skips, saying why, when a prerequisite is missing.
// Everything it starts is stopped by pid, even when a step fails.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
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
#ifndef CLOAK_CRI_BINARY
#error "CLOAK_CRI_BINARY must be defined"
#endif

namespace cloak::cri {
namespace {

namespace v1 = ::runtime::v1;
using ::cloak::testutil::Exists;
using ::cloak::testutil::FreePort;
using ::cloak::testutil::PidsMentioning;
using ::cloak::testutil::Slurp;
using ::cloak::testutil::Which;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

const std::string kBuild = CLOAK_BUILD_DIR;
const std::string kSource = CLOAK_SOURCE_DIR;
const std::string kCriBinary = CLOAK_CRI_BINARY;

std::vector<std::string> Cmdline(pid_t pid) {
  std::string raw = Slurp(absl::StrCat("/proc/", pid, "/cmdline"));
  std::vector<std::string> out;
  for (absl::string_view w : absl::StrSplit(raw, '\0', absl::SkipEmpty())) out.emplace_back(w);
  return out;
}

// Sum of the processes' proportional set size (smaps_rollup), KiB.
long PssKib(const std::vector<pid_t>& pids) {
  long total = 0;
  for (pid_t pid : pids) {
    for (absl::string_view line :
         absl::StrSplit(Slurp(absl::StrCat("/proc/", pid, "/smaps_rollup")), '\n')) {
      if (!absl::StartsWith(line, "Pss:")) continue;
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      long kib = 0;
      if (f.size() >= 2 && absl::SimpleAtoi(f[1], &kib)) total += kib;
    }
  }
  return total;
}

class CriE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (containerd, QEMU, mounts)";
    for (const char* tool : {"containerd", "qemu-system-x86_64", "docker-registry", "skopeo",
                             "busybox"}) {
      if (Which(tool).empty()) GTEST_SKIP() << tool << " is not installed";
    }
    const std::string kernel = kBuild + "/guest-image/vmlinuz";
    const std::string initrd = kBuild + "/guest-image/initrd.img";
    if (!Exists(kernel) || !Exists(initrd)) {
      GTEST_SKIP() << "no guest image in " << kBuild << "/guest-image (build it: ninja -C "
                   << kBuild << " guest-image)";
    }
    const std::string shim_dir = kBuild + "/shim";
    if (!Exists(shim_dir + "/containerd-shim-cloak-v2")) GTEST_SKIP() << "shim not built";

    auto dir = TempDir::Create("ckcri-", "/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    d_ = dir_->path().string();
    std::filesystem::create_directories(d_ + "/registry");
    std::filesystem::create_directories(d_ + "/logs");

    port_ = FreePort();
    auto registry = testutil::StartLocalRegistry(d_, port_);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_.emplace(std::move(*registry));

    // The workload image, and a pause image (the same busybox: CRI pulls
    // and unpacks it on the host; the guest never runs it).
    registry_host_ = absl::StrCat("127.0.0.1:", port_);
    image_ = registry_host_ + "/busybox:e2e";
    pause_ = registry_host_ + "/pause:e2e";
    ASSERT_EQ(Run({kSource + "/scripts/make-busybox-image", d_ + "/oci", "e2e"}), 0)
        << Slurp(d_ + "/run.out");
    for (const std::string& ref : {image_, pause_}) {
      int rc = -1;
      for (int i = 0; i < 50 && rc != 0; ++i) {
        rc = Run({"skopeo", "copy", "--dest-tls-verify=false", "oci:" + d_ + "/oci:e2e",
                  "docker://" + ref});
        if (rc != 0) absl::SleepFor(absl::Milliseconds(200));
      }
      ASSERT_EQ(rc, 0) << Slurp(d_ + "/run.out");
    }

    std::ofstream(d_ + "/cloak.toml")
        << "[runtime]\nstate_dir = \"" << d_ << "/run\"\nlog_level = \"debug\"\n"
        << "[hypervisor]\nkernel = \"" << kernel << "\"\ninitrd = \"" << initrd << "\"\n"
        << "memory_mib = 512\n"
        << "[agent]\nboot_timeout = \"120s\"\n"
        // Under CRI the VM boots for the sandbox, before any container's
        // image is known: the plain-HTTP registry is listed here (the shim
        // rewrites 127.0.0.1 to 10.0.2.2 for the guest).
        << "[image]\ninsecure_registries = [\"" << registry_host_ << "\"]\n";

    const std::string cri = "[plugins.\"io.containerd.grpc.v1.cri\"";
    std::ofstream(d_ + "/containerd.toml")
        << "version = 2\nroot = \"" << d_ << "/root\"\nstate = \"" << d_ << "/state\"\n"
        << "[grpc]\n  address = \"" << d_ << "/c.sock\"\n"
        << "[ttrpc]\n  address = \"" << d_ << "/c.sock.ttrpc\"\n"
        << "[debug]\n  level = \"debug\"\n"
        << cri << "]\n"
        << "  sandbox_image = \"" << pause_ << "\"\n"
        << "  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n"
        << cri << ".cni]\n  bin_dir = \"" << d_ << "/cni/bin\"\n  conf_dir = \"" << d_
        << "/cni/conf\"\n"
        << cri << ".containerd]\n  default_runtime_name = \"cloak-dev\"\n"
        << cri << ".containerd.runtimes.cloak-dev]\n"
        << "  runtime_type = \"io.containerd.cloak.v2\"\n"
        << "  pod_annotations = [\"io.cloak.*\"]\n"
        << cri << ".containerd.runtimes.cloak-dev.options]\n"
        << "  ConfigPath = \"" << d_ << "/cloak.toml\"\n"
        << cri << ".registry.mirrors.\"" << registry_host_ << "\"]\n"
        << "  endpoint = [\"http://" << registry_host_ << "\"]\n";
    SpawnOptions co;
    co.stdout_path = co.stderr_path = d_ + "/containerd.log";
    co.env = {absl::StrCat("PATH=", shim_dir, ":", std::getenv("PATH"))};
    co.cwd = shim_dir;  // containerd looks in its working directory first (FACTS §A1)
    auto containerd = Subprocess::Spawn({"containerd", "--config", d_ + "/containerd.toml"}, co);
    ASSERT_TRUE(containerd.ok()) << containerd.status();
    containerd_.emplace(std::move(*containerd));
    for (int i = 0; i < 100 && !Exists(d_ + "/c.sock"); ++i) absl::SleepFor(absl::Milliseconds(100));
    ASSERT_TRUE(Exists(d_ + "/c.sock")) << Slurp(d_ + "/containerd.log");

    auto client = Client::Create({.endpoint = d_ + "/c.sock", .timeout = absl::Minutes(4)});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
    // The CRI plugin answers once it has initialised.
    absl::Status version;
    for (int i = 0; i < 100; ++i) {
      version = client_->Version().status();
      if (version.ok()) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_TRUE(version.ok()) << version << "\n" << Slurp(d_ + "/containerd.log");
  }

  void TearDown() override {
    if (!dir_.has_value()) return;
    if (HasFailure()) {
      std::string log = Slurp(d_ + "/containerd.log");
      std::cerr << "---- containerd log (tail) ----\n"
                << log.substr(log.size() > 30000 ? log.size() - 30000 : 0) << "\n";
    }
    // Best effort through CRI first, so containerd unmounts what it mounted.
    if (client_ && !pod_id_.empty()) {
      (void)client_->StopPodSandbox(pod_id_);
      (void)client_->RemovePodSandbox(pod_id_);
    }
    client_.reset();
    containerd_.reset();  // SIGTERM, then SIGKILL
    // Shims and VMs containerd started: found by our unique paths.
    for (pid_t pid : PidsMentioning(d_)) ::kill(pid, SIGKILL);
    for (int i = 0; i < 20 && !PidsMentioning(d_).empty(); ++i) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    registry_.reset();
    // Mounts under our root and state (snapshots, sandbox shm).
    std::string mounts = Slurp("/proc/self/mounts");
    std::vector<std::string> ours;
    for (absl::string_view line : absl::StrSplit(mounts, '\n')) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f.size() > 1 && absl::StartsWith(f[1], d_)) ours.push_back(f[1]);
    }
    for (auto it = ours.rbegin(); it != ours.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  }

  // Runs argv to completion (output to <d>/run.out); its exit code, -1 on failure.
  int Run(const std::vector<std::string>& argv, absl::Duration timeout = absl::Seconds(120)) {
    SpawnOptions o;
    o.stdout_path = o.stderr_path = d_ + "/run.out";
    std::filesystem::remove(d_ + "/run.out");
    auto p = Subprocess::Spawn(argv, o);
    if (!p.ok()) return -1;
    auto exit = p->Wait(timeout);
    if (!exit.ok()) {
      p->Stop(absl::Seconds(1));
      return -1;
    }
    return exit->exit_code;
  }

  // QEMU processes and shims of this test: their command lines name d_
  // (QEMU's paths, the shim's -address).
  std::vector<pid_t> QemuPids() {
    std::vector<pid_t> out;
    for (pid_t pid : PidsMentioning(d_)) {
      std::vector<std::string> argv = Cmdline(pid);
      if (!argv.empty() && absl::StrContains(argv[0], "qemu-system")) out.push_back(pid);
    }
    return out;
  }
  std::vector<pid_t> ShimPids() {
    std::vector<pid_t> out;
    for (pid_t pid : PidsMentioning(d_)) {
      std::vector<std::string> argv = Cmdline(pid);
      if (!argv.empty() && absl::StrContains(argv[0], "containerd-shim-cloak-v2")) {
        out.push_back(pid);
      }
    }
    return out;
  }

  v1::PodSandboxConfig PodConfig(const std::string& name) {
    v1::PodSandboxConfig pod;
    pod.mutable_metadata()->set_name(name);
    pod.mutable_metadata()->set_namespace_("default");
    pod.mutable_metadata()->set_uid(name + "-uid");
    pod.set_log_directory(d_ + "/logs/" + name);
    pod.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
        v1::NODE);
    return pod;
  }

  std::string d_, registry_host_, image_, pause_, pod_id_;
  int port_ = 0;
  std::optional<TempDir> dir_;
  std::optional<Subprocess> registry_;
  std::optional<Subprocess> containerd_;
  std::unique_ptr<Client> client_;
};

TEST_F(CriE2eTest, HostNetworkPodRunsLogsExecsAndCleansUp) {
  auto ref = client_->PullImage(image_);
  ASSERT_TRUE(ref.ok()) << ref.status();

  const v1::PodSandboxConfig pod = PodConfig("hello");
  v1::ContainerConfig ctr;
  ctr.mutable_metadata()->set_name("hello");
  ctr.mutable_image()->set_image(image_);
  for (const char* a : {"sh", "-c", "echo hello-cri; sleep 300"}) ctr.add_command(a);
  ctr.set_log_path("hello/0.log");

  const absl::Time start = absl::Now();
  auto pod_id = client_->RunPodSandbox(pod, "cloak-dev");
  ASSERT_TRUE(pod_id.ok()) << pod_id.status();
  pod_id_ = *pod_id;
  const absl::Duration run_pod = absl::Now() - start;
  EXPECT_EQ(QemuPids().size(), 1u);

  auto ctr_id = client_->CreateContainer(pod_id_, ctr, pod);
  ASSERT_TRUE(ctr_id.ok()) << ctr_id.status();
  const absl::Duration created = absl::Now() - start;
  ASSERT_TRUE(client_->StartContainer(*ctr_id).ok());
  const absl::Duration started = absl::Now() - start;
  std::cerr << "RunPodSandbox " << absl::FormatDuration(run_pod) << ", + CreateContainer "
            << absl::FormatDuration(created) << ", + StartContainer "
            << absl::FormatDuration(started) << " (wall, from RunPodSandbox)\n";
  EXPECT_EQ(QemuPids().size(), 1u) << "the container joins the pod's VM";
  std::cerr << "host memory of the pod: QEMU PSS " << PssKib(QemuPids()) << " KiB, shim PSS "
            << PssKib(ShimPids()) << " KiB\n";

  auto status = client_->ContainerStatus(*ctr_id);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state(), v1::CONTAINER_RUNNING);
  EXPECT_EQ(status->log_path(), d_ + "/logs/hello/hello/0.log");

  auto listed = client_->ListContainers(pod_id_);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id(), *ctr_id);

  auto out = client_->ExecSync(*ctr_id, {"sh", "-c", "echo exec-ok; echo to-err >&2"}, 60);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->exit_code(), 0);
  EXPECT_EQ(out->stdout(), "exec-ok\n");
  EXPECT_EQ(out->stderr(), "to-err\n");
  auto bad = client_->ExecSync(*ctr_id, {"sh", "-c", "exit 7"}, 60);
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_EQ(bad->exit_code(), 7);

  // The same through the cloak-cri binary.
  const std::string endpoint = "unix://" + d_ + "/c.sock";
  ASSERT_EQ(Run({kCriBinary, "-r", endpoint, "ps", "--pod", pod_id_}), 0) << Slurp(d_ + "/run.out");
  EXPECT_THAT(Slurp(d_ + "/run.out"), HasSubstr(*ctr_id + "\tCONTAINER_RUNNING\thello"));
  EXPECT_EQ(Run({kCriBinary, "-r", endpoint, "exec-sync", *ctr_id, "--", "sh", "-c",
                 "echo via-cli; exit 5"}),
            5);
  EXPECT_THAT(Slurp(d_ + "/run.out"), HasSubstr("via-cli"));

  // CRI log format: "<RFC3339Nano> stdout F hello-cri".
  const std::string log_path = d_ + "/logs/hello/hello/0.log";
  std::string log;
  for (int i = 0; i < 100 && !absl::StrContains(log, "hello-cri"); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    log = Slurp(log_path);
  }
  std::vector<std::string> lines = absl::StrSplit(log, '\n', absl::SkipEmpty());
  ASSERT_FALSE(lines.empty()) << "no log at " << log_path;
  EXPECT_THAT(lines[0], MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]+ stdout F hello-cri"));

  ASSERT_TRUE(client_->StopPodSandbox(pod_id_).ok());
  auto stopped = client_->ContainerStatus(*ctr_id);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->state(), v1::CONTAINER_EXITED);
  ASSERT_TRUE(client_->RemovePodSandbox(pod_id_).ok());
  pod_id_.clear();
  EXPECT_EQ(client_->ContainerStatus(*ctr_id).status().code(), absl::StatusCode::kNotFound);

  for (int i = 0; i < 100 && !(QemuPids().empty() && ShimPids().empty()); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(QemuPids().empty()) << "QEMU left: " << absl::StrJoin(QemuPids(), " ");
  EXPECT_TRUE(ShimPids().empty()) << "shim left: " << absl::StrJoin(ShimPids(), " ");
}

}  // namespace
}  // namespace cloak::cri
