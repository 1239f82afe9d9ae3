#include "common/tee/measure/snp.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/tee/digest.h"
#include "common/tee/measure/ovmf.h"

namespace cloak::tee::measure {
namespace {

constexpr uint64_t kFourGiB = 0x100000000ull;
constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kVmsaGpa = 0xFFFFFFFFF000ull;  // (u64)-1, page aligned, bits above 51 clear
constexpr uint64_t kBspEip = 0xFFFFFFF0ull;

constexpr char kHashTableHeaderGuid[] = "9438d606-4f22-4cc9-b479-a793d411fd21";
constexpr char kKernelEntryGuid[] = "4de79437-abd2-427f-b835-d5b172d2045b";
constexpr char kInitrdEntryGuid[] = "44baf731-3a2f-4bd7-9af1-41e29169781d";
constexpr char kCmdlineEntryGuid[] = "97d02dd8-bd20-4c94-aa78-e7714d36ab2a";

enum PageType : uint8_t {
  kNormal = 1,
  kVmsa = 2,
  kZero = 3,
  kUnmeasured = 4,
  kSecrets = 5,
  kCpuid = 6,
};

// The guest context: the running launch digest (SNP firmware ABI
// SNP_LAUNCH_UPDATE, PAGE_INFO).
class LaunchDigest {
 public:
  void Update(PageType type, uint64_t gpa, absl::string_view contents) {
    std::string info(0x70, '\0');
    info.replace(0, 48, ld_);
    info.replace(48, 48, contents.data(), contents.size());
    PutLe16(info, 96, 0x70);
    info[98] = static_cast<char>(type);
    // 99: IS_IMI, 100..102: VMPL3/2/1 permissions, 103: reserved — all zero.
    PutLe64(info, 104, gpa);
    ld_ = Sha384(info);
  }
  void NormalPages(uint64_t gpa, absl::string_view data) {
    for (size_t off = 0; off < data.size(); off += kPageSize) {
      Update(kNormal, gpa + off, Sha384(data.substr(off, kPageSize)));
    }
  }
  void ZeroPages(uint64_t gpa, uint64_t size) {
    for (uint64_t off = 0; off < size; off += kPageSize) Update(kZero, gpa + off, kZeros);
  }
  const std::string& ld() const { return ld_; }

  static inline const std::string kZeros = std::string(48, '\0');

