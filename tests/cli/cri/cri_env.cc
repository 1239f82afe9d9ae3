#include "tests/cli/cri/cri_env.h"

#include <net/if.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "shim/bundle.h"
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

constexpr char kConflist[] = "e2e/local/cni/10-cloak-bridge.conflist";

std::vector<std::string> Cmdline(pid_t pid) {
  std::string raw = Slurp(absl::StrCat("/proc/", pid, "/cmdline"));
  std::vector<std::string> out;
  for (absl::string_view w : absl::StrSplit(raw, '\0', absl::SkipEmpty())) out.emplace_back(w);
  return out;
}

bool LinkExists(const char* name) { return ::if_nametoindex(name) != 0; }

// Interfaces plugged into bridge `name` (its /sys brif entries).
int BridgePortCount(const char* name) {
  const std::string brif = absl::StrCat("/sys/class/net/", name, "/brif");
  std::error_code ec;
  int n = 0;
  for (std::filesystem::directory_iterator it(brif, ec), end; !ec && it != end; it.increment(ec)) {
    ++n;
  }
  return n;
}

// The conflist of the repo for one run: its bridge, its subnet, and
// host-local's leases under `ipam_dir`.
absl::StatusOr<std::string> ConflistForRun(const std::string& path, const std::string& ipam_dir,
                                           const std::string& bridge, const std::string& prefix) {
  nlohmann::json conf = nlohmann::json::parse(Slurp(path), nullptr, /*allow_exceptions=*/false);
  if (conf.is_discarded() || !conf.contains("plugins") || !conf["plugins"].is_array()) {
    return absl::FailedPreconditionError(
        absl::StrCat("CNI conflist ", path, " is not a JSON conflist with a plugins array"));
  }
  for (auto& plugin : conf["plugins"]) {
    if (!plugin.is_object()) continue;
    if (plugin.value("type", "") == "bridge") plugin["bridge"] = bridge;
    if (plugin.contains("ipam") && plugin["ipam"].value("type", "") == "host-local") {
      plugin["ipam"]["dataDir"] = ipam_dir;
      plugin["ipam"]["ranges"] = nlohmann::json::array(
          {nlohmann::json::array({{{"subnet", prefix + "0/24"}, {"gateway", prefix + "1"}}})});
    }
  }
  return conf.dump(2);
}

}  // namespace

CriEnvOptions CriEnvOptions::ForThisBuild(bool cni) {
  return CriEnvOptions{.build_dir = CLOAK_BUILD_DIR, .source_dir = CLOAK_SOURCE_DIR, .cni = cni};
}

std::string CloakCriBinary() { return CLOAK_CRI_BINARY; }

std::string CriEnv::MissingPrerequisite(const CriEnvOptions& options) {
  if (::geteuid() != 0) return "needs root (containerd, QEMU, mounts)";
  for (const char* tool :
       {"containerd", "qemu-system-x86_64", "docker-registry", "skopeo", "busybox"}) {
    if (Which(tool).empty()) return absl::StrCat(tool, " is not installed");
  }
  if (!Exists(options.build_dir + "/guest-image/vmlinuz") ||
      !Exists(options.build_dir + "/guest-image/initrd.img")) {
    return absl::StrCat("no guest image in ", options.build_dir,
                        "/guest-image (build it: ninja -C ", options.build_dir, " guest-image)");
  }
  if (!Exists(options.build_dir + "/shim/containerd-shim-cloak-v2")) return "shim not built";
  if (options.hypervisor_driver == "libvirt") {
    if (std::string missing = testutil::LibvirtDaemons::MissingPrerequisite(); !missing.empty()) {
      return missing;
    }
  }
  if (options.cni) {
    for (const char* plugin : {"bridge", "host-local", "loopback"}) {
      if (!Exists(absl::StrCat(kCniPluginDir, "/", plugin))) {
        return absl::StrCat("CNI plugin ", kCniPluginDir, "/", plugin,
                            " missing (apt-get install containernetworking-plugins)");
      }
    }
  }
  return "";
}

CriEnv::CriEnv(CriEnvOptions options, TempDir dir)
    : options_(std::move(options)), temp_(std::move(dir)) {
  dir_ = temp_->path().string();
}

