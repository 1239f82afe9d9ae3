#include "common/tee/measure/tdx.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/tee/digest.h"
#include "common/tee/measure/ovmf.h"
#include "common/tee/measure/pe.h"

namespace cloak::tee::measure {
namespace {

constexpr uint64_t kPageSize = 0x1000;
constexpr uint64_t kExtendChunk = 0x100;

std::string Record(absl::string_view op, uint64_t gpa) {
  std::string r(128, '\0');
  r.replace(0, op.size(), op.data(), op.size());
  PutLe64(r, 16, gpa);
  return r;
}

// UTF-16LE of an ASCII/Latin-1 string (the firmware's CHAR16 load options).
std::string Utf16Le(absl::string_view s) {
  std::string out;
  out.reserve(s.size() * 2);
  for (char c : s) {
    out += c;
    out += '\0';
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<TdvfSection>> ParseTdvfMetadata(absl::string_view image) {
  auto table = ParseFooterTable(image);
  if (!table.ok()) return table.status();
  auto it = table->find(GuidToBytes(kTdxMetadataOffsetGuid));
  if (it == table->end()) {
    return absl::InvalidArgumentError(
        "firmware has no TDX metadata entry (GUID e47a6535-...) in its footer table: is it a "
        "TDVF (OVMF IntelTdx / OvmfPkgX64 with TDX) build?");
  }
  if (it->second.size() < 4) {
    return absl::InvalidArgumentError("firmware TDX metadata entry is shorter than 4 bytes");
  }
  const uint32_t from_end = Le32(it->second, it->second.size() - 4);
  if (from_end < 16 || from_end > image.size()) {
    return absl::InvalidArgumentError(absl::StrCat("firmware TDX metadata offset ", from_end,
                                                   " lies outside the ", image.size(),
                                                   "-byte image"));
  }
  const size_t start = image.size() - from_end;
  if (image.substr(start, 4) != "TDVF") {
    return absl::InvalidArgumentError("firmware TDX metadata lacks its \"TDVF\" signature");
  }
  const uint32_t length = Le32(image, start + 4);
  const uint32_t version = Le32(image, start + 8);
  const uint32_t count = Le32(image, start + 12);
  if (version != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TDVF metadata version ", version, " is not supported (want 1)"));
  }
  if (length < 16 || length > from_end || (length - 16) / 32 < count) {
    return absl::InvalidArgumentError(
        absl::StrCat("TDVF metadata length ", length, " cannot hold ", count, " sections"));
  }
  std::vector<TdvfSection> out;
  for (uint32_t i = 0; i < count; ++i) {
    const size_t off = start + 16 + 32ull * i;
    TdvfSection s;
    s.data_offset = Le32(image, off);
    s.raw_data_size = Le32(image, off + 4);
    s.memory_address = Le64(image, off + 8);
    s.memory_data_size = Le64(image, off + 16);
    s.type = Le32(image, off + 24);
    s.attributes = Le32(image, off + 28);
    if (s.memory_address % kPageSize != 0 || s.memory_data_size % kPageSize != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("TDVF section %u (address 0x%x size 0x%x) is not page aligned", i,
                          s.memory_address, s.memory_data_size));
    }
    if (s.memory_data_size < s.raw_data_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("TDVF section %u holds more raw data than memory", i));
    }
    if (static_cast<uint64_t>(s.data_offset) + s.raw_data_size > image.size()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("TDVF section %u's raw data lies outside the image", i));
    }
    if ((s.attributes & kTdvfAttrMrExtend) != 0 && s.raw_data_size < s.memory_data_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "TDVF section %u is measured (MR.EXTEND) but has less raw data than memory", i));
    }
    out.push_back(s);
  }
  return out;
}

absl::StatusOr<MrtdPageOrder> ParseMrtdPageOrder(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  if (lower == "single-pass") return MrtdPageOrder::kSinglePass;
  if (lower == "two-pass") return MrtdPageOrder::kTwoPass;
  return absl::InvalidArgumentError(
      absl::StrCat("page order \"", name, "\" is not known (single-pass or two-pass)"));
}

absl::StatusOr<std::string> ComputeMrtd(absl::string_view image, MrtdPageOrder order) {
  auto sections = ParseTdvfMetadata(image);
  if (!sections.ok()) return sections.status();
  HashStream h(HashAlgorithm::kSha384);
  auto add = [&](const TdvfSection& s, uint64_t page) {
    if ((s.attributes & kTdvfAttrPageAug) != 0) return;  // accepted later by the guest
    h.Update(Record("MEM.PAGE.ADD", s.memory_address + page * kPageSize));
  };
  auto extend = [&](const TdvfSection& s, uint64_t page) {
    if ((s.attributes & kTdvfAttrMrExtend) == 0) return;
    for (uint64_t chunk = 0; chunk < kPageSize; chunk += kExtendChunk) {
      h.Update(Record("MR.EXTEND", s.memory_address + page * kPageSize + chunk));
      h.Update(image.substr(s.data_offset + page * kPageSize + chunk, kExtendChunk));
    }
  };
  for (const TdvfSection& s : *sections) {
    const uint64_t pages = s.memory_data_size / kPageSize;
    if (order == MrtdPageOrder::kTwoPass) {
      for (uint64_t p = 0; p < pages; ++p) add(s, p);
      for (uint64_t p = 0; p < pages; ++p) extend(s, p);
    } else {
      for (uint64_t p = 0; p < pages; ++p) {
        add(s, p);
        extend(s, p);
      }
    }
  }
  return h.Finish();
}