 private:
  std::string ld_ = std::string(48, '\0');
};

uint32_t CpuSignature(uint32_t family, uint32_t model, uint32_t stepping) {
  uint32_t family_low = family > 0xf ? 0xf : family;
  uint32_t family_high = family > 0xf ? (family - 0xf) & 0xff : 0;
  return family_high << 20 | ((model >> 4) & 0xf) << 16 | family_low << 8 | (model & 0xf) << 4 |
         (stepping & 0xf);
}

const std::map<std::string, uint32_t>& VcpuTable() {
  // QEMU's EPYC models (target/i386/cpu.c builtin_x86_defs): family, model,
  // stepping of each.
  static const auto* table = new std::map<std::string, uint32_t>{
      {"EPYC", CpuSignature(23, 1, 2)},           {"EPYC-v1", CpuSignature(23, 1, 2)},
      {"EPYC-v2", CpuSignature(23, 1, 2)},        {"EPYC-IBPB", CpuSignature(23, 1, 2)},
      {"EPYC-v3", CpuSignature(23, 1, 2)},        {"EPYC-v4", CpuSignature(23, 1, 2)},
      {"EPYC-Rome", CpuSignature(23, 49, 0)},     {"EPYC-Rome-v1", CpuSignature(23, 49, 0)},
      {"EPYC-Rome-v2", CpuSignature(23, 49, 0)},  {"EPYC-Rome-v3", CpuSignature(23, 49, 0)},
      {"EPYC-Milan", CpuSignature(25, 1, 1)},     {"EPYC-Milan-v1", CpuSignature(25, 1, 1)},
      {"EPYC-Milan-v2", CpuSignature(25, 1, 1)},  {"EPYC-Genoa", CpuSignature(25, 17, 0)},
      {"EPYC-Genoa-v1", CpuSignature(25, 17, 0)},
  };
  return *table;
}

void PutSegment(std::string& page, size_t off, uint16_t selector, uint16_t attrib, uint32_t limit,
                uint64_t base) {
  PutLe16(page, off, selector);
  PutLe16(page, off + 2, attrib);
  PutLe32(page, off + 4, limit);
  PutLe64(page, off + 8, base);
}

}  // namespace

absl::StatusOr<SevFirmware> ParseSevFirmware(absl::string_view image) {
  if (image.empty() || image.size() % kPageSize != 0 || image.size() > kFourGiB) {
    return absl::InvalidArgumentError(absl::StrCat("firmware image of ", image.size(),
                                                   " bytes is not a whole number of 4 KiB pages"));
  }
  auto table = ParseFooterTable(image);
  if (!table.ok()) return table.status();
  SevFirmware fw;
  fw.gpa = kFourGiB - image.size();
  auto find = [&](const char* guid) -> const std::string* {
    auto it = table->find(GuidToBytes(guid));
    return it == table->end() ? nullptr : &it->second;
  };
  if (const std::string* reset = find(kSevEsResetBlockGuid)) {
    if (reset->size() < 4) {
      return absl::InvalidArgumentError(
          "firmware SEV-ES reset block entry is shorter than 4 bytes");
    }
    fw.sev_es_reset_eip = Le32(*reset, 0);
  }
  if (const std::string* hashes = find(kSevHashTableRvGuid)) {
    if (hashes->size() < 4) {
      return absl::InvalidArgumentError("firmware SEV hash table entry is shorter than 4 bytes");
    }
    if (Le32(*hashes, 0) != 0) fw.hashes_table_gpa = Le32(*hashes, 0);
  }
  const std::string* meta = find(kOvmfSevMetadataGuid);
  if (meta == nullptr) return fw;  // an image without SEV metadata adds no sections
  if (meta->size() < 4) {
    return absl::InvalidArgumentError("firmware SEV metadata entry is shorter than 4 bytes");
  }
  const uint32_t from_end = Le32(*meta, 0);
  if (from_end < 16 || from_end > image.size()) {
    return absl::InvalidArgumentError(absl::StrCat("firmware SEV metadata offset ", from_end,
                                                   " lies outside the ", image.size(),
                                                   "-byte image"));
  }
  const size_t start = image.size() - from_end;
  if (image.substr(start, 4) != "ASEV") {
    return absl::InvalidArgumentError("firmware SEV metadata lacks its \"ASEV\" signature");
  }
  const uint32_t length = Le32(image, start + 4);
  const uint32_t version = Le32(image, start + 8);
  const uint32_t count = Le32(image, start + 12);
  if (version != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("firmware SEV metadata version ", version, " is not supported (want 1)"));
  }
  if (length < 16 || length > from_end || (length - 16) / 12 < count) {
    return absl::InvalidArgumentError(
        absl::StrCat("firmware SEV metadata length ", length, " cannot hold ", count, " sections"));
  }
  for (uint32_t i = 0; i < count; ++i) {
    const size_t off = start + 16 + 12 * i;
    SevMetadataSection s;
    s.gpa = Le32(image, off);
    s.size = Le32(image, off + 4);
    const uint32_t type = Le32(image, off + 8);
    switch (type) {
      case 1:
      case 2:
      case 3:
      case 4:
      case 0x10:
        s.type = static_cast<SevSectionType>(type);
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrFormat("firmware SEV metadata section %u has unknown type 0x%x", i, type));
    }
    if (s.gpa % kPageSize != 0 || s.size % kPageSize != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "firmware SEV metadata section %u (gpa 0x%x size 0x%x) is not page aligned", i, s.gpa,
          s.size));
    }
    fw.sections.push_back(s);
  }
  return fw;
}

SnpKernelHashes KernelHashesFromContents(absl::string_view kernel,
                                         std::optional<absl::string_view> initrd,
                                         std::optional<absl::string_view> append) {
  SnpKernelHashes h;
  h.kernel_sha256 = Sha256(kernel);
  h.initrd_sha256 = Sha256(initrd.value_or(""));
  std::string cmdline(append.value_or(""));
  cmdline += '\0';
  h.cmdline_sha256 = Sha256(cmdline);
  return h;
}

