// VmConfig: everything the hypervisor layer needs to launch one sandbox VM.
//
// A plain value type. The shim fills it from its typed configuration and the
// sandbox's state directory; nothing here reads files or the environment.
// Paths are absolute. Enumerations have `auto` values that are resolved
// against HostCapabilities (host_capabilities.h) when the VM is created.
#ifndef CLOAK_SHIM_HYPERVISOR_VM_CONFIG_H_
#define CLOAK_SHIM_HYPERVISOR_VM_CONFIG_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "shim/config/config.h"

namespace cloak::shim::hypervisor {

// One set of enumerations for the whole shim: the configuration's own
// (shim/config/config.h), so nothing is converted through strings.
//   Accel         kAuto: KVM when usable, else TCG (ResolveAccel).
//   TeeType       the confidential-computing technology of the launch.
//   AgentChannel  kAuto: vsock when /dev/vhost-vsock exists, else
//                 virtio-serial (ResolveChannel).
using config::Accel;
using config::AccelName;
using config::AgentChannel;
using config::AgentChannelName;
using config::TeeType;
using config::TeeTypeName;

// AMD SEV-SNP launch parameters (docs/formats.md, "Launch parameters"; QEMU ≥ 9.1).
struct SnpConfig {
  // C-bit position, CPUID 0x8000001F EBX[5:0]: 51 on Milan and Genoa.
  int cbitpos = 51;
  int reduced_phys_bits = 1;
  // Guest policy (docs/formats.md). 0x30000 = SMT allowed + reserved bit 17.
  uint64_t policy = 0x30000;
  // Measure kernel, initrd and command line into the launch digest. Needs a
  // direct-boot kernel and an OVMF built from OvmfPkg/AmdSev.
  bool kernel_hashes = true;
  // HOST_DATA: exactly 32 raw bytes (not base64), or empty for none. The
  // init-data digest goes here.
  std::string host_data;
  // vCPU model; it feeds the VMSA and so the launch measurement.
  std::string cpu_model = "EPYC-v4";
};

// Intel TDX launch parameters (docs/formats.md, "Launch parameters"; QEMU ≥ 10.1).
struct TdxConfig {
  // MRCONFIGID, MROWNER, MROWNERCONFIG: exactly 48 raw bytes each, or empty
  // for QEMU's default (zeros). The init-data digest goes into mrconfigid.
  std::string mrconfigid;
  std::string mrowner;
  std::string mrownerconfig;
  // Quote Generation Service: "unix:/path", "vsock:CID:PORT", or "" for none.
  std::string quote_generation_socket = "unix:/var/run/tdx-qgs/qgs.socket";
  // Linux guests need SEPT #VE disabled.
  bool sept_ve_disable = true;
  std::string cpu_model = "host";
};

inline constexpr absl::Duration kDefaultBootTimeout = absl::Seconds(60);
inline constexpr char kDefaultSerialPortName[] = "cloak.agent";
inline constexpr uint32_t kDefaultAgentVsockPort = 1024;

struct VmConfig {
  // Shown in `ps` as `-name`, and the libvirt domain's name:
  // "cloak-<sandbox id>". Optional for QEMU, required for libvirt.
  std::string name;
  // The sandbox this VM runs and its state directory: recorded in the
  // libvirt domain's metadata so `delete` finds a domain whose shim died.
  std::string sandbox_id;
  std::string state_dir;
  // QEMU binary: a path, or a name looked up in PATH.
  std::string qemu_path = "qemu-system-x86_64";
  // libvirt connection URI (driver libvirt), e.g. "qemu:///system".
  std::string libvirt_uri = "qemu:///system";
  // Machine type. The devices used are PCI: q35 (needed for SNP and TDX).
  std::string machine = "q35";
  Accel accel = Accel::kAuto;
  // Empty: "max" under TCG, "host" under KVM, the TEE's cpu_model otherwise.
  std::string cpu;
  int memory_mib = 512;
  int vcpus = 1;
  // TCG only: -accel tcg,tb-size=N (MiB); 0 keeps QEMU's default.
  int tcg_tb_size_mib = 0;

  // Direct kernel boot. An empty kernel boots whatever the firmware finds
  // (only useful in tests; a TEE launch needs a kernel).
  std::string kernel;
  std::string initrd;
  std::string kernel_cmdline;
  // Firmware image passed with -bios. Required for SNP (OVMF AmdSev) and TDX
  // (TDVF); optional otherwise (QEMU's SeaBIOS).
  std::string firmware;

  TeeType tee = TeeType::kNone;
  SnpConfig snp;
  TdxConfig tdx;

  AgentChannel agent_channel = AgentChannel::kAuto;
  // vsock: the guest's CID (≥ 3, unique on the host) and the agent's port.
  uint32_t vsock_guest_cid = 3;
  uint32_t vsock_port = kDefaultAgentVsockPort;
  // virtio-serial: the unix socket QEMU listens on for the host end, and the
  // port name the guest sees (/sys/class/virtio-ports/*/name).
  std::string serial_socket_path;
  std::string serial_port_name = kDefaultSerialPortName;

  // Simulated SNP security processor (dev, shim/simsp): a unix socket the
  // SP listens on before QEMU starts; QEMU connects to it and offers it to
  // the guest as the virtio-serial port `cloak.sp`. Empty: none.
  std::string sp_socket_path;

  // QMP control socket QEMU listens on. Required; < 108 bytes.
  std::string qmp_socket_path;
  // Guest serial console (ttyS0) written here by QEMU. Required: boot
  // errors quote its tail. Truncated at each start.
  std::string console_log_path;
  // QEMU's own stdout/stderr. Empty: "qemu.log" next to the console log.
  std::string vmm_log_path;

  // User-mode networking (-netdev user + virtio-net): the guest reaches the
  // host's loopback at 10.0.2.2; traffic stays inside the QEMU process.
  bool user_network = true;
  // Pod network: tap devices made by the shim (shim/pod_network.h). The
  // QEMU driver passes each fd as QEMU's fd 3, 4, ... in order (the caller
  // keeps ownership); the libvirt driver names the device (`name`, in the
  // host's namespace when the domain starts). The guest NIC takes `mac`.
  struct TapNic {
    int fd = -1;
    std::string name;
    std::string mac;
  };
  std::vector<TapNic> taps;
  // Run by the driver once the VMM holds its devices and before the guest
  // is waited for: the libvirt driver moves the pod's taps, which libvirt
  // opened by name in the host's namespace, into the pod's namespace
  // (shim/pod_network.h). Empty: nothing to do. A failure stops the VM.
  std::function<absl::Status()> after_launch;
  // Appended verbatim after everything else (e.g. tap netdevs).
  std::vector<std::string> extra_args;

  // Add -S: QEMU stops before the first instruction ("prelaunch") until cont.
  bool start_paused = false;
  absl::Duration boot_timeout = kDefaultBootTimeout;
};

}  // namespace cloak::shim::hypervisor

#endif  // CLOAK_SHIM_HYPERVISOR_VM_CONFIG_H_
