#include "common/tee/measure/dev_firmware.h"

#include "common/tee/measure/ovmf.h"

namespace cloak::tee::measure {
namespace {

constexpr size_t kSize = 3 * 4096;
constexpr uint32_t kResetEip = 0xFFFFD100;  // inside the first page
constexpr uint32_t kHashesPage = 0x00805000;
constexpr uint32_t kHashesTable = 0x00805C00;  // offset 0xC00 in its page

std::string Build() {
  std::string fw(kSize, '\0');
  const std::string banner =
      "Cloak synthetic SEV firmware descriptor for simulated SNP launches - not a firmware. ";
  for (size_t i = 0; i < 2 * 4096; ++i) fw[i] = banner[i % banner.size()];

  // "ASEV" metadata in the last page, at 0x2000.
  const size_t meta = 0x2000;
  struct Section {
    uint32_t gpa, size, type;
  } sections[] = {
      {0x00800000, 0x3000, 1},      // SNP_SEC_MEM
      {0x00803000, 0x1000, 2},      // SNP_SECRETS
      {0x00804000, 0x1000, 3},      // CPUID
      {kHashesPage, 0x1000, 0x10},  // SNP_KERNEL_HASHES
  };
  fw.replace(meta, 4, "ASEV");
  PutLe32(fw, meta + 4, 16 + 12 * 4);
  PutLe32(fw, meta + 8, 1);
  PutLe32(fw, meta + 12, 4);
  for (size_t i = 0; i < 4; ++i) {
    PutLe32(fw, meta + 16 + 12 * i, sections[i].gpa);
    PutLe32(fw, meta + 20 + 12 * i, sections[i].size);
    PutLe32(fw, meta + 24 + 12 * i, sections[i].type);
  }

  // Footer table, ending 32 bytes before the image's end; entries written
  // backwards from the footer entry.
  size_t end = kSize - 32;
  auto entry = [&](const char* guid, const std::string& data) {
    const size_t size = data.size() + 18;
    const size_t start = end - size;
    fw.replace(start, data.size(), data);
    PutLe16(fw, start + data.size(), static_cast<uint16_t>(size));
    fw.replace(start + data.size() + 2, 16, GuidToBytes(guid));
    end = start;
  };
  std::string u32(4, '\0');
  // The footer entry's size covers the whole table; fill it in last.
  const size_t footer = kSize - 32 - 18;
  end = footer;
  PutLe32(u32, 0, kSize - meta);
  entry(kOvmfSevMetadataGuid, u32);
  std::string hashes(8, '\0');
  PutLe32(hashes, 0, kHashesTable);
  PutLe32(hashes, 4, 0x400);
  entry(kSevHashTableRvGuid, hashes);
  PutLe32(u32, 0, kResetEip);
  entry(kSevEsResetBlockGuid, u32);
  PutLe16(fw, footer, static_cast<uint16_t>(footer - end + 18));
  fw.replace(footer + 2, 16, GuidToBytes(kOvmfTableFooterGuid));
  return fw;
}

}  // namespace

const std::string& DevSevFirmware() {
  static const std::string* fw = new std::string(Build());
  return *fw;
}

}  // namespace cloak::tee::measure