std::string SevHashesTable(const SnpKernelHashes& hashes) {
  constexpr size_t kEntry = 16 + 2 + 32;
  constexpr size_t kTable = 16 + 2 + 3 * kEntry;  // 168
  std::string t((kTable + 15) & ~size_t{15}, '\0');
  t.replace(0, 16, GuidToBytes(kHashTableHeaderGuid));
  PutLe16(t, 16, kTable);
  size_t off = 18;
  for (auto [guid, digest] : {std::pair{kCmdlineEntryGuid, &hashes.cmdline_sha256},
                              std::pair{kInitrdEntryGuid, &hashes.initrd_sha256},
                              std::pair{kKernelEntryGuid, &hashes.kernel_sha256}}) {
    t.replace(off, 16, GuidToBytes(guid));
    PutLe16(t, off + 16, kEntry);
    t.replace(off + 18, 32, digest->substr(0, 32));
    off += kEntry;
  }
  return t;
}

absl::StatusOr<SnpVmmType> ParseSnpVmmType(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  if (lower == "qemu") return SnpVmmType::kQemu;
  if (lower == "ec2") return SnpVmmType::kEc2;
  return absl::InvalidArgumentError(
      absl::StrCat("VMM type \"", name, "\" is not known (QEMU or ec2)"));
}

absl::string_view SnpVmmTypeName(SnpVmmType type) {
  return type == SnpVmmType::kEc2 ? "ec2" : "QEMU";
}

absl::StatusOr<uint32_t> SnpVcpuSignature(absl::string_view vcpu_type) {
  auto it = VcpuTable().find(std::string(vcpu_type));
  if (it == VcpuTable().end()) {
    std::string known;
    for (const auto& [name, sig] : VcpuTable()) {
      absl::StrAppend(&known, known.empty() ? "" : ", ", name);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("vCPU type \"", vcpu_type, "\" is not known (known: ", known, ")"));
  }
  return it->second;
}

std::vector<std::string> SnpVcpuTypes() {
  std::vector<std::string> out;
  for (const auto& [name, sig] : VcpuTable()) out.push_back(name);
  return out;
}

std::string SnpVmsaPage(uint64_t eip, uint64_t guest_features, uint32_t vcpu_signature,
                        SnpVmmType vmm) {
  // Offsets of the SEV-ES save area (AMD APM vol. 2, table B-4; Linux
  // struct sev_es_save_area).
  uint16_t cs_flags = 0x9b, ss_flags = 0x93, tr_flags = 0x8b;
  uint64_t rdx = vcpu_signature;
  uint32_t mxcsr = 0x1f80;
  uint16_t fcw = 0x37f;
  if (vmm == SnpVmmType::kEc2) {
    cs_flags = eip == kBspEip ? 0x9a : 0x9b;
    ss_flags = 0x92;
    tr_flags = 0x83;
    rdx = 0;
    mxcsr = 0;
    fcw = 0;
  }
  std::string p(kPageSize, '\0');
  PutSegment(p, 0x00, 0, 0x93, 0xffff, 0);                             // es
  PutSegment(p, 0x10, 0xf000, cs_flags, 0xffff, eip & 0xffff0000ull);  // cs
  PutSegment(p, 0x20, 0, ss_flags, 0xffff, 0);                         // ss
  PutSegment(p, 0x30, 0, 0x93, 0xffff, 0);                             // ds
  PutSegment(p, 0x40, 0, 0x93, 0xffff, 0);                             // fs
  PutSegment(p, 0x50, 0, 0x93, 0xffff, 0);                             // gs
  PutSegment(p, 0x60, 0, 0, 0xffff, 0);                                // gdtr
  PutSegment(p, 0x70, 0, 0x82, 0xffff, 0);                             // ldtr
  PutSegment(p, 0x80, 0, 0, 0xffff, 0);                                // idtr
  PutSegment(p, 0x90, 0, tr_flags, 0xffff, 0);                         // tr
  PutLe64(p, 0xD0, 0x1000);                                            // efer: SVME
  PutLe64(p, 0x148, 0x40);                                             // cr4: MCE
  PutLe64(p, 0x158, 0x10);                                             // cr0: ET
  PutLe64(p, 0x160, 0x400);                                            // dr7
  PutLe64(p, 0x168, 0xffff0ff0);                                       // dr6
  PutLe64(p, 0x170, 0x2);                                              // rflags
  PutLe64(p, 0x178, eip & 0xffff);                                     // rip
  PutLe64(p, 0x268, 0x7040600070406);  // g_pat (PAT MSR reset value)
  PutLe64(p, 0x310, rdx);              // rdx: CPUID signature at reset
  PutLe64(p, 0x3B0, guest_features);   // sev_features
  PutLe64(p, 0x3E8, 0x1);              // xcr0
  PutLe32(p, 0x408, mxcsr);            // mxcsr
  PutLe16(p, 0x410, fcw);              // x87 fcw
  return p;
}

