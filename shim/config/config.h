// Typed host configuration for the shim (and the settings it hands the
// agent), read once from TOML, validated, then passed around by const&.
//
//   ASSIGN_OR_RETURN(ConfigFile file, LoadConfigFromSearchPath(options.config_path));
//   ASSIGN_OR_RETURN(Config pod, ApplyAnnotations(file.config, spec_annotations));
//
// Every key, its type and its default is documented in config/config.toml,
// which parses to exactly DefaultConfig() (a unit test holds them together).
// Errors are absl::Status: InvalidArgument for a bad file or value (the
// message names the dotted key, the file and the line, and what is allowed),
// NotFound for a missing file, PermissionDenied for an annotation that is not
// on the allowlist.
#ifndef CLOAK_SHIM_CONFIG_CONFIG_H_
#define CLOAK_SHIM_CONFIG_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cloak::config {

// [runtime]: the shim itself.
struct RuntimeConfig {
  // spdlog level: "trace", "debug", "info", "warn", "error", "off".
  std::string log_level = "info";
  // Per-sandbox state (QMP and agent sockets, console log). Absolute.
  std::string state_dir = "/run/cloak";
  // Annotations (`io.cloak.<section>.<key>`) a pod may use to override this
  // file. Only keys in OverridableKeys() may appear here.
  std::vector<std::string> annotation_allowlist = {
      "io.cloak.hypervisor.memory_mib",
      "io.cloak.hypervisor.vcpus",
  };

  friend bool operator==(const RuntimeConfig&, const RuntimeConfig&) = default;
};

enum class HypervisorDriver { kQemu, kLibvirt };
enum class Accel { kAuto, kKvm, kTcg };

// [hypervisor]: how the pod VM is launched.
struct HypervisorConfig {
  HypervisorDriver driver = HypervisorDriver::kQemu;
  // QEMU binary (driver "qemu"). Absolute.
  std::string qemu_path = "/usr/bin/qemu-system-x86_64";
  // libvirt connection URI (driver "libvirt").
  std::string libvirt_uri = "qemu:///system";
  std::string machine = "q35";
  // kAuto: KVM when it is usable (not kvm_pvm), else TCG, logged either way.
  Accel accel = Accel::kAuto;
  // QEMU -cpu model; empty lets the driver choose (it depends on accel/TEE).
  std::string cpu_model;
  // VM memory for a pod that states no memory limit. A pod with a limit
  // gets limit + pod_memory_overhead_mib (shim/vm_sizing.h).
  int64_t memory_mib = 2048;
  // What the guest needs besides the pod's containers: kernel, agent, the
  // unpacked initramfs and the pulled image layers (docs/performance.md).
  int64_t pod_memory_overhead_mib = 384;
  // vCPUs for a pod without a CPU limit; with one, ceil(quota / period), at
  // most the host's CPUs (not on classes whose launch measures the count).
  int64_t vcpus = 1;
  // false: every VM gets memory_mib and vcpus, whatever the pod asks.
  bool size_from_pod = true;
  // Under TCG, QEMU's translated-code buffer (-accel tcg,tb-size=N) in MiB;
  // 0 keeps QEMU's default (1 GiB in QEMU 7.2). No effect under KVM.
  int64_t tcg_tb_size_mib = 32;
  // Guest kernel and initrd for direct boot. Absolute.
  std::string kernel = "/usr/local/share/cloak/vmlinuz";
  std::string initrd = "/usr/local/share/cloak/initrd.img";
  // Appended to the kernel command line the driver builds.
  std::string kernel_params;
  // Firmware passed with -bios; empty uses QEMU's default. SNP and TDX need
  // an OVMF build for them (Debian's ovmf has none).
  std::string firmware;
  // Keep the guest serial console in <state_dir>/<sandbox>/console.log.
  bool console_log = true;
  // console.log's cap: at it the file becomes console.log.1 and starts over
  // (shim/hypervisor/console_log.h, ConsoleLogPump).
  int64_t console_log_max_bytes = int64_t{1} << 20;

  friend bool operator==(const HypervisorConfig&, const HypervisorConfig&) = default;
};

enum class TeeType { kNone, kSnp, kTdx };

// [tee.snp]: properties of QEMU's sev-snp-guest object (QEMU 9.1+).
struct SnpConfig {
  // C-bit position (CPUID 0x8000001F EBX[5:0]); 51 on Milan and Genoa.
  int64_t cbitpos = 51;
  int64_t reduced_phys_bits = 1;
  // Guest policy; bit 17 is reserved and must be set. QEMU's default.
  uint64_t policy = 0x30000;
  // Measure kernel, initrd and command line (direct boot).
  bool kernel_hashes = true;

  friend bool operator==(const SnpConfig&, const SnpConfig&) = default;
};

// [tee.tdx]: properties of QEMU's tdx-guest object (QEMU 10.1+).
struct TdxConfig {
  // Where the host's quote generation service listens: an absolute unix
  // socket path, or "vsock:<cid>:<port>".
  std::string quote_generation_socket = "/var/run/tdx-qgs/qgs.socket";
  // Linux guests need this on.
  bool sept_ve_disable = true;

  friend bool operator==(const TdxConfig&, const TdxConfig&) = default;
};

// [tee]: which TEE the pod VM runs in; kNone is the dev fallback.
struct TeeConfig {
  TeeType type = TeeType::kNone;
  // Development only, with type kNone: a simulated SNP security processor
  // (shim/simsp) signs reports for the guest with the TEST chain in this
  // directory (`cloak-simsp init-chain`). Empty: off.
  std::string simulated_snp_chain;
  SnpConfig snp;
  TdxConfig tdx;

