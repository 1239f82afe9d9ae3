// containerd-shim-cloak-v2 for real: a private containerd 1.6 (CRI off),
// a private registry on 127.0.0.1, QEMU under TCG, the guest image and
// cloak-agent, driven through `ctr`. Root only; skips, saying why, when a
// prerequisite is missing. Everything it starts is stopped by pid, even
// when a step fails.
#include <dirent.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>


#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/bundle.h"
#include "shim/shim_process.h"
#include "tests/util/host.h"
#include "tests/util/kbs.h"
#include "tests/util/libvirt.h"
#include "tests/util/registry.h"
#include "tests/util/skip.h"

#ifndef CLOAK_BUILD_DIR
#error "CLOAK_BUILD_DIR must be defined"
#endif
#ifndef CLOAK_SOURCE_DIR
#error "CLOAK_SOURCE_DIR must be defined"
#endif

namespace cloak::shim {
namespace {

using ::cloak::testutil::Exists;
using ::cloak::testutil::Which;
using ::cloak::testutil::FreePort;
using ::cloak::testutil::Slurp;
using ::cloak::testutil::PidsMentioning;

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kBuild = CLOAK_BUILD_DIR;
const std::string kSource = CLOAK_SOURCE_DIR;

struct RunResult {
  int exit_code = -1;
  std::string output;
  absl::Duration took;
};

class ShimE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) CLOAK_SKIP() << "needs root (containerd, QEMU, mounts)";
    for (const char* tool : {"containerd", "ctr", "qemu-system-x86_64", "docker-registry",
                             "skopeo", "busybox"}) {
      if (Which(tool).empty()) CLOAK_SKIP() << tool << " is not installed";
    }
    kernel_ = kBuild + "/guest-image/vmlinuz";
    initrd_ = kBuild + "/guest-image/initrd.img";
    if (!Exists(kernel_) || !Exists(initrd_)) {
      CLOAK_SKIP() << "no guest image in " << kBuild
                   << "/guest-image (build it: ninja -C " << kBuild << " guest-image)";
    }
    shim_dir_ = kBuild + "/shim";
    if (!Exists(shim_dir_ + "/containerd-shim-cloak-v2")) CLOAK_SKIP() << "shim not built";

    auto dir = TempDir::Create("ck-", "/tmp");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    d_ = dir_->path().string();
    std::filesystem::create_directories(d_ + "/empty");
    std::filesystem::create_directories(d_ + "/registry");

    // Registry on the host's loopback.
    port_ = FreePort();
    auto registry = testutil::StartLocalRegistry(d_, port_);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_.emplace(std::move(*registry));

    // A busybox image pushed to it.
    RunResult made = Run({kSource + "/scripts/make-busybox-image", d_ + "/oci", "e2e"},
                         absl::Seconds(60));
    ASSERT_EQ(made.exit_code, 0) << made.output;
    image_ = absl::StrCat("127.0.0.1:", port_, "/busybox:e2e");
    RunResult pushed;
    for (int i = 0; i < 50; ++i) {
      pushed = Run({"skopeo", "copy", "--dest-tls-verify=false", "oci:" + d_ + "/oci:e2e",
                    "docker://" + image_},
                   absl::Seconds(60));
      if (pushed.exit_code == 0) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ASSERT_EQ(pushed.exit_code, 0) << pushed.output;

    // Cloak's config for this run.
    std::ofstream(d_ + "/cloak.toml")
        << "[runtime]\nstate_dir = \"" << d_ << "/run\"\nlog_level = \"debug\"\n"
        << "[hypervisor]\nkernel = \"" << kernel_ << "\"\ninitrd = \"" << initrd_ << "\"\n"
        << "memory_mib = 512\n" << DriverConfig()
        << "[agent]\nboot_timeout = \"120s\"\n"
        // The suite execs and writes stdin: agent policy off (docs/policy.md).
        << "allow_all_policy = true\n";

    // Private containerd, CRI off; PATH finds the shim.
    std::ofstream(d_ + "/containerd.toml")
        << "version = 2\nroot = \"" << d_ << "/root\"\nstate = \"" << d_ << "/state\"\n"
        << "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
        << "[grpc]\n  address = \"" << d_ << "/c.sock\"\n"
        << "[ttrpc]\n  address = \"" << d_ << "/c.sock.ttrpc\"\n"
        << "[debug]\n  level = \"debug\"\n";
    SpawnOptions co;
    co.stdout_path = co.stderr_path = d_ + "/containerd.log";
    co.env = {absl::StrCat("PATH=", shim_dir_, ":", std::getenv("PATH"))};
    // containerd looks in its own working directory first (docs/shim.md).
    co.cwd = shim_dir_;
    auto containerd = Subprocess::Spawn({"containerd", "--config", d_ + "/containerd.toml"}, co);
    ASSERT_TRUE(containerd.ok()) << containerd.status();
    containerd_.emplace(std::move(*containerd));
    for (int i = 0; i < 100 && !Exists(d_ + "/c.sock"); ++i) absl::SleepFor(absl::Milliseconds(100));
    ASSERT_TRUE(Exists(d_ + "/c.sock")) << Slurp(d_ + "/containerd.log");
  }

  void TearDown() override {
    if (!dir_.has_value()) return;
    if (HasFailure()) {
      std::cerr << "---- containerd log (tail) ----\n";
      std::string log = Slurp(d_ + "/containerd.log");
      std::cerr << log.substr(log.size() > 20000 ? log.size() - 20000 : 0) << "\n";
    }
    events_.reset();
    containerd_.reset();  // SIGTERM, then SIGKILL
    // Shims and VMs containerd started: found by our unique paths.
    for (pid_t pid : PidsMentioning(d_)) ::kill(pid, SIGKILL);
    for (pid_t pid : PidsMentioning(d_)) WaitForPidGone(pid, absl::Seconds(2));
    registry_.reset();
    ::umount2((d_ + "/root").c_str(), MNT_DETACH);
  }

