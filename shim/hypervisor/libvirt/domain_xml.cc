#include "shim/hypervisor/libvirt/domain_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace cloak::shim::hypervisor {
namespace {

// sun_path is 108 bytes including the NUL.
constexpr size_t kMaxUnixSocketPath = 107;

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

absl::Status Validate(const VmConfig& c, Accel accel, AgentChannel channel) {
  if (c.name.empty()) {
    return absl::InvalidArgumentError("name is empty: a libvirt domain needs a name");
  }
  for (char ch : c.name) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("name \"", absl::CHexEscape(c.name),
                       "\" has a control character or '/': libvirt refuses such domain names"));
    }
  }
  if (accel != Accel::kKvm && accel != Accel::kTcg) {
    return absl::InvalidArgumentError("accel must be resolved to kvm or tcg");
  }
  if (channel != AgentChannel::kVsock && channel != AgentChannel::kSerial) {
    return absl::InvalidArgumentError("agent channel must be resolved to vsock or serial");
  }
  if (c.machine.empty()) return absl::InvalidArgumentError("machine is empty");
  if (c.memory_mib < 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory_mib is ", c.memory_mib, "; a guest needs at least 64 MiB"));
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
  RETURN_IF_ERROR(CheckPath("console_log_path", c.console_log_path, /*required=*/true));
  if (channel == AgentChannel::kSerial) {
    RETURN_IF_ERROR(CheckSocketPath("serial_socket_path", c.serial_socket_path));
    if (c.serial_port_name.empty()) return absl::InvalidArgumentError("serial_port_name is empty");
  } else if (c.vsock_guest_cid < 3 || c.vsock_guest_cid == 0xffffffffu) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vsock_guest_cid is ", c.vsock_guest_cid,
        "; CIDs 0-2 and 4294967295 are reserved: use 3 or above, unique on this host"));
  }
  if (!c.sp_socket_path.empty()) RETURN_IF_ERROR(CheckSocketPath("sp_socket_path", c.sp_socket_path));
  for (size_t i = 0; i < c.taps.size(); ++i) {
    if (c.taps[i].name.empty() || c.taps[i].name.size() > 15) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pod tap ", i, " has no device name (1 to 15 characters): the libvirt driver "
          "names the tap in <interface type='ethernet'>"));
    }
    if (c.taps[i].mac.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("pod tap ", c.taps[i].name, " has no MAC"));
    }
  }
  if (!c.extra_args.empty()) {
    return absl::InvalidArgumentError(
        "extra_args (raw QEMU arguments) are not supported by the libvirt driver");
  }
  if (c.tee != TeeType::kNone) {
    const absl::string_view tee = TeeTypeName(c.tee);
    if (c.machine != "q35") {
      return absl::InvalidArgumentError(
          absl::StrCat("tee=", tee, " needs machine q35, got \"", c.machine, "\""));
    }
    if (accel != Accel::kKvm) {
      return absl::InvalidArgumentError(absl::StrCat("tee=", tee, " needs a kvm domain"));
    }
    if (c.firmware.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tee=", tee, " needs firmware: ",
          c.tee == TeeType::kSnp ? "an OVMF built from OvmfPkg/AmdSev"
                                 : "a TDVF (OVMF built from OvmfPkg/IntelTdx)",
          " (Debian's ovmf package ships neither)"));
    }
    if (c.kernel.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("tee=", tee, " needs a kernel for direct boot"));
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
  }
  if (c.tee == TeeType::kTdx) {
    RETURN_IF_ERROR(CheckRawBytes("tdx.mrconfigid", c.tdx.mrconfigid, 48));
    RETURN_IF_ERROR(CheckRawBytes("tdx.mrowner", c.tdx.mrowner, 48));
    RETURN_IF_ERROR(CheckRawBytes("tdx.mrownerconfig", c.tdx.mrownerconfig, 48));
    const std::string& qgs = c.tdx.quote_generation_socket;
    if (!qgs.empty() && !absl::StartsWith(qgs, "unix:")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tdx.quote_generation_socket \"", qgs,
          "\": libvirt's <quoteGenerationService> takes a unix socket path; use an absolute "
          "path (or the qemu driver for a vsock QGS)"));
    }
    if (!qgs.empty()) RETURN_IF_ERROR(CheckSocketPath("tdx.quote_generation_socket", qgs.substr(5)));
  }
  return absl::OkStatus();
}

class XmlWriter {
 public:
  void Line(int depth, absl::string_view text) {
    out_.append(static_cast<size_t>(depth) * 2, ' ');
    out_.append(text.data(), text.size());
    out_.push_back('\n');
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string XmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(ch);
    }
  }
  return out;
}

