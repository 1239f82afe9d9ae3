#include "common/tee/measure/ovmf.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace cloak::tee::measure {
namespace {

constexpr size_t kEntryHeader = 2 + 16;  // u16 size + GUID
constexpr size_t kBytesAfterFooter = 32;

int HexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string GuidToBytes(absl::string_view text) {
  std::string hex;
  for (char c : text) {
    if (c != '-') hex += c;
  }
  if (hex.size() != 32) std::abort();  // only called with the constants above
  std::string raw(16, '\0');
  for (size_t i = 0; i < 16; ++i) {
    int hi = HexNibble(hex[2 * i]), lo = HexNibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) std::abort();
    raw[i] = static_cast<char>(hi << 4 | lo);
  }
  // time_low (4), time_mid (2), time_hi (2) are stored little-endian.
  std::swap(raw[0], raw[3]);
  std::swap(raw[1], raw[2]);
  std::swap(raw[4], raw[5]);
  std::swap(raw[6], raw[7]);
  return raw;
}

uint16_t Le16(absl::string_view b, size_t off) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[off]) | static_cast<uint8_t>(b[off + 1])
                                                                  << 8);
}
uint32_t Le32(absl::string_view b, size_t off) {
  return static_cast<uint32_t>(Le16(b, off)) | static_cast<uint32_t>(Le16(b, off + 2)) << 16;
}
uint64_t Le64(absl::string_view b, size_t off) {
  return static_cast<uint64_t>(Le32(b, off)) | static_cast<uint64_t>(Le32(b, off + 4)) << 32;
}
void PutLe16(std::string& b, size_t off, uint16_t v) {
  for (size_t i = 0; i < 2; ++i) b[off + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutLe32(std::string& b, size_t off, uint32_t v) {
  for (size_t i = 0; i < 4; ++i) b[off + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutLe64(std::string& b, size_t off, uint64_t v) {
  for (size_t i = 0; i < 8; ++i) b[off + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

absl::StatusOr<std::map<std::string, std::string>> ParseFooterTable(absl::string_view image) {
  if (image.size() < kBytesAfterFooter + kEntryHeader) {
    return absl::InvalidArgumentError(
        absl::StrCat("firmware image of ", image.size(), " bytes is too small for a footer table"));
  }
  const size_t footer = image.size() - kBytesAfterFooter - kEntryHeader;
  if (image.substr(footer + 2, 16) != GuidToBytes(kOvmfTableFooterGuid)) {
    return absl::InvalidArgumentError(
        "firmware image has no OVMF footer table (GUID 96b582de-... 32 bytes before its end); "
        "is it an OVMF/TDVF build?");
  }
  const size_t full = Le16(image, footer);
  if (full < kEntryHeader || full - kEntryHeader > footer) {
    return absl::InvalidArgumentError(
        absl::StrCat("firmware footer table size ", full, " does not fit the image"));
  }
  absl::string_view table = image.substr(footer - (full - kEntryHeader), full - kEntryHeader);
  std::map<std::string, std::string> entries;
  size_t end = table.size();
  while (end >= kEntryHeader) {
    const size_t size = Le16(table, end - kEntryHeader);
    if (size < kEntryHeader || size > end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "firmware footer table entry ending at table offset ", end, " has invalid size ", size));
    }
    std::string guid(table.substr(end - 16, 16));
    entries[guid] = std::string(table.substr(end - size, size - kEntryHeader));
    end -= size;
  }
  return entries;
}

}  // namespace cloak::tee::measure