  RunResult Run(const std::vector<std::string>& argv, absl::Duration timeout) {
    RunResult r;
    const std::string out = absl::StrCat(d_.empty() ? "/tmp" : d_, "/run-", ++runs_, ".out");
    SpawnOptions o;
    o.stdout_path = o.stderr_path = out;
    o.new_process_group = true;
    const absl::Time start = absl::Now();
    auto p = Subprocess::Spawn(argv, o);
    if (!p.ok()) {
      r.output = p.status().ToString();
      return r;
    }
    auto exit = p->Wait(timeout);
    r.took = absl::Now() - start;
    if (!exit.ok()) {
      p->Stop(absl::Seconds(1));
      r.output = "(timed out) " + Slurp(out);
      return r;
    }
    r.exit_code = exit->exit_code;
    r.output = Slurp(out);
    return r;
  }

  RunResult Ctr(std::vector<std::string> args, absl::Duration timeout = absl::Seconds(240)) {
    std::vector<std::string> argv = {"ctr", "--address", d_ + "/c.sock", "--namespace", "cloake2e"};
    argv.insert(argv.end(), args.begin(), args.end());
    return Run(argv, timeout);
  }

  std::vector<std::string> RunArgs(const std::string& id) {
    return {"run", "--runtime", "io.containerd.cloak.v2", "--runtime-config-path",
            d_ + "/cloak.toml", "--annotation", "io.cloak.image=" + image_, "--rootfs",
            d_ + "/empty", id};
  }

  // As RunArgs, with extra annotations and another Cloak config file.
  std::vector<std::string> RunArgsWith(const std::string& id,
                                       const std::vector<std::string>& annotations,
                                       const std::string& config = "") {
    std::vector<std::string> args = RunArgs(id);
    if (!config.empty()) {
      for (size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] == "--runtime-config-path") args[i + 1] = config;
      }
    }
    // Flags go before the positional ROOTFS and ID.
    for (const std::string& a : annotations) {
      args.insert(args.begin() + 1, {"--annotation", a});
    }
    return args;
  }

  // The [hypervisor] lines that choose the driver ("" for QEMU, the default).
  virtual std::string DriverConfig() const { return ""; }
  // The libvirt URI when the libvirt driver runs the VMs, else "".
  virtual std::string LibvirtUri() const { return ""; }

  // The test bodies, run with each driver (TEST_F below).
  void RunPrintsOutputAndExitCodes();
  void DetachedTaskLifecycleWithEvents();
  void PodContainersShareOneVm();
  void KilledQemuGivesAnExitAndTheTaskDeletes();
  void KilledShimIsCleanedUpByDelete();

  // QEMU processes of this test (their command lines name d_; with libvirt,
  // the QEMU of each domain whose metadata names a state dir under d_).
  std::vector<pid_t> QemuPids() {
    std::vector<pid_t> out;
    if (!LibvirtUri().empty()) return testutil::CloakDomainQemuPids(LibvirtUri(), d_ + "/run");
    for (pid_t pid : PidsMentioning(d_ + "/run")) {
      std::vector<std::string> argv = ProcessCmdline(pid);
      if (!argv.empty() && absl::StrContains(argv[0], "qemu-system")) out.push_back(pid);
    }
    return out;
  }

  // The shim serving container `id`.
  std::vector<pid_t> ShimPids(const std::string& id) {
    std::vector<pid_t> out;
    for (pid_t pid : PidsMentioning("containerd-shim-cloak-v2")) {
      std::vector<std::string> argv = ProcessCmdline(pid);
      for (size_t i = 0; i + 1 < argv.size(); ++i) {
        if (argv[i] == "-id" && argv[i + 1] == id &&
            absl::StrContains(absl::StrJoin(argv, " "), d_)) {
          out.push_back(pid);
        }
      }
    }
    return out;
  }

  // containerd does not wait for a shim it told to shut down, so its exit is
  // checked with a deadline rather than at the instant `ctr` returns.
  bool ShimGone(const std::string& id, absl::Duration timeout = absl::Seconds(15)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!ShimPids(id).empty()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return true;
  }

  bool WaitTaskStatus(const std::string& id, const std::string& status,
                      absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      for (absl::string_view line : absl::StrSplit(Ctr({"task", "ls"}).output, '\n')) {
        if (absl::StartsWith(line, id + " ") && absl::StrContains(line, status)) return true;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    return false;
  }

  bool WaitNoQemu(absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!QemuPids().empty() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(200));
    return QemuPids().empty();
  }

  // Writes a Cloak config like the fixture's with `extra` appended to
  // [hypervisor] (or other sections after it); returns its path.
  std::string WriteConfig(const std::string& name, const std::string& hypervisor_extra,
                          const std::string& tail = "") {
    const std::string path = d_ + "/" + name + ".toml";
    // This build's guest image, unless the case sets its own kernel.
    std::string image;
    if (!absl::StrContains(hypervisor_extra, "kernel =")) {
      image = absl::StrCat("kernel = \"", kernel_, "\"\ninitrd = \"", initrd_, "\"\n");
    }
    std::ofstream(path) << "[runtime]\nstate_dir = \"" << d_ << "/run\"\nlog_level = \"debug\"\n"
                        << "[hypervisor]\nmemory_mib = 512\n" << DriverConfig() << image
                        << hypervisor_extra << "\n"
                        << "[agent]\nboot_timeout = \"120s\"\nallow_all_policy = true\n" << tail;
    return path;
  }

  std::string kernel_, initrd_, shim_dir_, d_, image_;
  int port_ = 0;
  int runs_ = 0;
  std::optional<TempDir> dir_;
  std::optional<Subprocess> registry_;
  std::optional<Subprocess> containerd_;
  std::optional<Subprocess> events_;
};

