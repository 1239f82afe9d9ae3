#include "shim/hypervisor/qemu/qemu_args.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace cloak::shim::hypervisor {
namespace {

// A value that goes inside a QEMU "key=value,..." option string, where a
// comma would start a new key.
absl::Status CheckOptionValue(absl::string_view key, absl::string_view value) {
  if (absl::StrContains(value, ',')) {
    return absl::InvalidArgumentError(absl::StrCat(
        key, " \"", value, "\" contains a comma, which QEMU's option syntax cannot take here: "
        "choose a path or name without commas"));
  }
  return absl::OkStatus();
}

absl::Status CheckPath(absl::string_view key, absl::string_view value, bool required) {
  if (value.empty()) {
    if (!required) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(key, " is required but empty"));
  }
  if (value.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(key, " \"", value, "\" must be an absolute path"));
  }
  return absl::OkStatus();
}

absl::Status CheckSocketPath(absl::string_view key, absl::string_view value) {
  RETURN_IF_ERROR(CheckPath(key, value, /*required=*/true));
  RETURN_IF_ERROR(CheckOptionValue(key, value));
  if (value.size() > kMaxUnixSocketPath) {
    return absl::InvalidArgumentError(absl::StrCat(
        key, " \"", value, "\" is ", value.size(), " bytes; a unix socket path must be at most ",
        kMaxUnixSocketPath, ": use a shorter state directory"));
  }
  return absl::OkStatus();
}