absl::StatusOr<std::unique_ptr<CriEnv>> CriEnv::Start(const CriEnvOptions& options) {
  if (std::string missing = MissingPrerequisite(options); !missing.empty()) {
    return absl::FailedPreconditionError(missing);
  }
  auto dir = TempDir::Create("ckcri-", "/tmp");
  if (!dir.ok()) return dir.status();
  std::unique_ptr<CriEnv> env(new CriEnv(options, std::move(*dir)));
  // On failure the destructor stops whatever did start.
  if (absl::Status s = env->StartAll(); !s.ok()) return s;
  return env;
}

CriEnv::~CriEnv() { TearDown(); }

absl::Status CriEnv::StartAll() {
  std::filesystem::create_directories(dir_ + "/logs");
  registry_port_ = FreePort();
  stream_port_ = FreePort();
  std::string registry_address = "127.0.0.1";
  if (options_.cni) {
    // The bridge the CNI plugin would make, made first so the registry can
    // listen on its gateway address: the pods' guests pull over the pod
    // network like any pod reaching a cluster registry.
    // A /24 no address or route of this machine is in yet.
    std::string routes;
    testutil::Shell("ip -4 -o route show; ip -4 -o addr show", &routes);
    for (int i = 0, n = static_cast<int>(::getpid() % 250); i < 250; ++i, n = (n + 1) % 250) {
      const std::string prefix = absl::StrCat("10.89.", n + 1, ".");
      if (!absl::StrContains(routes, prefix)) {
        cni_prefix_ = prefix;
        cni_bridge_ = absl::StrCat("ckcni", n + 1);
        break;
      }
    }
    if (cni_prefix_.empty()) return absl::ResourceExhaustedError("no free /24 in 10.89.0.0/16");
    created_bridge_ = !LinkExists(cni_bridge_.c_str());
    if (created_bridge_ &&
        Run({"ip", "link", "add", cni_bridge_, "type", "bridge"}, absl::Seconds(10)) != 0) {
      return absl::InternalError("create bridge " + cni_bridge_ + ": " + last_output());
    }
    (void)Run({"ip", "addr", "replace", cni_gateway() + "/24", "dev", cni_bridge_},
              absl::Seconds(10));
    if (Run({"ip", "link", "set", cni_bridge_, "up"}, absl::Seconds(10)) != 0) {
      return absl::InternalError("bring up bridge " + cni_bridge_ + ": " + last_output());
    }
    registry_address = cni_gateway();
  }
  auto registry = testutil::StartLocalRegistry(dir_, registry_port_, registry_address);
  if (!registry.ok()) return registry.status();
  registry_.emplace(std::move(*registry));

  // The workload image, and a pause image (the same busybox: CRI pulls and
  // unpacks it on the host; the guest never runs it).
  registry_host_ = absl::StrCat(registry_address, ":", registry_port_);
  image_ = registry_host_ + "/busybox:e2e";
  pause_ = registry_host_ + "/pause:e2e";
  if (Run({options_.source_dir + "/scripts/make-busybox-image", dir_ + "/oci", "e2e"}) != 0) {
    return absl::InternalError("scripts/make-busybox-image failed: " + last_output());
  }
  for (const std::string& ref : {image_, pause_}) {
    if (absl::Status s = Copy("oci:" + dir_ + "/oci:e2e", ref); !s.ok()) return s;
  }

  if (options_.hypervisor_driver == "libvirt") {
    auto libvirt = testutil::LibvirtDaemons::Start(dir_);
    if (!libvirt.ok()) return libvirt.status();
    libvirt_ = std::move(*libvirt);
  }
  if (absl::Status s = WriteConfigs(); !s.ok()) return s;
  std::string config = dir_ + "/containerd.toml";
  if (options_.prepare_containerd) {
    absl::StatusOr<std::string> prepared = options_.prepare_containerd(*this, config);
    if (!prepared.ok()) return prepared.status();
    if (!prepared->empty()) config = *prepared;
  }

  containerd_config_ = config;
  return StartContainerd();
}

