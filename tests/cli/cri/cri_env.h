// CriEnv: the world a CRI e2e test runs in, started once per test and torn
// down by pid even when the test fails.
//
//   - a private containerd 1.6 (its own root, state and sockets under a temp
//     dir) with its CRI plugin on, the runtime handlers cloak-dev, cloak-snp
//     and cloak-tdx (each with its own ConfigPath; snp/tdx cannot boot here),
//     and its streaming server (Exec, Attach) on 127.0.0.1 and a free port;
//   - a private docker-registry on 127.0.0.1 (with CNI: on the bridge's
//     gateway address) with a busybox image and a pause image made from it
//     by scripts/make-busybox-image;
//   - optionally CNI: Debian's plugins in /usr/lib/cni and the one network of
//     e2e/local/cni/10-cloak-bridge.conflist, given this run's own bridge and
//     subnet (see cni_bridge()) (host-local
//     IPAM whose leases live under this run's dir).
//
// Teardown: every pod the test ran (TrackPod) is stopped and removed through
// CRI, then containerd is stopped, shims and QEMUs started under this run's
// dir are killed by pid, the registry is stopped, mounts and netns mounts
// under the dir are unmounted, and a CNI bridge this run created is deleted.
#ifndef CLOAK_TESTS_CRI_CRI_ENV_H_
#define CLOAK_TESTS_CRI_CRI_ENV_H_

#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/cri/client.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "k8s/cri/v1/api.pb.h"
#include "tests/util/libvirt.h"
#include "tests/util/skip.h"

namespace cloak::cri {

class CriEnv;

struct CriEnvOptions {
  // The options of this build and source tree (the defaults below).
  static CriEnvOptions ForThisBuild(bool cni = false);

  // This build's directory (guest image, shim) and the source tree (scripts,
  // the CNI conflist).
  std::string build_dir;
  std::string source_dir;
  // Wire containerd's CRI to CNI (the bridge network of e2e/local/cni).
  bool cni = false;
  // Guest memory of each pod's VM.
  int memory_mib = 512;
  // [agent] allow_all_policy of the cloak-* runtimes: the suites exec into
  // containers, which the agent's built-in default policy refuses
  // (docs/policy.md). false: the pods run under their measured policy.
  bool allow_all_policy = true;
  // false: containerd's config gets no cloak-* runtimes (a node's config
  // before Cloak is installed); `prepare_containerd` is then expected to add
  // them.
  bool cloak_runtimes = true;
  // Called after the registry is up and the configs are written, before
  // containerd starts, with the path of the containerd config written: it
  // returns the config containerd is to run on (the cluster installer's
  // test installs into a scratch root here). Empty: the written one.
  std::function<absl::StatusOr<std::string>(const CriEnv& env, const std::string& written)>
      prepare_containerd = nullptr;
  // Where containerd finds containerd-shim-cloak-v2 (its working directory
  // and first PATH entry). Empty: this build's shim/.
  std::string shim_dir = "";
  // hypervisor.driver of the Cloak configs: "qemu", or "libvirt" (the run
  // then starts libvirt's daemons unless they are running,
  // tests/util/libvirt.h).
  std::string hypervisor_driver = "qemu";
};

inline constexpr char kCniPluginDir[] = "/usr/lib/cni";

// This build's cloak-cri binary.
std::string CloakCriBinary();

// An image CriEnv::PushImage makes: the host's busybox in one layer
// (scripts/make-busybox-image).
struct ImageOptions {
  // Copied into the image as /marker (empty: none).
  std::string marker_file = "";
  // An RSA public key (PEM) the layer is encrypted to with skopeo (`jwe:`);
  // empty: not encrypted.
  std::string encryption_pubkey = "";
};

class CriEnv {
 public:
  // Why this environment cannot run here ("" when it can): not root, a tool
  // or the guest image missing. Tests CLOAK_SKIP() with it.
  static std::string MissingPrerequisite(const CriEnvOptions& options);

  static absl::StatusOr<std::unique_ptr<CriEnv>> Start(const CriEnvOptions& options);
  ~CriEnv();
  CriEnv(const CriEnv&) = delete;
  CriEnv& operator=(const CriEnv&) = delete;