absl::StatusOr<std::string> ComputeSnpFirmwareDigest(absl::string_view firmware) {
  auto fw = ParseSevFirmware(firmware);
  if (!fw.ok()) return fw.status();
  LaunchDigest ld;
  ld.NormalPages(fw->gpa, firmware);
  return ld.ld();
}

absl::StatusOr<std::string> ComputeSnpLaunchDigest(const SnpLaunchInput& input) {
  auto parsed = ParseSevFirmware(input.firmware);
  if (!parsed.ok()) return parsed.status();
  const SevFirmware& fw = *parsed;
  if (input.vcpus == 0) return absl::InvalidArgumentError("vCPU count must be at least 1");
  if ((input.guest_features & 1) == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("guest features 0x%x lack bit 0 (SNPActive), which every SEV-SNP VMSA sets",
                        input.guest_features));
  }
  bool has_hashes_section = false;
  for (const SevMetadataSection& s : fw.sections) {
    has_hashes_section |= s.type == SevSectionType::kSnpKernelHashes;
  }
  if (input.kernel_hashes.has_value() && !has_hashes_section) {
    return absl::FailedPreconditionError(
        "a kernel is given (direct boot with kernel-hashes) but the firmware's SEV metadata has "
        "no SNP_KERNEL_HASHES section: use an OVMF AmdSev build, or measure without --kernel");
  }
  if (fw.sections.empty()) {
    return absl::FailedPreconditionError(
        "the firmware has no SEV metadata (no SNP sections): it cannot launch an SEV-SNP guest");
  }
  if (input.vcpus > 1 && fw.sev_es_reset_eip == 0) {
    return absl::FailedPreconditionError(
        "the firmware has no SEV-ES reset block, so application processors cannot start: "
        "measure with one vCPU or use an SEV-capable OVMF");
  }

  LaunchDigest ld;
  ld.NormalPages(fw.gpa, input.firmware);
  for (const SevMetadataSection& s : fw.sections) {
    switch (s.type) {
      case SevSectionType::kSnpSecMem:
      case SevSectionType::kSvsmCaa:
        ld.ZeroPages(s.gpa, s.size);
        break;
      case SevSectionType::kSnpSecrets:
        ld.Update(kSecrets, s.gpa, LaunchDigest::kZeros);
        break;
      case SevSectionType::kCpuid:
        if (input.vmm != SnpVmmType::kEc2) ld.Update(kCpuid, s.gpa, LaunchDigest::kZeros);
        break;
      case SevSectionType::kSnpKernelHashes:
        if (input.kernel_hashes.has_value()) {
          if (!fw.hashes_table_gpa.has_value()) {
            return absl::FailedPreconditionError(
                "the firmware has an SNP_KERNEL_HASHES section but no SEV hash table entry "
                "(GUID 7255371f-...) saying where in it the table goes");
          }
          if (s.size != kPageSize) {
            return absl::InvalidArgumentError(absl::StrCat("firmware SNP_KERNEL_HASHES section is ",
                                                           s.size, " bytes, want one page"));
          }
          const size_t offset = *fw.hashes_table_gpa & (kPageSize - 1);
          std::string table = SevHashesTable(*input.kernel_hashes);
          if (offset + table.size() > kPageSize) {
            return absl::InvalidArgumentError("firmware SEV hash table crosses its page");
          }
          std::string page(kPageSize, '\0');
          page.replace(offset, table.size(), table);
          ld.NormalPages(s.gpa, page);
        } else {
          ld.ZeroPages(s.gpa, s.size);
        }
        break;
    }
  }
  if (input.vmm == SnpVmmType::kEc2) {
    for (const SevMetadataSection& s : fw.sections) {
      if (s.type == SevSectionType::kCpuid) ld.Update(kCpuid, s.gpa, LaunchDigest::kZeros);
    }
  }
  const std::string bsp =
      SnpVmsaPage(kBspEip, input.guest_features, input.vcpu_signature, input.vmm);
  const std::string ap =
      SnpVmsaPage(fw.sev_es_reset_eip, input.guest_features, input.vcpu_signature, input.vmm);
  for (uint32_t i = 0; i < input.vcpus; ++i) {
    ld.Update(kVmsa, kVmsaGpa, Sha384(i == 0 ? bsp : ap));
  }
  return ld.ld();
}

}  // namespace cloak::tee::measure