absl::StatusOr<std::string> BuildDomainXml(const VmConfig& c, Accel accel, AgentChannel channel) {
  RETURN_IF_ERROR(Validate(c, accel, channel));
  const bool tee = c.tee != TeeType::kNone;
  // SEV-SNP and TDX guests refuse virtio devices without
  // VIRTIO_F_ACCESS_PLATFORM: modern devices behind the IOMMU platform flag.
  const std::string virtio_model = tee ? "virtio-non-transitional" : "virtio";
  const std::string iommu = "<driver iommu='on'/>";
  auto e = [](absl::string_view s) { return XmlEscape(s); };

  XmlWriter w;
  w.Line(0, absl::StrCat("<domain type='", accel == Accel::kKvm ? "kvm" : "qemu", "'>"));
  w.Line(1, absl::StrCat("<name>", e(c.name), "</name>"));
  w.Line(1, "<metadata>");
  w.Line(2, absl::StrCat("<", kCloakMetadataPrefix, ":sandbox xmlns:", kCloakMetadataPrefix,
                         "='", kCloakMetadataUri, "' id='", e(c.sandbox_id), "' stateDir='",
                         e(c.state_dir), "'/>"));
  w.Line(1, "</metadata>");
  w.Line(1, absl::StrCat("<memory unit='MiB'>", c.memory_mib, "</memory>"));
  w.Line(1, absl::StrCat("<vcpu>", c.vcpus, "</vcpu>"));
  w.Line(1, "<os>");
  w.Line(2, absl::StrCat("<type arch='x86_64' machine='", e(c.machine), "'>hvm</type>"));
  if (!c.firmware.empty()) {
    // QEMU's -bios: SNP's OVMF and TDX's TDVF cannot be pflash.
    w.Line(2, absl::StrCat("<loader type='rom' stateless='yes'>", e(c.firmware), "</loader>"));
  }
  if (!c.kernel.empty()) w.Line(2, absl::StrCat("<kernel>", e(c.kernel), "</kernel>"));
  if (!c.initrd.empty()) w.Line(2, absl::StrCat("<initrd>", e(c.initrd), "</initrd>"));
  if (!c.kernel_cmdline.empty()) {
    w.Line(2, absl::StrCat("<cmdline>", e(c.kernel_cmdline), "</cmdline>"));
  }
  w.Line(1, "</os>");
  w.Line(1, "<features>");
  w.Line(2, "<acpi/>");
  if (tee) w.Line(2, "<ioapic driver='qemu'/>");  // kernel-irqchip=split
  if (c.tee == TeeType::kTdx) w.Line(2, "<smm state='off'/>");
  w.Line(1, "</features>");
  std::string cpu = c.cpu;
  if (cpu.empty() && c.tee == TeeType::kSnp) cpu = c.snp.cpu_model;
  if (cpu.empty() && c.tee == TeeType::kTdx) cpu = c.tdx.cpu_model;
  if (cpu.empty()) cpu = accel == Accel::kTcg ? "max" : "host";
  if (cpu == "max") {
    w.Line(1, "<cpu mode='maximum' check='none'/>");
  } else if (cpu == "host") {
    w.Line(1, "<cpu mode='host-passthrough' check='none'/>");
  } else {
    w.Line(1, "<cpu mode='custom' match='exact' check='none'>");
    w.Line(2, absl::StrCat("<model fallback='forbid'>", e(cpu), "</model>"));
    w.Line(1, "</cpu>");
  }
  w.Line(1, "<clock offset='utc'/>");
  // The guest powers off when the pod ends and reboots only on a panic
  // (panic=-1): either way the domain goes, as QEMU's -no-reboot does.
  w.Line(1, "<on_poweroff>destroy</on_poweroff>");
  w.Line(1, "<on_reboot>destroy</on_reboot>");
  w.Line(1, "<on_crash>destroy</on_crash>");
  w.Line(1, "<devices>");
  if (absl::StartsWith(c.qemu_path, "/")) {
    w.Line(2, absl::StrCat("<emulator>", e(c.qemu_path), "</emulator>"));
  }
  w.Line(2, "<serial type='file'>");
  // append='on': the shim truncates the file at its cap (console_log.h).
  w.Line(3, absl::StrCat("<source path='", e(c.console_log_path), "' append='on'/>"));
  w.Line(3, "<target type='isa-serial' port='0'/>");
  w.Line(2, "</serial>");
  if (channel == AgentChannel::kSerial || !c.sp_socket_path.empty()) {
    w.Line(2, absl::StrCat("<controller type='virtio-serial' index='0' model='", virtio_model,
                           "'", tee ? ">" : "/>"));
    if (tee) {
      w.Line(3, iommu);
      w.Line(2, "</controller>");
    }
  }
  if (channel == AgentChannel::kSerial) {
    w.Line(2, "<channel type='unix'>");
    w.Line(3, absl::StrCat("<source mode='bind' path='", e(c.serial_socket_path), "'/>"));
    w.Line(3, absl::StrCat("<target type='virtio' name='", e(c.serial_port_name), "'/>"));
    w.Line(2, "</channel>");
  } else {
    w.Line(2, absl::StrCat("<vsock model='", virtio_model, "'>"));
    w.Line(3, absl::StrCat("<cid auto='no' address='", c.vsock_guest_cid, "'/>"));
    if (tee) w.Line(3, iommu);
    w.Line(2, "</vsock>");
  }
  if (!c.sp_socket_path.empty()) {
    w.Line(2, "<channel type='unix'>");
    w.Line(3, absl::StrCat("<source mode='connect' path='", e(c.sp_socket_path), "'/>"));
    w.Line(3, "<target type='virtio' name='cloak.sp'/>");
    w.Line(2, "</channel>");
  }
  if (c.user_network) {
    w.Line(2, "<interface type='user'>");
    w.Line(3, absl::StrCat("<mac address='", kUserNetworkMac, "'/>"));
    w.Line(3, absl::StrCat("<model type='", virtio_model, "'/>"));
    if (tee) w.Line(3, iommu);
    w.Line(3, "<rom enabled='no'/>");
    w.Line(2, "</interface>");
  }
  for (const VmConfig::TapNic& tap : c.taps) {
    // A tap the shim made: libvirt opens it by name and leaves it alone.
    w.Line(2, "<interface type='ethernet'>");
    w.Line(3, absl::StrCat("<mac address='", e(tap.mac), "'/>"));
    w.Line(3, absl::StrCat("<target dev='", e(tap.name), "' managed='no'/>"));
    w.Line(3, absl::StrCat("<model type='", virtio_model, "'/>"));
    // vhost-net off, as the QEMU driver does.
    w.Line(3, tee ? "<driver name='qemu' iommu='on'/>" : "<driver name='qemu'/>");
    w.Line(3, "<rom enabled='no'/>");
    w.Line(2, "</interface>");
  }
  w.Line(2, "<memballoon model='none'/>");
  w.Line(1, "</devices>");
  if (c.tee == TeeType::kSnp) {
    const SnpConfig& snp = c.snp;
    w.Line(1, absl::StrCat("<launchSecurity type='sev-snp' kernelHashes='",
                           snp.kernel_hashes ? "yes" : "no", "'>"));
    w.Line(2, absl::StrCat("<cbitpos>", snp.cbitpos, "</cbitpos>"));
    w.Line(2, absl::StrCat("<reducedPhysBits>", snp.reduced_phys_bits, "</reducedPhysBits>"));
    w.Line(2, absl::StrFormat("<policy>0x%08x</policy>", snp.policy));
    if (!snp.host_data.empty()) {
      w.Line(2, absl::StrCat("<hostData>", absl::Base64Escape(snp.host_data), "</hostData>"));
    }
    w.Line(1, "</launchSecurity>");
  } else if (c.tee == TeeType::kTdx) {
    const TdxConfig& tdx = c.tdx;
    // Bit 28: SEPT #VE disabled (Linux guests need it).
    const uint64_t policy = tdx.sept_ve_disable ? (uint64_t{1} << 28) : 0;
    w.Line(1, "<launchSecurity type='tdx'>");
    w.Line(2, absl::StrFormat("<policy>0x%08x</policy>", policy));
    if (!tdx.mrconfigid.empty()) {
      w.Line(2, absl::StrCat("<mrConfigId>", absl::Base64Escape(tdx.mrconfigid), "</mrConfigId>"));
    }
    if (!tdx.mrowner.empty()) {
      w.Line(2, absl::StrCat("<mrOwner>", absl::Base64Escape(tdx.mrowner), "</mrOwner>"));
    }
    if (!tdx.mrownerconfig.empty()) {
      w.Line(2, absl::StrCat("<mrOwnerConfig>", absl::Base64Escape(tdx.mrownerconfig),
                             "</mrOwnerConfig>"));
    }
    if (!tdx.quote_generation_socket.empty()) {
      w.Line(2, absl::StrCat("<quoteGenerationService path='",
                             e(tdx.quote_generation_socket.substr(5)), "'/>"));
    }
    w.Line(1, "</launchSecurity>");
  }
  w.Line(0, "</domain>");
  return w.Take();
}