  Client& client() { return *client_; }
  // The run's directory; every path of the run is under it.
  const std::string& dir() const { return dir_; }
  // containerd's socket as "unix:///…" (for cloak-cri -r).
  std::string endpoint() const { return "unix://" + dir_ + "/c.sock"; }
  // containerd's socket path.
  std::string socket() const { return dir_ + "/c.sock"; }
  const std::string& registry_host() const { return registry_host_; }
  const std::string& image() const { return image_; }
  const std::string& pause_image() const { return pause_; }
  int stream_port() const { return stream_port_; }
  // With CNI: the run's bridge, its pod addresses' prefix ("10.89.N.") and
  // its gateway (the host's address on the bridge, "10.89.N.1"). The
  // registry listens on the gateway, so containerd on the host and the
  // pods' guests pull with the same reference over the pod network.
  const std::string& cni_bridge() const { return cni_bridge_; }
  const std::string& cni_prefix() const { return cni_prefix_; }
  std::string cni_gateway() const { return cni_prefix_ + "1"; }

  // Builds an image (see ImageOptions) and pushes it to this run's registry
  // as `ref` (registry_host()/name:tag). The image's layout is removed once
  // pushed, so its plaintext is left only where `options.marker_file` is.
  absl::Status PushImage(const std::string& ref, const ImageOptions& options = {});

  // A pod config: host network without CNI, the pod network with it; its log
  // directory is <dir>/logs/<name>.
  runtime::v1::PodSandboxConfig PodConfig(const std::string& name) const;
  // RunPodSandbox with `handler`, remembered for teardown.
  absl::StatusOr<std::string> RunPod(const runtime::v1::PodSandboxConfig& config,
                                     const std::string& handler = "cloak-dev");
  // Remembers a pod for teardown / forgets one the test removed itself.
  void TrackPod(const std::string& pod_id);
  void ForgetPod(const std::string& pod_id);

  // QEMU processes and shims of this run (their command lines name dir();
  // with libvirt, the QEMU of the domains whose metadata names a state dir
  // under dir()).
  std::vector<pid_t> QemuPids() const;
  std::vector<pid_t> ShimPids() const;
  // QEMU processes whose command line (with libvirt: whose domain's
  // sandbox id) also mentions `needle` (a sandbox id).
  std::vector<pid_t> QemuPidsMentioning(const std::string& needle) const;

  // Stops containerd (SIGTERM, as systemd does; or SIGKILL, as a crash or
  // the OOM killer; its shims keep running), waits `down`, and starts it
  // again on the same config, root and state; client() is a new connection
  // afterwards.
  absl::Status RestartContainerd(absl::Duration down = absl::Seconds(2), int signal = SIGTERM);
  pid_t containerd_pid() const { return containerd_ ? containerd_->pid() : -1; }

  // Runs argv to completion, its output in <dir>/run.out (see last_output());
  // its exit code, -1 if it could not run or timed out.
  int Run(const std::vector<std::string>& argv, absl::Duration timeout = absl::Seconds(120));
  std::string last_output() const;

  // The tail of containerd's log, for a failed test's output.
  std::string ContainerdLogTail(size_t bytes = 30000) const;
  // The libvirt URI of the run's domains ("" with the qemu driver).
  std::string libvirt_uri() const { return libvirt_ ? libvirt_->uri() : ""; }

 private:
  explicit CriEnv(CriEnvOptions options, TempDir dir);
  absl::Status StartAll();
  // Starts containerd on containerd_config_ and waits for its CRI plugin.
  absl::Status StartContainerd();
  absl::Status WriteConfigs();
  // skopeo copy of `source` (a transport:reference) to docker://`ref`,
  // retried while the registry comes up; `extra` goes before the names.
  absl::Status Copy(const std::string& source, const std::string& ref,
                    const std::vector<std::string>& extra = {});
  void TearDown();

  CriEnvOptions options_;
  std::optional<TempDir> temp_;
  std::string dir_, registry_host_, image_, pause_;
  int registry_port_ = 0, stream_port_ = 0;
  // With CNI: this run's own bridge and /24 (10.89.N.0/24, N free on this
  // machine when the run starts), so runs at the same time never share a
  // bridge or hand out the same pod address.
  std::string cni_bridge_, cni_prefix_;
  int images_ = 0;
  bool created_bridge_ = false;
  std::optional<Subprocess> registry_;
  std::optional<Subprocess> containerd_;
  std::string containerd_config_;
  std::unique_ptr<Client> client_;
  std::vector<std::string> pods_;
  std::unique_ptr<testutil::LibvirtDaemons> libvirt_;
};

}  // namespace cloak::cri

#endif  // CLOAK_TESTS_CRI_CRI_ENV_H_
