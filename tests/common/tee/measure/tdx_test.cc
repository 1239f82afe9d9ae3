// TDX measurement tests on a synthetic TDVF image and a synthetic EFI-stub
// kernel that the test builds. Expected values are computed here a second
// way (one SHA-384 over the whole record stream written out by hand), and
// the MRTD of the image is also pinned to the value Python's hashlib gives
// for the same bytes (tests/testdata/tdx-measure/README.md holds the script).
#include "common/tee/measure/tdx.h"

#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "common/tee/measure/ovmf.h"
#include "common/tee/measure/pe.h"
#include "gtest/gtest.h"

namespace cloak::tee::measure {
namespace {

void Put32(std::string& b, size_t off, uint32_t v) { PutLe32(b, off, v); }
void Put64(std::string& b, size_t off, uint64_t v) { PutLe64(b, off, v); }

// A 16 KiB image: pages 0-1 are "BFV" code (measured), the TDVF descriptor
// sits at 0x3000, the footer table ends 32 bytes before the end.
//   section 0: BFV   data 0x0000 size 0x2000 → GPA 0xFFFFC000, MR.EXTEND
//   section 1: TD_HOB                        → GPA 0x00809000, 2 pages, added
//   section 2: TempMem                       → GPA 0x0080B000, 1 page, added
//   section 3: PermMem                       → GPA 0x00900000, 4 pages, PAGE.AUG
std::string SyntheticTdvf() {
  std::string img(0x4000, '\0');
  for (size_t i = 0; i < 0x2000; ++i) img[i] = static_cast<char>((i * 7 + 3) % 251);
  const size_t desc = 0x3000;
  img.replace(desc, 4, "TDVF");
  Put32(img, desc + 4, 16 + 4 * 32);
  Put32(img, desc + 8, 1);
  Put32(img, desc + 12, 4);
  struct S {
    uint32_t off, raw;
    uint64_t gpa, size;
    uint32_t type, attr;
  } sections[] = {
      {0, 0x2000, 0xFFFFC000, 0x2000, 0, 1},
      {0, 0, 0x809000, 0x2000, 2, 0},
      {0, 0, 0x80B000, 0x1000, 3, 0},
      {0, 0, 0x900000, 0x4000, 4, 2},
  };
  for (size_t i = 0; i < 4; ++i) {
    const size_t o = desc + 16 + 32 * i;
    Put32(img, o, sections[i].off);
    Put32(img, o + 4, sections[i].raw);
    Put64(img, o + 8, sections[i].gpa);
    Put64(img, o + 16, sections[i].size);
    Put32(img, o + 24, sections[i].type);
    Put32(img, o + 28, sections[i].attr);
  }
  // Footer table: [u32 offset-from-end][u16 22][GUID e47a6535] [u16 40][footer GUID] + 32 bytes.
  const size_t footer = img.size() - 32 - 18;
  const size_t entry = footer - 22;
  Put32(img, entry, static_cast<uint32_t>(img.size() - desc));
  PutLe16(img, entry + 4, 22);
  img.replace(entry + 6, 16, GuidToBytes(kTdxMetadataOffsetGuid));
  PutLe16(img, footer, 40);
  img.replace(footer + 2, 16, GuidToBytes(kOvmfTableFooterGuid));
  return img;
}

std::string Rec(const char* op, uint64_t gpa) {
  std::string r(128, '\0');
  r.replace(0, std::string(op).size(), op);
  for (int i = 0; i < 8; ++i) r[16 + i] = static_cast<char>((gpa >> (8 * i)) & 0xff);
  return r;
}

constexpr char kPythonSinglePass[] =
    "c258c887f677ee6e2027835312b109b5d0cd4de0b27722a66b51e440"
    "210d590e0174727506ea168692327bc9b5d289eb";
constexpr char kPythonTwoPass[] =
    "ba3d4caa2a7c98c0411fb74d68cb740b5a21b93f1e39401e57aa9986"
    "57cb79cf07c56b3aa78da6e69c814de2eb8b46ef";

TEST(TdxMeasure, ParsesSyntheticTdvf) {
  auto sections = ParseTdvfMetadata(SyntheticTdvf());
  ASSERT_TRUE(sections.ok()) << sections.status();
  ASSERT_EQ(sections->size(), 4u);
  EXPECT_EQ((*sections)[0].memory_address, 0xFFFFC000u);
  EXPECT_EQ((*sections)[3].attributes, kTdvfAttrPageAug);
}

TEST(TdxMeasure, MrtdMatchesHandBuiltRecordStream) {
  const std::string img = SyntheticTdvf();
  std::string single, two;
  // BFV: two pages, each PAGE.ADD then 16 MR.EXTEND (single pass), or both
  // PAGE.ADDs first (two pass).
  std::string extends[2];
  for (int page = 0; page < 2; ++page) {
    for (int c = 0; c < 16; ++c) {
      const uint64_t gpa = 0xFFFFC000u + page * 0x1000 + c * 0x100;
      extends[page] += Rec("MR.EXTEND", gpa) + img.substr(page * 0x1000 + c * 0x100, 0x100);
    }
  }
  single =
      Rec("MEM.PAGE.ADD", 0xFFFFC000) + extends[0] + Rec("MEM.PAGE.ADD", 0xFFFFD000) + extends[1];
  two = Rec("MEM.PAGE.ADD", 0xFFFFC000) + Rec("MEM.PAGE.ADD", 0xFFFFD000) + extends[0] + extends[1];
  // TD HOB and TempMem: added, not extended. PermMem: PAGE.AUG, nothing.
  const std::string rest =
      Rec("MEM.PAGE.ADD", 0x809000) + Rec("MEM.PAGE.ADD", 0x80A000) + Rec("MEM.PAGE.ADD", 0x80B000);
  auto s = ComputeMrtd(img, MrtdPageOrder::kSinglePass);
  auto t = ComputeMrtd(img, MrtdPageOrder::kTwoPass);
  ASSERT_TRUE(s.ok() && t.ok());
  EXPECT_EQ(HexEncode(*s), HexEncode(Sha384(single + rest)));
  EXPECT_EQ(HexEncode(*t), HexEncode(Sha384(two + rest)));
  EXPECT_NE(*s, *t);
  // Computed independently with Python hashlib over the same image (see the
  // README of tests/testdata/tdx-measure).
  EXPECT_EQ(HexEncode(*s), kPythonSinglePass);
  EXPECT_EQ(HexEncode(*t), kPythonTwoPass);
}

TEST(TdxMeasure, MrtdFollowsMeasuredBytesOnly) {
  const std::string img = SyntheticTdvf();
  const std::string reference = *ComputeMrtd(img, MrtdPageOrder::kSinglePass);
  std::string code = img;
  code[0x1234] ^= 1;  // inside the measured BFV
  EXPECT_NE(*ComputeMrtd(code, MrtdPageOrder::kSinglePass), reference);
  std::string unmeasured = img;
  unmeasured[0x2800] ^= 1;  // outside every measured section
  EXPECT_EQ(*ComputeMrtd(unmeasured, MrtdPageOrder::kSinglePass), reference);
}

TEST(TdxMeasure, RefusesImagesWithoutTdvfMetadata) {
  std::string img = SyntheticTdvf();
  img[0x3000] = 'X';
  EXPECT_NE(ComputeMrtd(img, MrtdPageOrder::kSinglePass).status().message().find("TDVF"),
            std::string::npos);
  EXPECT_FALSE(ComputeMrtd(std::string(0x1000, '\0'), MrtdPageOrder::kSinglePass).ok());
  EXPECT_FALSE(ParseMrtdPageOrder("three-pass").ok());
}

// A minimal EFI-stub-like bzImage: MZ, PE32+ header at 0x40 with one
// section, the Linux setup header (HdrS, protocol 2.15) at 0x1f1.
std::string SyntheticKernel() {
  std::string k(0x2000, '\0');
  k[0] = 'M';
  k[1] = 'Z';
  Put32(k, 0x3c, 0x40);
  k.replace(0x40, 4, std::string("PE\0\0", 4));
  PutLe16(k, 0x44, 0x8664);  // machine
  PutLe16(k, 0x46, 1);       // one section
  PutLe16(k, 0x54, 0xF0);    // SizeOfOptionalHeader
  const size_t opt = 0x58;
  PutLe16(k, opt, 0x20b);          // PE32+
  Put32(k, opt + 60, 0x1000);      // SizeOfHeaders
  Put32(k, opt + 64, 0xdeadbeef);  // CheckSum (not hashed)
  Put32(k, opt + 108, 16);         // NumberOfRvaAndSizes
  const size_t sec = opt + 0xF0;   // 0x148
  k.replace(sec, 5, ".text");
  Put32(k, sec + 16, 0x1000);  // SizeOfRawData
  Put32(k, sec + 20, 0x1000);  // PointerToRawData
  k.replace(0x202, 4, "HdrS");
  PutLe16(k, 0x206, 0x020f);
  k[0x211] = 0x01;              // LOADED_HIGH
  Put32(k, 0x22c, 0x7fffffff);  // initrd_addr_max
  PutLe16(k, 0x236, 0x40);      // XLF_CAN_BE_LOADED_ABOVE_4G
  for (size_t i = 0x1000; i < 0x2000; ++i) k[i] = static_cast<char>(i % 253);
  return k;
}

TEST(TdxMeasure, AuthenticodeSkipsChecksumAndCertificateEntry) {
  std::string k = SyntheticKernel();
  const size_t opt = 0x58, checksum = opt + 64, certdir = opt + 112 + 4 * 8;
  const std::string expected =
      Sha384(k.substr(0, checksum) + k.substr(checksum + 4, certdir - checksum - 4) +
             k.substr(certdir + 8, 0x1000 - certdir - 8) + k.substr(0x1000, 0x1000));
  EXPECT_EQ(HexEncode(*AuthenticodeSha384(k)), HexEncode(expected));
  std::string other = k;
  Put32(other, checksum, 1);  // the checksum does not count
  EXPECT_EQ(*AuthenticodeSha384(other), *AuthenticodeSha384(k));
  other[0x1800] ^= 1;
  EXPECT_NE(*AuthenticodeSha384(other), *AuthenticodeSha384(k));
  EXPECT_FALSE(AuthenticodeSha384("not a PE file at all, just text padding........"
                                  "................")
                   .ok());
}

TEST(TdxMeasure, DirectBootRtmrs) {
  TdxDirectBoot boot;
  boot.kernel = SyntheticKernel();
  boot.initrd = std::string(5000, 'i');
  boot.cmdline = "console=hvc0";
  boot.memory_mib = 2048;
  auto r = ComputeTdxDirectBootRtmrs(boot);
  ASSERT_TRUE(r.ok()) << r.status();

  // QEMU's patches: loader type, heap, cmdline at 0x20000, initrd placed
  // below min(2 GiB, 4 GiB) - ACPI data, page aligned.
  std::string patched = *QemuPatchedKernel(boot);
  EXPECT_EQ(static_cast<uint8_t>(patched[0x210]), 0xb0);
  EXPECT_EQ(Le32(patched, 0x228), 0x20000u);
  EXPECT_EQ(Le32(patched, 0x21c), 5000u);
  EXPECT_EQ(Le32(patched, 0x218), ((0x80000000u - 0x28000u - 1u) - 5000u) & ~4095u);

  std::string rtmr1(48, '\0');
  for (const std::string& e :
       {*AuthenticodeSha384(patched), Sha384("Calling EFI Application from Boot Option"),
        Sha384(std::string(4, '\0')), Sha384("Exit Boot Services Invocation"),
        Sha384("Exit Boot Services Returned with Success")}) {
    rtmr1 = Sha384(rtmr1 + e);
  }
  EXPECT_EQ(HexEncode(r->rtmr1), HexEncode(rtmr1));

  std::string options;
  for (char c : std::string("initrd=initrd console=hvc0") + '\0') {
    options += c;
    options += '\0';
  }
  std::string rtmr2 = Sha384(std::string(48, '\0') + Sha384(options));
  rtmr2 = Sha384(rtmr2 + Sha384(*boot.initrd));
  EXPECT_EQ(HexEncode(r->rtmr2), HexEncode(rtmr2));

  TdxDirectBoot changed = boot;
  changed.cmdline = "console=hvc1";
  EXPECT_NE(ComputeTdxDirectBootRtmrs(changed)->rtmr2, r->rtmr2);
  changed = boot;
  changed.kernel[0x1900] ^= 1;
  EXPECT_NE(ComputeTdxDirectBootRtmrs(changed)->rtmr1, r->rtmr1);
}

}  // namespace
}  // namespace cloak::tee::measure