absl::Status CriEnv::StartContainerd() {
  const std::string shim_dir =
      options_.shim_dir.empty() ? options_.build_dir + "/shim" : options_.shim_dir;
  SpawnOptions co;
  co.stdout_path = co.stderr_path = dir_ + "/containerd.log";
  co.env = {absl::StrCat("PATH=", shim_dir, ":", std::getenv("PATH"))};
  co.cwd = shim_dir;  // containerd looks in its working directory first (docs/shim.md)
  auto containerd = Subprocess::Spawn({"containerd", "--config", containerd_config_}, co);
  if (!containerd.ok()) return containerd.status();
  containerd_.emplace(std::move(*containerd));
  for (int i = 0; i < 100 && !Exists(dir_ + "/c.sock"); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (!Exists(dir_ + "/c.sock")) {
    return absl::DeadlineExceededError("containerd did not create its socket in 10 s; log:\n" +
                                       ContainerdLogTail());
  }

  auto client = Client::Create({.endpoint = dir_ + "/c.sock", .timeout = absl::Minutes(4)});
  if (!client.ok()) return client.status();
  client_ = std::move(*client);
  // The CRI plugin answers once it has initialised.
  absl::Status version;
  for (int i = 0; i < 100; ++i) {
    version = client_->Version().status();
    if (version.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (!version.ok()) {
    return absl::Status(version.code(), absl::StrCat(version.message(), "\n", ContainerdLogTail()));
  }
  return absl::OkStatus();
}

absl::Status CriEnv::RestartContainerd(absl::Duration down, int signal) {
  client_.reset();
  if (containerd_ && signal == SIGKILL) {
    if (absl::Status s = containerd_->Signal(SIGKILL); !s.ok()) return s;
    absl::StatusOr<ExitInfo> killed = containerd_->Wait(absl::Seconds(10));
    if (!killed.ok()) return killed.status();
    containerd_.reset();
  } else if (containerd_) {
    const ExitInfo stopped = containerd_->Stop(absl::Seconds(10));
    if (stopped.term_signal == SIGKILL) {
      return absl::InternalError("containerd did not stop on SIGTERM within 10 s");
    }
    containerd_.reset();
  }
  std::error_code ec;
  std::filesystem::remove(dir_ + "/c.sock", ec);  // so the wait below sees the new one
  absl::SleepFor(down);
  return StartContainerd();
}

absl::Status CriEnv::Copy(const std::string& source, const std::string& ref,
                          const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {"skopeo", "copy", "--dest-tls-verify=false"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(source);
  argv.push_back("docker://" + ref);
  int rc = -1;
  for (int i = 0; i < 50 && rc != 0; ++i) {
    rc = Run(argv);
    if (rc != 0) absl::SleepFor(absl::Milliseconds(200));
  }
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("skopeo copy to ", ref, " (registry log in ", dir_,
                                            "/registry.log): ", last_output()));
  }
  return absl::OkStatus();
}

absl::Status CriEnv::PushImage(const std::string& ref, const ImageOptions& options) {
  const std::string layout = absl::StrCat(dir_, "/oci-", ++images_);
  if (Run({options_.source_dir + "/scripts/make-busybox-image", layout, "t",
           options.marker_file}) != 0) {
    return absl::InternalError("scripts/make-busybox-image failed: " + last_output());
  }
  std::vector<std::string> extra;
  if (!options.encryption_pubkey.empty()) {
    extra = {"--encryption-key", "jwe:" + options.encryption_pubkey};
  }
  absl::Status copied = Copy("oci:" + layout + ":t", ref, extra);
  std::error_code ec;
  std::filesystem::remove_all(layout, ec);
  return copied;
}

absl::Status CriEnv::WriteConfigs() {
  const std::string kernel = options_.build_dir + "/guest-image/vmlinuz";
  const std::string initrd = options_.build_dir + "/guest-image/initrd.img";
  // One Cloak config per handler: dev boots here; snp and tdx are configured
  // the same way (their own TEE type) and cannot boot on this machine.
  for (const char* tee : {"none", "snp", "tdx"}) {
    const std::string name = std::string(tee) == "none" ? "dev" : tee;
    std::ofstream(absl::StrCat(dir_, "/cloak-", name, ".toml"))
        << "[runtime]\nstate_dir = \"" << dir_ << "/run\"\nlog_level = \"debug\"\n"
        << "[hypervisor]\nkernel = \"" << kernel << "\"\ninitrd = \"" << initrd << "\"\n"
        << "memory_mib = " << options_.memory_mib << "\n"
        << "driver = \"" << options_.hypervisor_driver << "\"\n"
        << (libvirt_ ? absl::StrCat("libvirt_uri = \"", libvirt_->uri(), "\"\n") : "")
        << "[tee]\ntype = \"" << tee << "\"\n"
        << "[agent]\nboot_timeout = \"120s\"\n"
        << "allow_all_policy = " << (options_.allow_all_policy ? "true" : "false") << "\n"
        // Under CRI the VM boots for the sandbox, before any container's
        // image is known: the plain-HTTP registry is listed here (the shim
        // rewrites 127.0.0.1 to 10.0.2.2 for the guest).
        << "[image]\ninsecure_registries = [\"" << registry_host_ << "\"]\n";
  }

  std::string cni_bin = dir_ + "/cni/bin", cni_conf = dir_ + "/cni/conf";
  std::filesystem::create_directories(cni_conf);
  if (options_.cni) {
    cni_bin = kCniPluginDir;
    auto conflist = ConflistForRun(options_.source_dir + "/" + kConflist, dir_ + "/cni/ipam",
                                   cni_bridge_, cni_prefix_);
    if (!conflist.ok()) return conflist.status();
    std::ofstream(cni_conf + "/10-cloak-bridge.conflist") << *conflist;
  }

  const std::string cri = "[plugins.\"io.containerd.grpc.v1.cri\"";
  std::ofstream toml(dir_ + "/containerd.toml");
  toml << "version = 2\nroot = \"" << dir_ << "/root\"\nstate = \"" << dir_ << "/state\"\n"
       << "[grpc]\n  address = \"" << dir_ << "/c.sock\"\n"
       << "[ttrpc]\n  address = \"" << dir_ << "/c.sock.ttrpc\"\n"
       << "[debug]\n  level = \"debug\"\n"
       << cri << "]\n"
       << "  sandbox_image = \"" << pause_ << "\"\n"
       << "  stream_server_address = \"127.0.0.1\"\n"
       << "  stream_server_port = \"" << stream_port_
       << "\"\n"
       // Pod netns mounts under <dir>/state, where teardown finds them.
       << "  netns_mounts_under_state_dir = true\n"
       << cri << ".cni]\n  bin_dir = \"" << cni_bin << "\"\n  conf_dir = \"" << cni_conf
       << "\"\n  max_conf_num = 1\n"
       << cri << ".containerd]\n"
       << (options_.cloak_runtimes ? "  default_runtime_name = \"cloak-dev\"\n" : "");
  for (const char* handler : {"dev", "snp", "tdx"}) {
    if (!options_.cloak_runtimes) break;
    toml << cri << ".containerd.runtimes.cloak-" << handler << "]\n"
         << "  runtime_type = \"io.containerd.cloak.v2\"\n"
         << "  pod_annotations = [\"io.cloak.*\"]\n"
         << cri << ".containerd.runtimes.cloak-" << handler << ".options]\n"
         << "  ConfigPath = \"" << dir_ << "/cloak-" << handler << ".toml\"\n";
  }
  toml << cri << ".registry.mirrors.\"" << registry_host_ << "\"]\n"
       << "  endpoint = [\"http://" << registry_host_ << "\"]\n";
  if (!toml.good()) return absl::InternalError("cannot write " + dir_ + "/containerd.toml");
  return absl::OkStatus();
}

void CriEnv::TearDown() {
  // Best effort through CRI first, so containerd unmounts what it mounted
  // and CNI releases the pods' addresses.
  // Every pod containerd knows, not only the tracked ones. Each removed
  // pod's shim then exits by itself and removes its socket; a shim killed
  // below cannot, so its socket is removed here afterwards.
  std::vector<std::string> all = pods_;
  if (client_) {
    if (auto listed = client_->ListPodSandbox(); listed.ok()) {
      for (const v1::PodSandbox& p : *listed) {
        if (std::find(all.begin(), all.end(), p.id()) == all.end()) all.push_back(p.id());
      }
    }
    for (const std::string& pod : all) {
      (void)client_->StopPodSandbox(pod);
      (void)client_->RemovePodSandbox(pod);
    }
    for (int i = 0; i < 100 && !ShimPids().empty(); ++i) absl::SleepFor(absl::Milliseconds(100));
  }
  pods_.clear();
  client_.reset();
  containerd_.reset();  // SIGTERM, then SIGKILL
  // Shims and VMs containerd started: found by our unique paths.
  testutil::KillMentioning(dir_);
  if (libvirt_) {
    // Domains the killed shims left (libvirtd, not they, runs their QEMU).
    testutil::DestroyCloakDomainsUnder(libvirt_->uri(), dir_);
    libvirt_.reset();  // stops the daemons this run started
  }
  for (const std::string& pod : all) {
    std::error_code ec;
    std::filesystem::remove(shim::SocketPath(dir_ + "/c.sock", "k8s.io", pod), ec);
  }
  registry_.reset();
  // Mounts under our root and state (snapshots, sandbox shm, pod netns).
  testutil::UnmountUnder(dir_);
  // Only a bridge this run made, and only once no pod of another run on this
  // machine is plugged into it.
  if (created_bridge_ && LinkExists(cni_bridge_.c_str()) &&
      BridgePortCount(cni_bridge_.c_str()) == 0) {
    (void)Run({"ip", "link", "delete", cni_bridge_}, absl::Seconds(10));
  }
}

v1::PodSandboxConfig CriEnv::PodConfig(const std::string& name) const {
  v1::PodSandboxConfig pod;
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_namespace_("default");
  pod.mutable_metadata()->set_uid(name + "-uid");
  pod.set_log_directory(dir_ + "/logs/" + name);
  pod.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
      options_.cni ? v1::POD : v1::NODE);
  return pod;
}

absl::StatusOr<std::string> CriEnv::RunPod(const v1::PodSandboxConfig& config,
                                           const std::string& handler) {
  auto id = client_->RunPodSandbox(config, handler);
  if (id.ok()) TrackPod(*id);
  return id;
}

void CriEnv::TrackPod(const std::string& pod_id) { pods_.push_back(pod_id); }

void CriEnv::ForgetPod(const std::string& pod_id) { std::erase(pods_, pod_id); }

std::vector<pid_t> CriEnv::QemuPidsMentioning(const std::string& needle) const {
  std::vector<pid_t> out;
  for (pid_t pid : PidsMentioning(dir_)) {
    std::vector<std::string> argv = Cmdline(pid);
    if (argv.empty() || !absl::StrContains(argv[0], "qemu-system")) continue;
    for (const std::string& arg : argv) {
      if (absl::StrContains(arg, needle)) {
        out.push_back(pid);
        break;
      }
    }
  }
  if (libvirt_) {
    for (pid_t pid : testutil::CloakDomainQemuPids(libvirt_->uri(), dir_, needle)) {
      out.push_back(pid);
    }
  }
  return out;
}

std::vector<pid_t> CriEnv::QemuPids() const {
  std::vector<pid_t> out = QemuPidsMentioning(dir_);
  if (libvirt_) {
    for (pid_t pid : testutil::CloakDomainQemuPids(libvirt_->uri(), dir_)) out.push_back(pid);
  }
  return out;
}

std::vector<pid_t> CriEnv::ShimPids() const {
  std::vector<pid_t> out;
  for (pid_t pid : PidsMentioning(dir_)) {
    std::vector<std::string> argv = Cmdline(pid);
    if (!argv.empty() && absl::StrContains(argv[0], "containerd-shim-cloak-v2")) {
      out.push_back(pid);
    }
  }
  return out;
}

int CriEnv::Run(const std::vector<std::string>& argv, absl::Duration timeout) {
  return testutil::RunToFile(argv, dir_ + "/run.out", timeout);
}

std::string CriEnv::last_output() const { return Slurp(dir_ + "/run.out"); }

std::string CriEnv::ContainerdLogTail(size_t bytes) const {
  std::string log = Slurp(dir_ + "/containerd.log");
  return log.substr(log.size() > bytes ? log.size() - bytes : 0);
}

}  // namespace cloak::cri