absl::Status CheckRawBytes(absl::string_view key, const std::string& value, size_t size) {
  if (!value.empty() && value.size() != size) {
    return absl::InvalidArgumentError(absl::StrCat(key, " must be exactly ", size,
                                                   " raw bytes (or empty), got ", value.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::ordered_json> QuoteGenerationSocket(absl::string_view spec) {
  if (absl::StartsWith(spec, "unix:")) {
    absl::string_view path = spec.substr(5);
    RETURN_IF_ERROR(CheckSocketPath("tdx.quote_generation_socket", path));
    return nlohmann::ordered_json{{"type", "unix"}, {"path", std::string(path)}};
  }
  if (absl::StartsWith(spec, "vsock:")) {
    std::vector<std::string> parts = absl::StrSplit(spec.substr(6), ':');
    uint32_t cid = 0, port = 0;
    if (parts.size() == 2 && absl::SimpleAtoi(parts[0], &cid) &&
        absl::SimpleAtoi(parts[1], &port)) {
      return nlohmann::ordered_json{
          {"type", "vsock"}, {"cid", std::to_string(cid)}, {"port", std::to_string(port)}};
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("tdx.quote_generation_socket \"", spec,
                   "\" is not \"unix:/path\", \"vsock:CID:PORT\" or empty"));
}

absl::Status ValidateConfig(const VmConfig& c) {
  if (c.qemu_path.empty()) return absl::InvalidArgumentError("qemu_path is empty");
  if (c.machine.empty()) return absl::InvalidArgumentError("machine is empty");
  RETURN_IF_ERROR(CheckOptionValue("machine", c.machine));
  RETURN_IF_ERROR(CheckOptionValue("name", c.name));
  if (c.memory_mib < 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory_mib is ", c.memory_mib, "; a guest needs at least 64 MiB"));
  }
  if (c.tcg_tb_size_mib < 0 || c.tcg_tb_size_mib > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tcg_tb_size_mib is ", c.tcg_tb_size_mib, "; use 0 (QEMU's default) to 4096"));
  }
  if (c.vcpus < 1 || c.vcpus > 288) {
    return absl::InvalidArgumentError(absl::StrCat("vcpus is ", c.vcpus, "; use 1 to 288"));
  }
  RETURN_IF_ERROR(CheckPath("kernel", c.kernel, /*required=*/false));
  RETURN_IF_ERROR(CheckPath("initrd", c.initrd, /*required=*/false));
  RETURN_IF_ERROR(CheckPath("firmware", c.firmware, /*required=*/false));
  if (c.kernel.empty() && (!c.initrd.empty() || !c.kernel_cmdline.empty())) {
    return absl::InvalidArgumentError("initrd or kernel_cmdline is set but kernel is empty");
  }
  RETURN_IF_ERROR(CheckSocketPath("qmp_socket_path", c.qmp_socket_path));
  RETURN_IF_ERROR(CheckPath("console_log_path", c.console_log_path, /*required=*/true));
  RETURN_IF_ERROR(CheckOptionValue("console_log_path", c.console_log_path));
  if (c.tee != TeeType::kNone) {
    const absl::string_view tee = TeeTypeName(c.tee);
    if (c.machine != "q35") {
      return absl::InvalidArgumentError(absl::StrCat(
          "tee=", tee, " needs machine q35, got \"", c.machine, "\""));
    }
    if (c.firmware.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tee=", tee, " needs firmware: ",
          c.tee == TeeType::kSnp ? "an OVMF built from OvmfPkg/AmdSev"
                                 : "a TDVF (OVMF built from OvmfPkg/IntelTdx)",
          " (Debian's ovmf package ships neither)"));
    }
    if (c.kernel.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tee=", tee, " needs a kernel for direct boot"));
    }
  }
  if (c.tee == TeeType::kSnp) {
    RETURN_IF_ERROR(CheckRawBytes("snp.host_data", c.snp.host_data, 32));
    if (c.snp.cbitpos < 32 || c.snp.cbitpos > 63) {
      return absl::InvalidArgumentError(
          absl::StrCat("snp.cbitpos is ", c.snp.cbitpos, "; expected 32..63 (51 on Milan/Genoa)"));
    }
    if (c.snp.reduced_phys_bits < 1 || c.snp.reduced_phys_bits > 63) {
      return absl::InvalidArgumentError(absl::StrCat(
          "snp.reduced_phys_bits is ", c.snp.reduced_phys_bits, "; expected 1..63"));
    }
    if ((c.snp.policy & (1u << 17)) == 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "snp.policy 0x%x has reserved bit 17 clear; the PSP rejects it (default 0x30000)",
          c.snp.policy));
    }
    if (c.snp.cpu_model.empty() && c.cpu.empty()) {
      return absl::InvalidArgumentError("tee=snp needs snp.cpu_model (e.g. EPYC-v4)");
    }
  }
  if (c.tee == TeeType::kTdx) {
    RETURN_IF_ERROR(CheckRawBytes("tdx.mrconfigid", c.tdx.mrconfigid, 48));
    RETURN_IF_ERROR(CheckRawBytes("tdx.mrowner", c.tdx.mrowner, 48));
    RETURN_IF_ERROR(CheckRawBytes("tdx.mrownerconfig", c.tdx.mrownerconfig, 48));
  }
  return absl::OkStatus();
}

std::string VirtioSuffix(const VmConfig& c) {
  // SEV-SNP and TDX guests refuse virtio devices that lack
  // VIRTIO_F_ACCESS_PLATFORM (Linux virtio_features_ok), which needs a modern
  // (non-transitional) device.
  return c.tee == TeeType::kNone ? "" : ",disable-legacy=on,iommu_platform=on";
}

}  // namespace

absl::StatusOr<std::vector<std::string>> BuildQemuArgs(const VmConfig& config,
                                                       const HostCapabilities& caps) {
  RETURN_IF_ERROR(ValidateConfig(config));
  RETURN_IF_ERROR(CheckTeeSupport(config.tee, caps));
  ASSIGN_OR_RETURN(AccelChoice accel, ResolveAccel(config, caps));
  ASSIGN_OR_RETURN(ChannelChoice channel, ResolveChannel(config, caps));
  if (channel.channel == AgentChannel::kSerial) {
    RETURN_IF_ERROR(CheckSocketPath("serial_socket_path", config.serial_socket_path));
    RETURN_IF_ERROR(CheckOptionValue("serial_port_name", config.serial_port_name));
    if (config.serial_port_name.empty()) {
      return absl::InvalidArgumentError("serial_port_name is empty");
    }
  } else if (config.vsock_guest_cid < 3 || config.vsock_guest_cid == 0xffffffffu) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vsock_guest_cid is ", config.vsock_guest_cid,
        "; CIDs 0-2 and 4294967295 are reserved: use 3 or above, unique on this host"));
  }

  const bool tcg = accel.accel == Accel::kTcg;
  std::vector<std::string> a;
  auto add = [&a](std::initializer_list<std::string> items) {
    a.insert(a.end(), items.begin(), items.end());
  };
  a.push_back(caps.qemu.found && !caps.qemu.path.empty() ? caps.qemu.path : config.qemu_path);
  if (!config.name.empty()) add({"-name", config.name});
  add({"-nodefaults", "-no-user-config", "-nographic", "-no-reboot"});

  std::string machine = config.machine;
  switch (config.tee) {
    case TeeType::kNone:
      break;
    case TeeType::kSnp:
      absl::StrAppend(&machine, ",kernel-irqchip=split,confidential-guest-support=",
                      kQemuSnpObjectId, ",memory-backend=", kQemuMemoryBackendId);
      break;
    case TeeType::kTdx:
      absl::StrAppend(&machine, ",kernel-irqchip=split,confidential-guest-support=",
                      kQemuTdxObjectId);
      break;
  }
  std::string accel_arg = tcg ? "tcg" : "kvm";
  if (tcg && config.tcg_tb_size_mib > 0) {
    absl::StrAppend(&accel_arg, ",tb-size=", config.tcg_tb_size_mib);
  }
  add({"-machine", machine, "-accel", accel_arg});

  std::string cpu = config.cpu;
  if (cpu.empty()) {
    if (config.tee == TeeType::kSnp) cpu = config.snp.cpu_model;
    else if (config.tee == TeeType::kTdx) cpu = config.tdx.cpu_model;
    else cpu = tcg ? "max" : "host";
  }
  const std::string memory = absl::StrCat(config.memory_mib, "M");
  add({"-cpu", cpu, "-smp", std::to_string(config.vcpus), "-m", memory});

  if (config.tee == TeeType::kSnp) {
    add({"-object", absl::StrCat("memory-backend-memfd,id=", kQemuMemoryBackendId,
                                 ",size=", memory, ",share=true,prealloc=false")});
    const SnpConfig& snp = config.snp;
    std::string object = absl::StrCat(
        "sev-snp-guest,id=", kQemuSnpObjectId, ",cbitpos=", snp.cbitpos,
        ",reduced-phys-bits=", snp.reduced_phys_bits,
        ",kernel-hashes=", snp.kernel_hashes ? "on" : "off",
        absl::StrFormat(",policy=0x%x", snp.policy));
    if (!snp.host_data.empty()) {
      absl::StrAppend(&object, ",host-data=", absl::Base64Escape(snp.host_data));
    }
    add({"-object", object});
  } else if (config.tee == TeeType::kTdx) {
    const TdxConfig& tdx = config.tdx;
    nlohmann::ordered_json object = {{"qom-type", "tdx-guest"}, {"id", kQemuTdxObjectId}};
    if (tdx.sept_ve_disable) object["sept-ve-disable"] = true;
    if (!tdx.mrconfigid.empty()) object["mrconfigid"] = absl::Base64Escape(tdx.mrconfigid);
    if (!tdx.mrowner.empty()) object["mrowner"] = absl::Base64Escape(tdx.mrowner);
    if (!tdx.mrownerconfig.empty()) {
      object["mrownerconfig"] = absl::Base64Escape(tdx.mrownerconfig);
    }
    if (!tdx.quote_generation_socket.empty()) {
      ASSIGN_OR_RETURN(object["quote-generation-socket"],
                       QuoteGenerationSocket(tdx.quote_generation_socket));
    }
    add({"-object", object.dump()});
  }
  if (!config.firmware.empty()) add({"-bios", config.firmware});
  if (!config.kernel.empty()) add({"-kernel", config.kernel});
  if (!config.initrd.empty()) add({"-initrd", config.initrd});
  if (!config.kernel_cmdline.empty()) add({"-append", config.kernel_cmdline});

  add({"-chardev",
       // append=on: the shim truncates the file at its cap (ConsoleLogPump,
       // console_log.h) and QEMU's next write starts it again.
       absl::StrCat("file,id=", kQemuConsoleChardevId, ",path=", config.console_log_path,
                    ",append=on"),
       "-serial", absl::StrCat("chardev:", kQemuConsoleChardevId)});
  add({"-qmp", absl::StrCat("unix:", config.qmp_socket_path, ",server=on,wait=off")});

  const std::string virtio = VirtioSuffix(config);
  if (channel.channel == AgentChannel::kSerial || !config.sp_socket_path.empty()) {
    add({"-device", absl::StrCat("virtio-serial-pci,id=vser0", virtio)});
  }
  if (!config.sp_socket_path.empty()) {
    add({"-chardev", absl::StrCat("socket,id=sp0,path=", config.sp_socket_path),
         "-device", "virtserialport,bus=vser0.0,chardev=sp0,name=cloak.sp"});
  }
  if (channel.channel == AgentChannel::kSerial) {
    add({"-chardev",
         absl::StrCat("socket,id=", kQemuAgentChardevId, ",path=", config.serial_socket_path,
                      ",server=on,wait=off"),
         "-device",
         absl::StrCat("virtserialport,bus=vser0.0,chardev=", kQemuAgentChardevId,
                      ",name=", config.serial_port_name)});
  } else {
    add({"-device",
         absl::StrCat("vhost-vsock-pci,id=vsock0,guest-cid=", config.vsock_guest_cid, virtio)});
  }
  if (config.user_network) {
    // romfile= (empty) skips the iPXE option ROM: about 1 s less boot time.
    add({"-netdev", "user,id=net0", "-device",
         absl::StrCat("virtio-net-pci,netdev=net0,romfile=", virtio)});
  }
  for (size_t i = 0; i < config.taps.size(); ++i) {
    // The tap fds are QEMU's fds 3, 4, ... (QemuHypervisor passes them in
    // this order). vhost-net needs /dev/vhost-net and KVM: off.
    add({"-netdev", absl::StrCat("tap,id=pod", i, ",fd=", 3 + i, ",vhost=off"), "-device",
         absl::StrCat("virtio-net-pci,netdev=pod", i, ",mac=", config.taps[i].mac,
                      ",romfile=", virtio)});
  }
  if (config.tee == TeeType::kNone) {
    // Free-page reporting: the guest hands pages it frees back to the host
    // (QEMU discards them), so QEMU's resident memory follows what the guest
    // uses now, not the most it ever touched (docs/performance.md, "Levers").
    // Not with SNP or TDX: their private memory is not the host's to discard.
    add({"-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on"});
  }
  a.insert(a.end(), config.extra_args.begin(), config.extra_args.end());
  if (config.start_paused) a.push_back("-S");
  return a;
}

std::string QemuArgsToString(const std::vector<std::string>& args) {
  std::string out;
  for (const std::string& arg : args) {
    if (!out.empty()) out.push_back(' ');
    const bool plain =
        !arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789-_=,.:/+@%") == std::string::npos;
    if (plain) {
      out += arg;
      continue;
    }
    out.push_back('\'');
    for (char ch : arg) {
      if (ch == '\'') out += "'\\''";
      else out.push_back(ch);
    }
    out.push_back('\'');
  }
  return out;
}

}  // namespace cloak::shim::hypervisor