void ShimE2eTest::RunPrintsOutputAndExitCodes() {
  std::vector<std::string> args = RunArgs("e2e-echo");
  args.insert(args.begin() + 1, "--rm");
  args.insert(args.end(), {"echo", "hello-from-cloak"});
  RunResult r = Ctr(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("hello-from-cloak"));
  std::cerr << "ctr run --rm (boot + pull + run + teardown): " << absl::FormatDuration(r.took)
            << "\n";

  // Log URIs instead of fifos: file:// and binary:// (containerd's logger
  // protocol: stdout on fd 3, stderr on fd 4, close fd 5 when ready).
  args = RunArgs("e2e-file");
  args.insert(args.begin() + 1, {"--rm", "--log-uri", "file://" + d_ + "/file.log"});
  args.insert(args.end(), {"sh", "-c", "echo to-file; echo err-to-file >&2"});
  r = Ctr(args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(Slurp(d_ + "/file.log"), HasSubstr("to-file"));
  EXPECT_THAT(Slurp(d_ + "/file.log"), HasSubstr("err-to-file"));

  std::ofstream(d_ + "/logger.sh") << "#!/bin/sh\nexec 5>&-\ncat <&3 > " << d_
                                   << "/binary.out &\ncat <&4 > " << d_
                                   << "/binary.err\nwait\n";
  std::filesystem::permissions(d_ + "/logger.sh", std::filesystem::perms::owner_all);
  args = RunArgs("e2e-binary");
  args.insert(args.begin() + 1, {"--rm", "--log-uri", "binary://" + d_ + "/logger.sh"});
  args.insert(args.end(), {"sh", "-c", "echo to-binary; echo err-to-binary >&2"});
  r = Ctr(args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (int i = 0; i < 50 && !absl::StrContains(Slurp(d_ + "/binary.err"), "err-to-binary"); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(Slurp(d_ + "/binary.out"), HasSubstr("to-binary"));
  EXPECT_THAT(Slurp(d_ + "/binary.err"), HasSubstr("err-to-binary"));

  args = RunArgs("e2e-exit7");
  args.insert(args.begin() + 1, "--rm");
  args.insert(args.end(), {"sh", "-c", "exit 7"});
  r = Ctr(args);
  EXPECT_EQ(r.exit_code, 7) << r.output;

  // Nothing left: no VM, no shim, no socket, no state.
  absl::SleepFor(absl::Seconds(1));
  EXPECT_TRUE(PidsMentioning(d_ + "/run").empty());
  EXPECT_TRUE(PidsMentioning(d_ + "/c.sock").empty());
  std::error_code ec;
  EXPECT_TRUE(!Exists(d_ + "/run") || std::filesystem::is_empty(d_ + "/run", ec));
  // Every shim removed its socket when it exited (named as containerd
  // names it: its address, the namespace, the container id).
  for (const char* id : {"e2e-echo", "e2e-file", "e2e-binary", "e2e-exit7"}) {
    const std::string socket = SocketPath(d_ + "/c.sock", "cloake2e", id, ShimSocketDir());
    EXPECT_FALSE(Exists(socket)) << "shim socket of " << id << " left behind: " << socket;
  }
}

// Plain `ctr run IMAGE ID CMD`: containerd pulled the image, no annotation,
// no --rootfs. The shim asks containerd for the container's image and its
// digest, and the guest pulls that digest: after the registry's tag moved to
// another image, the container still sees the one containerd pulled.
TEST_F(ShimE2eTest, PlainCtrRunPullsContainerdsImageByDigest) {
  RunResult pulled = Ctr({"image", "pull", "--plain-http", image_}, absl::Seconds(120));
  ASSERT_EQ(pulled.exit_code, 0) << pulled.output;
  std::string digest;
  for (absl::string_view line : absl::StrSplit(Ctr({"image", "ls"}).output, '\n')) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (fields.size() >= 3 && fields[0] == image_) digest = fields[2];
  }
  ASSERT_TRUE(absl::StartsWith(digest, "sha256:")) << Ctr({"image", "ls"}).output;

  // The tag now names another image, with /marker.
  std::ofstream(d_ + "/marker.txt") << "retagged-image\n";
  RunResult made = Run({kSource + "/scripts/make-busybox-image", d_ + "/oci2", "e2e2",
                        d_ + "/marker.txt"},
                       absl::Seconds(60));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  RunResult pushed = Run({"skopeo", "copy", "--dest-tls-verify=false", "oci:" + d_ + "/oci2:e2e2",
                          "docker://" + image_},
                         absl::Seconds(60));
  ASSERT_EQ(pushed.exit_code, 0) << pushed.output;

  RunResult r = Ctr({"run", "--rm", "--runtime", "io.containerd.cloak.v2",
                     "--runtime-config-path", d_ + "/cloak.toml", image_, "e2e-plain", "sh", "-c",
                     "cat /marker 2>/dev/null || echo no-marker; grep -o 'cloak.channel=[a-z]*' "
                     "/proc/cmdline"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("no-marker"));
  EXPECT_THAT(r.output, Not(HasSubstr("retagged-image")));
  // The guest's kernel, not the host's.
  EXPECT_THAT(r.output, HasSubstr("cloak.channel="));
  const std::string guest_ref = absl::StrCat("10.0.2.2:", port_, "/busybox:e2e@", digest);
  EXPECT_THAT(Slurp(d_ + "/containerd.log"), HasSubstr("the guest pulls " + guest_ref));
  std::cerr << "plain ctr run (boot + pull by digest + run): " << absl::FormatDuration(r.took)
            << "\n";

  // A container made without an image (--rootfs) and no annotation is
  // refused, naming what to do.
  r = Ctr({"run", "--rm", "--runtime", "io.containerd.cloak.v2", "--runtime-config-path",
           d_ + "/cloak.toml", "--rootfs", d_ + "/empty", "e2e-noimage", "true"});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("names no image for the guest to pull"));
  EXPECT_TRUE(QemuPids().empty());
}

void ShimE2eTest::DetachedTaskLifecycleWithEvents() {
  SpawnOptions eo;
  eo.stdout_path = eo.stderr_path = d_ + "/events.log";
  auto events = Subprocess::Spawn(
      {"ctr", "--address", d_ + "/c.sock", "--namespace", "cloake2e", "events"}, eo);
  ASSERT_TRUE(events.ok());
  events_.emplace(std::move(*events));

  std::vector<std::string> args = RunArgs("e2e-d");
  args.insert(args.begin() + 1, "-d");
  args.insert(args.end(), {"sleep", "300"});
  RunResult r = Ctr(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The shim's socket while the task runs (the cleanup checks rely on the
  // name).
  EXPECT_TRUE(Exists(SocketPath(d_ + "/c.sock", "cloake2e", "e2e-d", ShimSocketDir())));

  r = Ctr({"task", "exec", "--exec-id", "ex1", "e2e-d", "echo", "exec-output"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("exec-output"));
  r = Ctr({"task", "ps", "e2e-d"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("PID"));
  r = Ctr({"task", "pause", "e2e-d"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = Ctr({"task", "ls"});
  EXPECT_THAT(r.output, HasSubstr("PAUSED"));
  r = Ctr({"task", "resume", "e2e-d"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = Ctr({"task", "metrics", "e2e-d"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("memory.usage"));

  // A tty exec: ctr needs a terminal, which script(1) gives it.
  r = Run({"script", "-qec",
           absl::StrCat("ctr --address ", d_, "/c.sock --namespace cloake2e task exec -t "
                        "--exec-id tty1 e2e-d tty"),
           "/dev/null"},
          absl::Seconds(60));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("/dev/pts/"));

  // An exec whose binary does not exist fails at once (no hang on its fifos).
  r = Ctr({"task", "exec", "--exec-id", "bad1", "e2e-d", "no-such-binary"}, absl::Seconds(60));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("no-such-binary"));
  EXPECT_THAT(r.output, Not(HasSubstr("timed out")));

  // SIGTERM to an exec'd process (not a pid 1, which ignores it): 143.
  SpawnOptions so;
  so.stdout_path = so.stderr_path = d_ + "/exec-term.out";
  auto sleeper = Subprocess::Spawn({"ctr", "--address", d_ + "/c.sock", "--namespace",
                                    "cloake2e", "task", "exec", "--exec-id", "t1", "e2e-d",
                                    "sleep", "300"},
                                   so);
  ASSERT_TRUE(sleeper.ok()) << sleeper.status();
  bool exec_running = false;
  for (int i = 0; i < 150 && !exec_running; ++i) {
    exec_running = absl::StrContains(Slurp(d_ + "/events.log"), "\"exec_id\":\"t1\",\"pid\"");
    if (!exec_running) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(exec_running) << Slurp(d_ + "/events.log");
  r = Ctr({"task", "kill", "--exec-id", "t1", "-s", "TERM", "e2e-d"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  absl::StatusOr<ExitInfo> term = sleeper->Wait(absl::Seconds(60));
  ASSERT_TRUE(term.ok()) << term.status();
  EXPECT_EQ(term->exit_code, 143) << Slurp(d_ + "/exec-term.out");

  // The init process (sleep as pid 1 ignores SIGTERM): SIGKILL, 137.
  r = Ctr({"task", "kill", "-s", "KILL", "e2e-d"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  bool stopped = false;
  for (int i = 0; i < 100 && !stopped; ++i) {
    stopped = absl::StrContains(Ctr({"task", "ls"}).output, "STOPPED");
    if (!stopped) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(stopped);
  // ctr task delete warns with the task's exit status.
  r = Ctr({"task", "delete", "e2e-d"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("exit code 137"));
  r = Ctr({"container", "rm", "e2e-d"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  absl::SleepFor(absl::Seconds(2));
  const std::string log = Slurp(d_ + "/events.log");
  for (const char* topic : {"/tasks/create", "/tasks/start", "/tasks/exec-added",
                            "/tasks/exec-started", "/tasks/paused", "/tasks/resumed",
                            "/tasks/exit", "/tasks/delete"}) {
    EXPECT_THAT(log, HasSubstr(topic));
  }
  EXPECT_TRUE(PidsMentioning(d_ + "/run").empty());
}


void ShimE2eTest::PodContainersShareOneVm() {
  const std::string sandbox = "io.kubernetes.cri.container-type=sandbox";
  const std::string member = "io.kubernetes.cri.container-type=container";
  const std::string pod = "io.kubernetes.cri.sandbox-id=pod1";
  std::vector<std::string> args = RunArgsWith("pod1", {sandbox, pod});
  args.insert(args.begin() + 1, "-d");
  args.insert(args.end(), {"sleep", "300"});
  RunResult r = Ctr(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;

  args = RunArgsWith("app1", {member, pod});
  args.insert(args.begin() + 1, "-d");
  args.insert(args.end(), {"sh", "-c", "echo app1 > /tmp/mark; sleep 300"});
  r = Ctr(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;

  EXPECT_EQ(QemuPids().size(), 1u) << "two containers of one pod must share one VM";
  EXPECT_EQ(ShimPids("pod1").size(), 1u);
  EXPECT_TRUE(ShimPids("app1").empty()) << "app1 must be served by pod1's shim";
  r = Ctr({"task", "exec", "--exec-id", "x1", "app1", "hostname"});
  EXPECT_EQ(r.exit_code, 0) << r.output;

  // Stopping the sandbox stops the VM, and with it the pod's other container.
  r = Ctr({"task", "kill", "-s", "KILL", "pod1"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(WaitTaskStatus("pod1", "STOPPED"));
  r = Ctr({"task", "delete", "pod1"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(WaitNoQemu());
  EXPECT_TRUE(WaitTaskStatus("app1", "STOPPED"));
  EXPECT_EQ(Ctr({"task", "delete", "app1"}).exit_code, 0);
  EXPECT_EQ(Ctr({"container", "rm", "app1", "pod1"}).exit_code, 0);
  absl::SleepFor(absl::Seconds(1));
  EXPECT_TRUE(PidsMentioning(d_ + "/run").empty());
  EXPECT_TRUE(ShimGone("pod1"));
}

void ShimE2eTest::KilledQemuGivesAnExitAndTheTaskDeletes() {
  std::vector<std::string> args = RunArgs("e2e-q");
  args.insert(args.begin() + 1, "-d");
  args.insert(args.end(), {"sleep", "300"});
  RunResult r = Ctr(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<pid_t> qemu = QemuPids();
  ASSERT_EQ(qemu.size(), 1u);
  ::kill(qemu[0], SIGKILL);
  EXPECT_TRUE(WaitTaskStatus("e2e-q", "STOPPED")) << Ctr({"task", "ls"}).output;
  r = Ctr({"task", "delete", "e2e-q"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Ctr({"container", "rm", "e2e-q"}).exit_code, 0);
  absl::SleepFor(absl::Seconds(1));
  EXPECT_TRUE(PidsMentioning(d_ + "/run").empty());
  EXPECT_TRUE(ShimGone("e2e-q"));
}

void ShimE2eTest::KilledShimIsCleanedUpByDelete() {
  std::vector<std::string> args = RunArgs("e2e-s");
  args.insert(args.begin() + 1, "-d");
  args.insert(args.end(), {"sleep", "300"});
  RunResult r = Ctr(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<pid_t> shim = ShimPids("e2e-s");
  ASSERT_EQ(shim.size(), 1u);
  ASSERT_EQ(QemuPids().size(), 1u);
  ::kill(shim[0], SIGKILL);
  // containerd sees the shim go and runs `containerd-shim-cloak-v2 delete`,
  // which stops the VM the dead shim left.
  EXPECT_TRUE(WaitNoQemu(absl::Seconds(60))) << "QEMU outlived its shim";
  EXPECT_TRUE(WaitTaskStatus("e2e-s", "STOPPED", absl::Seconds(10)) ||
              !absl::StrContains(Ctr({"task", "ls"}).output, "e2e-s"));
  Ctr({"task", "delete", "e2e-s"});
  r = Ctr({"container", "rm", "e2e-s"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  absl::SleepFor(absl::Seconds(1));
  EXPECT_TRUE(PidsMentioning(d_ + "/run").empty());
  std::error_code ec;
  EXPECT_TRUE(!Exists(d_ + "/run/e2e-s")) << "the sandbox state dir was left behind";
  // The dead shim could not remove its socket; delete did.
  const std::string socket = SocketPath(d_ + "/c.sock", "cloake2e", "e2e-s", ShimSocketDir());
  EXPECT_FALSE(Exists(socket)) << "the killed shim's socket was left behind: " << socket;
}

TEST_F(ShimE2eTest, BadInputFailsWithAClearErrorAndLeavesNothing) {
  struct Case {
    std::string name;
    std::vector<std::string> annotations;
    std::string config;
    std::vector<std::string> expect;  // all must appear in ctr's output
  };
  const std::vector<Case> cases = {
      {"unknown TEE type", {}, WriteConfig("bogus-tee", "", "[tee]\ntype = \"sgx\"\n"),
       {"tee.type", "sgx"}},
      {"TEE the host lacks", {}, WriteConfig("snp", "", "[tee]\ntype = \"snp\"\n"),
       {"snp"}},
      {"missing kernel", {}, WriteConfig("nokernel", "kernel = \"/nonexistent/vmlinuz\""),
       {"/nonexistent/vmlinuz"}},
      {"malformed annotation", {"io.cloak.hypervisor.memory_mib=lots"}, "",
       {"io.cloak.hypervisor.memory_mib"}},
      {"annotation off the allowlist", {"io.cloak.hypervisor.qemu_path=/bin/sh"}, "",
       {"io.cloak.hypervisor.qemu_path"}},
      {"image that does not exist", {}, "", {"no-such-image"}},
  };
  int n = 0;
  for (const Case& c : cases) {
    const std::string id = absl::StrCat("bad", ++n);
    std::vector<std::string> args = RunArgsWith(id, c.annotations, c.config);
    if (c.name == "image that does not exist") {
      for (std::string& a : args) {
        if (absl::StartsWith(a, "io.cloak.image=")) {
          a = absl::StrCat("io.cloak.image=127.0.0.1:", port_, "/no-such-image:v1");
        }
      }
    }
    args.insert(args.begin() + 1, "--rm");
    args.insert(args.end(), {"true"});
    RunResult r = Ctr(args, absl::Seconds(180));
    EXPECT_NE(r.exit_code, 0) << c.name;
    for (const std::string& e : c.expect) {
      EXPECT_THAT(r.output, HasSubstr(e)) << c.name;
    }
    std::cerr << c.name << " -> " << r.output;
    Ctr({"container", "rm", id});
    absl::SleepFor(absl::Milliseconds(500));
    EXPECT_TRUE(QemuPids().empty()) << c.name << ": a VM was left running";
    EXPECT_TRUE(ShimGone(id)) << c.name << ": a shim was left running";
  }
}


#ifdef CLOAK_KBS_BINARY
// Issue 5's path: an image encrypted with skopeo (ocicrypt JWE) whose key is
// in cloak-kbs runs only after the guest attests (dev: sample evidence) and
// the key-release policy allows it; the host never holds the key.
TEST_F(ShimE2eTest, EncryptedImageRunsOnlyAfterKeyRelease) {
  // Key pair and the encrypted image.
  RunResult r = Run({"openssl", "genrsa", "-out", d_ + "/image.key", "2048"}, absl::Seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Run({"openssl", "rsa", "-in", d_ + "/image.key", "-pubout", "-out", d_ + "/image.pub"},
          absl::Seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The image carries a secret marker. Its plaintext exists on the host
  // only until it is encrypted; afterwards the test searches for it.
  const std::string marker = testutil::RandomMarker("cloak-secret-marker-");
  std::ofstream(d_ + "/marker.txt") << marker << "\n";
  r = Run({kSource + "/scripts/make-busybox-image", d_ + "/oci-secret", "e2e", d_ + "/marker.txt"},
          absl::Seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto files_with_marker = [&](const std::vector<std::string>& dirs) {
    return testutil::FilesHoldingMarker(marker, dirs);
  };
  // The search finds the plaintext image where it is.
  ASSERT_THAT(files_with_marker({d_ + "/oci-secret"}), HasSubstr("/blobs/sha256/"));
  const std::string enc_image = absl::StrCat("127.0.0.1:", port_, "/busybox-enc:e2e");
  r = Run({"skopeo", "copy", "--dest-tls-verify=false", "--encryption-key",
           "jwe:" + d_ + "/image.pub", "oci:" + d_ + "/oci-secret:e2e", "docker://" + enc_image},
          absl::Seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::filesystem::remove_all(d_ + "/oci-secret");
  std::filesystem::remove(d_ + "/marker.txt");

  // cloak-kbs with the private key as a resource, on the host's loopback;
  // the guest reaches it at 10.0.2.2.
  const std::string kbs_state = d_ + "/kbs";
  const std::string kbs = CLOAK_KBS_BINARY;
  r = Run({kbs, "admin", "put-resource", "--state-dir", kbs_state, "default/image-key/e2e",
           "--file", d_ + "/image.key"},
          absl::Seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto set_policy = [&](const std::string& json) {
    std::ofstream(d_ + "/policy.json") << json;
    RunResult p = Run({kbs, "admin", "set-policy", "--state-dir", kbs_state,
                       "default/image-key/e2e", "--file", d_ + "/policy.json"},
                      absl::Seconds(30));
    ASSERT_EQ(p.exit_code, 0) << p.output;
  };
  // A TEST chain for the simulated SNP security processor, which this dev
  // KBS (and only it) trusts.
  std::vector<std::string> kbs_args;
#ifdef CLOAK_SIMSP_BINARY
  r = Run({CLOAK_SIMSP_BINARY, "init-chain", "--dir", d_ + "/chain", "--rsa-bits", "2048"},
          absl::Seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  kbs_args = {"--snp-certs-dir", d_ + "/chain"};
#endif
  auto kbs_proc = testutil::StartDevKbs(kbs, kbs_state, d_, kbs_args);
  ASSERT_TRUE(kbs_proc.ok()) << kbs_proc.status();
  const testutil::DevInitData dev = testutil::DevInitDataFor(kbs_proc->port, "default/image-key/e2e");
  const std::string& initdata = dev.document;
  const std::string& digest_hex = dev.sha384_hex;
  const std::string initdata_annotation =
      "io.cloak.initdata=" + absl::Base64Escape(initdata);

  auto run_encrypted = [&](const std::string& id, bool with_initdata,
                           const std::string& config = "") {
    std::vector<std::string> annotations;
    if (with_initdata) annotations.push_back(initdata_annotation);
    std::vector<std::string> args = RunArgsWith(id, annotations, config);
    for (std::string& a : args) {
      if (absl::StartsWith(a, "io.cloak.image=")) a = "io.cloak.image=" + enc_image;
    }
    args.insert(args.begin() + 1, "--rm");
    // Proves the secret layer is there without printing it (ctr's output
    // lands in a file on the host).
    args.insert(args.end(), {"sh", "-c", "test -s /marker && echo decrypted-in-guest"});
    RunResult out = Ctr(args, absl::Seconds(240));
    Ctr({"container", "rm", id});
    return out;
  };

  // Allowed: sample evidence, this init-data.
  set_policy(absl::StrCat(R"({"allowed_tees":["sample"],"init_data_digests":[")", digest_hex,
                          R"("]})"));
  r = run_encrypted("enc-ok", true);
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n--- kbs log ---\n" << Slurp(d_ + "/kbs.log");
  EXPECT_THAT(r.output, HasSubstr("decrypted-in-guest"));

  // Refused: the policy does not allow dev (sample) evidence.
  set_policy(R"({"allowed_tees":["snp","tdx"],"allow_any_launch":true})");
  r = run_encrypted("enc-nosample", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("sample"));
  EXPECT_THAT(r.output, Not(HasSubstr("decrypted-in-guest")));

  // Refused: the pod's init-data is not the one the policy names.
  set_policy(absl::StrCat(R"({"allowed_tees":["sample"],"init_data_digests":[")",
                          std::string(96, 'a'), R"("]})"));
  r = run_encrypted("enc-initdata", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("init-data"));
  EXPECT_THAT(r.output, Not(HasSubstr("decrypted-in-guest")));

  // Refused: no init-data, so no key broker to ask.
  r = run_encrypted("enc-none", false);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("encrypted"));

#ifdef CLOAK_SIMSP_BINARY
  // Simulated SNP: the shim's SP signs reports with the measurement of what
  // it launched and HOST_DATA = the init-data digest (sha384, truncated to
  // 32 bytes); the KBS runs its real SNP verifier against the TEST chain.
  const std::string sp_config =
      WriteConfig("simsp", "", absl::StrCat("[tee]\nsimulated_snp_chain = \"", d_, "/chain\"\n"));
  const std::string host_data_hex = digest_hex.substr(0, 64);
  // The SP's TEST chain is never taken for real SNP: without allow_simulated
  // the KBS refuses its evidence, naming why.
  set_policy(absl::StrCat(R"({"allowed_tees":["snp"],"init_data_digests":[")", host_data_hex,
                          R"("]})"));
  r = run_encrypted("enc-snp-nosim", true, sp_config);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output + Slurp(d_ + "/kbs.log"), HasSubstr("allow_simulated"));
  EXPECT_THAT(r.output, Not(HasSubstr("decrypted-in-guest")));

  set_policy(absl::StrCat(R"({"allowed_tees":["snp"],"allow_simulated":true,)",
                          R"("init_data_digests":[")", host_data_hex, R"("]})"));
  r = run_encrypted("enc-snp", true, sp_config);
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n--- kbs log ---\n" << Slurp(d_ + "/kbs.log");
  EXPECT_THAT(r.output, HasSubstr("decrypted-in-guest"));
  // The value to pin is computed from the runtime class's config alone —
  // `cloak measure snp --config` — not read from any log: the class's
  // command line holds no per-pod knob (those are in the init-data).
  std::string measurement = std::string(96, '0');
  std::string other_cmdline_measurement = std::string(96, '0');
  std::string other_initrd_measurement = std::string(96, '0');
#ifdef CLOAK_CLI_BINARY
  RunResult m = Run({CLOAK_CLI_BINARY, "measure", "snp", "--config", sp_config}, absl::Seconds(60));
  ASSERT_EQ(m.exit_code, 0) << m.output;
  measurement = std::string(absl::StripAsciiWhitespace(m.output));
  ASSERT_EQ(measurement.size(), 96u) << m.output;
  // The same launch with one command-line byte changed, or another initrd:
  // other values, which the KBS refuses below. The class's command line is
  // the one `cloak measure --config --json` reports it measured.
  m = Run({CLOAK_CLI_BINARY, "measure", "snp", "--config", sp_config, "--json"}, absl::Seconds(60));
  ASSERT_EQ(m.exit_code, 0) << m.output;
  const size_t a = m.output.find("\"append\": \"");
  ASSERT_NE(a, std::string::npos) << m.output;
  std::string cmdline = m.output.substr(a + 11, m.output.find('"', a + 11) - a - 11);
  ASSERT_THAT(cmdline, HasSubstr("cloak.tee=none"));
  EXPECT_THAT(cmdline, Not(HasSubstr("cloak.insecure_registries")));
  auto cloak_measure = [&](const std::string& append, const std::string& initrd) {
    RunResult r2 = Run({CLOAK_CLI_BINARY, "measure", "snp", "--dev-firmware", "--kernel", kernel_,
                        "--initrd", initrd, "--append", append, "--vcpus", "1"},
                       absl::Seconds(60));
    EXPECT_EQ(r2.exit_code, 0) << r2.output;
    return std::string(absl::StripAsciiWhitespace(r2.output));
  };
  EXPECT_EQ(cloak_measure(cmdline, initrd_), measurement);
  std::string changed = cmdline;
  changed.back() = changed.back() == 'x' ? 'y' : 'x';
  other_cmdline_measurement = cloak_measure(changed, initrd_);
  EXPECT_NE(other_cmdline_measurement, measurement);
  other_initrd_measurement = cloak_measure(cmdline, kernel_);  // the kernel as "another initrd"
  EXPECT_NE(other_initrd_measurement, measurement);
#endif

  // The policy pins that measurement: released again.
  set_policy(absl::StrCat(R"({"allowed_tees":["snp"],"allow_simulated":true,)",
                          R"("reference_values":{"measurement":[")", measurement, R"("]}})"));
  r = run_encrypted("enc-snp-pinned", true, sp_config);
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n--- kbs log ---\n" << Slurp(d_ + "/kbs.log");
  EXPECT_THAT(r.output, HasSubstr("decrypted-in-guest"));

  // The measurement of the same launch with one command-line byte changed:
  // refused, naming the measurement, and no container runs.
  set_policy(absl::StrCat(R"({"allowed_tees":["snp"],"allow_simulated":true,)",
                          R"("reference_values":{"measurement":[")", other_cmdline_measurement,
                          R"("]}})"));
  r = run_encrypted("enc-snp-wrong", true, sp_config);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("measurement"));
  EXPECT_THAT(r.output, Not(HasSubstr("decrypted-in-guest")));

  // Another initrd's measurement pinned: refused the same way.
  set_policy(absl::StrCat(R"({"allowed_tees":["snp"],"allow_simulated":true,)",
                          R"("reference_values":{"measurement":[")", other_initrd_measurement,
                          R"("]}})"));
  r = run_encrypted("enc-snp-initrd", true, sp_config);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("measurement"));
  EXPECT_THAT(r.output, Not(HasSubstr("decrypted-in-guest")));
#endif  // CLOAK_SIMSP_BINARY

  absl::SleepFor(absl::Seconds(1));
  EXPECT_TRUE(QemuPids().empty());

  // No plaintext of the image on the host: not in containerd's root or
  // state, the registry, the sandboxes' state, nor anywhere under /run,
  // /dev/shm, /var/lib/containerd or /var/tmp.
  std::vector<std::string> dirs = {d_};
  for (const char* dir : {"/run", "/dev/shm", "/var/lib/containerd", "/var/tmp"}) {
    if (Exists(dir)) dirs.push_back(dir);
  }
  EXPECT_EQ(files_with_marker(dirs), "") << "the secret marker was found on the host";
  std::cerr << "--- kbs log ---\n" << Slurp(d_ + "/kbs.log");
}
#endif  // CLOAK_KBS_BINARY

TEST_F(ShimE2eTest, RunPrintsOutputAndExitCodes) { RunPrintsOutputAndExitCodes(); }
TEST_F(ShimE2eTest, DetachedTaskLifecycleWithEvents) { DetachedTaskLifecycleWithEvents(); }
TEST_F(ShimE2eTest, PodContainersShareOneVm) { PodContainersShareOneVm(); }
TEST_F(ShimE2eTest, KilledQemuGivesAnExitAndTheTaskDeletes) {
  KilledQemuGivesAnExitAndTheTaskDeletes();
}
TEST_F(ShimE2eTest, KilledShimIsCleanedUpByDelete) { KilledShimIsCleanedUpByDelete(); }

// The same cases through the libvirt driver: libvirtd (started here unless
// it runs) launches each VM as a transient domain. Leftover domains of the
// test are destroyed at teardown, after the assertions that none is left.
class ShimLibvirtE2eTest : public ShimE2eTest {
 protected:
  void SetUp() override {
    if (std::string missing = testutil::LibvirtDaemons::MissingPrerequisite(); !missing.empty()) {
      CLOAK_SKIP() << missing;
    }
    scratch_ = TempDir::Create("ckvirt-", "/tmp");
    ASSERT_TRUE(scratch_.ok()) << scratch_.status();
    auto daemons = testutil::LibvirtDaemons::Start(scratch_->path().string());
    ASSERT_TRUE(daemons.ok()) << daemons.status();
    libvirt_ = std::move(*daemons);
    ShimE2eTest::SetUp();
  }
  void TearDown() override {
    ShimE2eTest::TearDown();
    if (libvirt_ != nullptr && !d_.empty()) {
      testutil::DestroyCloakDomainsUnder(libvirt_->uri(), d_);
    }
    libvirt_.reset();
  }
  std::string DriverConfig() const override {
    return absl::StrCat("driver = \"libvirt\"\nlibvirt_uri = \"", libvirt_->uri(), "\"\n");
  }
  std::string LibvirtUri() const override { return libvirt_ ? libvirt_->uri() : ""; }
  std::vector<std::string> Domains() { return testutil::CloakDomainsUnder(libvirt_->uri(), d_); }

  absl::StatusOr<TempDir> scratch_ = absl::UnknownError("not made");
  std::unique_ptr<testutil::LibvirtDaemons> libvirt_;
};

TEST_F(ShimLibvirtE2eTest, RunPrintsOutputAndExitCodes) {
  RunPrintsOutputAndExitCodes();
  EXPECT_TRUE(Domains().empty());
  // The start timeline in the shim's log has libvirt's steps.
  const std::string log = Slurp(d_ + "/containerd.log");
  EXPECT_THAT(log, HasSubstr("step=libvirt-connect"));
  EXPECT_THAT(log, HasSubstr("step=libvirt-create-domain"));
  EXPECT_THAT(log, HasSubstr("step=vm-start"));
  EXPECT_THAT(log, HasSubstr("step=agent-ready"));
}
TEST_F(ShimLibvirtE2eTest, DetachedTaskLifecycleWithEvents) {
  DetachedTaskLifecycleWithEvents();
  EXPECT_TRUE(Domains().empty());
}
TEST_F(ShimLibvirtE2eTest, PodContainersShareOneVm) {
  PodContainersShareOneVm();
  EXPECT_TRUE(Domains().empty());
}
TEST_F(ShimLibvirtE2eTest, KilledQemuGivesAnExitAndTheTaskDeletes) {
  KilledQemuGivesAnExitAndTheTaskDeletes();
  EXPECT_TRUE(Domains().empty()) << "a domain outlived its QEMU";
}
TEST_F(ShimLibvirtE2eTest, KilledShimIsCleanedUpByDelete) {
  KilledShimIsCleanedUpByDelete();
  EXPECT_TRUE(Domains().empty()) << "`delete` left the dead shim's domain";
  EXPECT_THAT(Slurp(d_ + "/containerd.log"), HasSubstr("destroyed the leftover libvirt domain"));
}

TEST_F(ShimLibvirtE2eTest, SnpAndTdxAreRefusedNamingTheLibvirtVersion) {
  for (const char* tee : {"snp", "tdx"}) {
    const std::string id = absl::StrCat("refused-", tee);
    // A TEE needs a firmware path; libvirt refuses before the file matters.
    std::vector<std::string> args = RunArgsWith(
        id, {},
        WriteConfig(id, absl::StrCat("firmware = \"", kernel_, "\""),
                    // A TEE class attests at sandbox creation and needs a key
                    // broker (the shim refuses a pod without one first).
                    absl::StrCat("[tee]\ntype = \"", tee,
                                 "\"\n[kbs]\nurl = \"https://127.0.0.1:1\"\n")));
    args.insert(args.begin() + 1, "--rm");
    args.insert(args.end(), {"true"});
    RunResult r = Ctr(args, absl::Seconds(120));
    EXPECT_NE(r.exit_code, 0) << tee;
    EXPECT_THAT(r.output, HasSubstr(absl::StrCat("tee=", tee, " through libvirt needs libvirt ≥ ")))
        << tee;
    EXPECT_THAT(r.output, HasSubstr("runs libvirt ")) << tee;
    Ctr({"container", "rm", id});
    EXPECT_TRUE(Domains().empty()) << tee;
    EXPECT_TRUE(ShimGone(id)) << tee << ": a shim was left running";
  }
}

}  // namespace
}  // namespace cloak::shim