absl::StatusOr<DomainMetadata> ParseDomainMetadata(absl::string_view element_xml) {
  struct DocFree {
    void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
  };
  std::unique_ptr<xmlDoc, DocFree> doc(
      xmlReadMemory(element_xml.data(), static_cast<int>(element_xml.size()), "metadata.xml",
                    nullptr, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  xmlNode* root = doc == nullptr ? nullptr : xmlDocGetRootElement(doc.get());
  // virDomainGetMetadata, asked for Cloak's namespace, returns the element
  // without any namespace declaration; one that has one must be Cloak's.
  if (root == nullptr || xmlStrcmp(root->name, BAD_CAST "sandbox") != 0 ||
      (root->ns != nullptr && xmlStrcmp(root->ns->href, BAD_CAST kCloakMetadataUri) != 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not Cloak's domain metadata (<sandbox xmlns='", kCloakMetadataUri, "'>)"));
  }
  auto attr = [root](const char* name) {
    xmlChar* v = xmlGetProp(root, BAD_CAST name);
    std::string out = v == nullptr ? "" : reinterpret_cast<const char*>(v);
    if (v != nullptr) xmlFree(v);
    return out;
  };
  DomainMetadata m{.sandbox_id = attr("id"), .state_dir = attr("stateDir")};
  if (m.sandbox_id.empty()) {
    return absl::InvalidArgumentError("Cloak's domain metadata has no sandbox id");
  }
  return m;
}

}  // namespace cloak::shim::hypervisor