std::string ExtendRtmr(absl::string_view rtmr, absl::string_view digest48) {
  return Sha384(absl::StrCat(rtmr, digest48));
}

absl::StatusOr<std::string> QemuPatchedKernel(const TdxDirectBoot& boot) {
  std::string k = boot.kernel;
  if (k.size() < 0x1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel of ", k.size(), " bytes is too small for a bzImage"));
  }
  const uint16_t protocol = (k.substr(0x202, 4) == "HdrS") ? Le16(k, 0x206) : 0;
  if (protocol < 0x206) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kernel boot protocol 0x%x: want a bzImage with protocol 2.06 or later (an EFI-stub "
        "kernel)",
        protocol));
  }
  // A bzImage loaded high (LOADED_HIGH in loadflags): QEMU puts the real-mode
  // part at 0x10000 and the command line at 0x20000.
  if ((static_cast<uint8_t>(k[0x211]) & 0x01) == 0) {
    return absl::InvalidArgumentError(
        "kernel is not a bzImage loaded high (loadflags bit 0 clear)");
  }
  constexpr uint32_t real_addr = 0x10000, cmdline_addr = 0x20000;
  k[0x210] = static_cast<char>(0xb0);                                   // type_of_loader: QEMU
  k[0x211] = static_cast<char>(static_cast<uint8_t>(k[0x211]) | 0x80);  // CAN_USE_HEAP
  PutLe32(k, 0x224, cmdline_addr - real_addr - 0x200);                  // heap_end_ptr
  PutLe32(k, 0x228, cmdline_addr);                                      // cmd_line_ptr
  if (boot.initrd.has_value()) {
    const uint64_t initrd_size = boot.initrd->size();
    uint64_t initrd_max;
    if (protocol >= 0x20c && (Le16(k, 0x236) & 0x40) != 0) {
      initrd_max = 0xffffffff;  // XLF_CAN_BE_LOADED_ABOVE_4G
    } else {
      initrd_max = Le32(k, 0x22c);  // initrd_addr_max
    }
    const uint64_t ram = boot.memory_mib * 1024 * 1024;
    const uint64_t lowmem = ram >= 0xb0000000ull ? 0x80000000ull : 0xb0000000ull;
    const uint64_t below_4g = std::min(ram, lowmem);
    if (below_4g <= boot.acpi_data_size) {
      return absl::InvalidArgumentError("memory size is too small for QEMU's ACPI data");
    }
    if (initrd_max >= below_4g - boot.acpi_data_size) {
      initrd_max = below_4g - boot.acpi_data_size - 1;
    }
    if (initrd_size >= initrd_max) {
      return absl::InvalidArgumentError(
          absl::StrCat("initrd of ", initrd_size, " bytes does not fit below ", initrd_max));
    }
    PutLe32(k, 0x218, static_cast<uint32_t>((initrd_max - initrd_size) & ~uint64_t{4095}));
    PutLe32(k, 0x21c, static_cast<uint32_t>(initrd_size));
  }
  return k;
}

absl::StatusOr<TdxRtmrs> ComputeTdxDirectBootRtmrs(const TdxDirectBoot& boot) {
  auto patched = QemuPatchedKernel(boot);
  if (!patched.ok()) return patched.status();
  auto kernel_digest = AuthenticodeSha384(*patched);
  if (!kernel_digest.ok()) return kernel_digest.status();
  TdxRtmrs out;
  // RTMR1 (PCR 4/5): the EFI application (the kernel's EFI stub), the boot
  // attempt, the separator, and ExitBootServices.
  out.rtmr1_events = {
      *kernel_digest,
      Sha384("Calling EFI Application from Boot Option"),
      Sha384(std::string(4, '\0')),
      Sha384("Exit Boot Services Invocation"),
      Sha384("Exit Boot Services Returned with Success"),
  };
  // RTMR2 (PCR 8/9): the load options OVMF builds ("initrd=initrd " before
  // the command line when an initrd is given, NUL-terminated, UTF-16LE), then
  // the initrd as the EFI stub loads it.
  std::string options = boot.initrd.has_value() ? "initrd=initrd " : "";
  absl::StrAppend(&options, boot.cmdline);
  options += '\0';
  out.rtmr2_events = {Sha384(Utf16Le(options))};
  if (boot.initrd.has_value()) out.rtmr2_events.push_back(Sha384(*boot.initrd));
  out.rtmr1 = std::string(48, '\0');
  for (const std::string& e : out.rtmr1_events) out.rtmr1 = ExtendRtmr(out.rtmr1, e);
  out.rtmr2 = std::string(48, '\0');
  for (const std::string& e : out.rtmr2_events) out.rtmr2 = ExtendRtmr(out.rtmr2, e);
  return out;
}

}  // namespace cloak::tee::measure