  friend bool operator==(const TeeConfig&, const TeeConfig&) = default;
};

enum class AgentChannel { kAuto, kVsock, kSerial };

// [agent]: how the shim reaches cloak-agent in the guest.
struct AgentConfig {
  // kAuto: vsock when the host has /dev/vhost-vsock, else virtio-serial.
  AgentChannel channel = AgentChannel::kAuto;
  int64_t vsock_port = 1024;
  // From launching the VM until the agent answers.
  absl::Duration boot_timeout = absl::Seconds(60);
  // Default deadline of one agent request.
  absl::Duration request_timeout = absl::Seconds(30);
  // After boot the shim probes the agent (Health) this often...
  absl::Duration health_interval = absl::Seconds(10);
  // ...and an agent that does not answer a probe within this is hung: the
  // sandbox goes not-ready, its tasks exit, the VM is stopped. The same bound
  // escalates a kill, delete or sandbox stop the agent does not answer.
  absl::Duration health_timeout = absl::Seconds(5);
  // Guest agent log level, same names as runtime.log_level.
  std::string log_level = "info";
  // Turns the agent policy off (kernel parameter cloak.policy=allow-all,
  // measured with the command line): the host may exec, write stdin, ...
  // Development and tests only (docs/policy.md).
  bool allow_all_policy = false;

  friend bool operator==(const AgentConfig&, const AgentConfig&) = default;
};

// [kbs]: the key broker the guest attests to.
struct KbsConfig {
  // http(s) base URL; empty means no KBS (only unencrypted images).
  std::string url;
  // PEM CA bundle for the KBS's TLS certificate; empty uses the guest's
  // trust store. Absolute.
  std::string ca_file;

  friend bool operator==(const KbsConfig&, const KbsConfig&) = default;
};

// [image]: defaults for pulling images inside the guest.
struct ImageConfig {
  absl::Duration pull_timeout = absl::Minutes(10);
  // Layers fetched in parallel.
  int64_t max_concurrent_downloads = 3;
  // Registries ("host" or "host:port") the guest may use over plain HTTP.
  std::vector<std::string> insecure_registries;

  friend bool operator==(const ImageConfig&, const ImageConfig&) = default;
};

// The whole file. Treat as immutable once returned by a parser.
struct Config {
  RuntimeConfig runtime;
  HypervisorConfig hypervisor;
  TeeConfig tee;
  AgentConfig agent;
  KbsConfig kbs;
  ImageConfig image;

  friend bool operator==(const Config&, const Config&) = default;
};

// The built-in defaults (the member initialisers above).
Config DefaultConfig();

// Parses TOML text. `source_name` (usually the path) is used in errors.
absl::StatusOr<Config> ParseConfig(absl::string_view text, absl::string_view source_name);

// Reads and parses the file at `path`. NotFound if it does not exist.
absl::StatusOr<Config> LoadConfig(absl::string_view path);

// Lookup order, first existing wins:
//   1. `explicit_path` (containerd runtime option ConfigPath) if non-empty:
//      it must exist (NotFound otherwise, never a silent fallback);
//   2. SysconfConfigPath() (/etc/cloak/config.toml);
//   3. DataDirConfigPath() (<CLOAK_DATA_DIR>/config.toml);
//   4. built-in defaults (path "").
std::string SysconfConfigPath();
std::string DataDirConfigPath();

// Returns the file to load, or "" for built-in defaults. `search_path` are
// the fallbacks tried after `explicit_path`. A path that exists but cannot be
// examined (e.g. EACCES) is an error, not skipped.
absl::StatusOr<std::string> ResolveConfigPath(absl::string_view explicit_path,
                                              const std::vector<std::string>& search_path);

struct ConfigFile {
  // The file read, or "" when the built-in defaults were used.
  std::string path;
  Config config;
};

// ResolveConfigPath with {SysconfConfigPath(), DataDirConfigPath()}, then
// LoadConfig (or DefaultConfig()).
absl::StatusOr<ConfigFile> LoadConfigFromSearchPath(absl::string_view explicit_path);

// Every key the parser accepts, as dotted paths ("hypervisor.memory_mib"),
// in the order of config/config.toml.
const std::vector<std::string>& ConfigKeys();

// Annotations `io.cloak.<section>.<key>` that may ever be put on
// runtime.annotation_allowlist. Host paths, the TEE type and anything else a
// pod must not choose are never overridable.
const std::vector<std::string>& OverridableKeys();

// Returns `config` with the pod's `io.cloak.<section>.<key>` annotations
// applied. Other annotations (including io.cloak.image, io.cloak.policy,
// io.cloak.initdata) are ignored. PermissionDenied names an annotation for a
// known key that is not on runtime.annotation_allowlist; InvalidArgument for
// an unknown key or a bad value.
absl::StatusOr<Config> ApplyAnnotations(const Config& config,
                                        const std::map<std::string, std::string>& annotations);

// Names as written in the file.
absl::string_view HypervisorDriverName(HypervisorDriver driver);
absl::string_view AccelName(Accel accel);
absl::string_view TeeTypeName(TeeType type);
absl::string_view AgentChannelName(AgentChannel channel);

}  // namespace cloak::config

#endif  // CLOAK_SHIM_CONFIG_CONFIG_H_
