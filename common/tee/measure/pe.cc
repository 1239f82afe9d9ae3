#include "common/tee/measure/pe.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/tee/digest.h"
#include "common/tee/measure/ovmf.h"

namespace cloak::tee::measure {
namespace {

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("kernel is not a usable PE/COFF image: ", what));
}

}  // namespace

absl::StatusOr<std::string> AuthenticodeSha384(absl::string_view image) {
  if (image.size() < 0x40 || image.substr(0, 2) != "MZ") return Bad("no MZ header");
  const size_t pe = Le32(image, 0x3C);
  if (pe > image.size() || image.size() - pe < 24 ||
      image.substr(pe, 4) != std::string("PE\0\0", 4)) {
    return Bad("no PE signature at e_lfanew");
  }
  const size_t coff = pe + 4;
  const uint16_t sections = Le16(image, coff + 2);
  const uint16_t opt_size = Le16(image, coff + 16);
  const size_t opt = coff + 20;
  if (opt_size < 2 || opt + opt_size > image.size()) return Bad("optional header outside the file");
  const uint16_t magic = Le16(image, opt);
  size_t dirs;  // offset of NumberOfRvaAndSizes
  if (magic == 0x10b) {
    dirs = opt + 92;
  } else if (magic == 0x20b) {
    dirs = opt + 108;
  } else {
    return Bad("unknown optional header magic");
  }
  if (dirs + 4 > opt + opt_size) return Bad("optional header too short");
  const size_t checksum = opt + 64;
  const size_t size_of_headers_off = opt + 60;
  const uint32_t num_dirs = Le32(image, dirs);
  const size_t cert_dir = dirs + 4 + 8 * 4;  // data directory 4: certificate table
  const bool has_cert_dir = num_dirs > 4 && cert_dir + 8 <= opt + opt_size;
  const uint32_t size_of_headers = Le32(image, size_of_headers_off);
  if (size_of_headers > image.size()) return Bad("SizeOfHeaders beyond the file");

  HashStream h(HashAlgorithm::kSha384);
  h.Update(image.substr(0, checksum));
  size_t after_checksum = checksum + 4;
  uint32_t cert_offset = 0, cert_size = 0;
  if (has_cert_dir) {
    h.Update(image.substr(after_checksum, cert_dir - after_checksum));
    cert_offset = Le32(image, cert_dir);
    cert_size = Le32(image, cert_dir + 4);
    if (size_of_headers < cert_dir + 8) return Bad("SizeOfHeaders inside the data directories");
    h.Update(image.substr(cert_dir + 8, size_of_headers - (cert_dir + 8)));
  } else {
    if (size_of_headers < after_checksum) return Bad("SizeOfHeaders inside the optional header");
    h.Update(image.substr(after_checksum, size_of_headers - after_checksum));
  }

  const size_t table = opt + opt_size;
  if (table + 40ull * sections > image.size()) return Bad("section table outside the file");
  struct Raw {
    uint32_t offset, size;
  };
  std::vector<Raw> raw;
  for (uint16_t i = 0; i < sections; ++i) {
    const size_t s = table + 40ull * i;
    Raw r{Le32(image, s + 20), Le32(image, s + 16)};
    if (r.size == 0) continue;
    if (r.offset > image.size() || r.size > image.size() - r.offset) {
      return Bad(absl::StrCat("section ", i, " raw data beyond the file"));
    }
    raw.push_back(r);
  }
  std::stable_sort(raw.begin(), raw.end(),
                   [](const Raw& a, const Raw& b) { return a.offset < b.offset; });
  uint64_t hashed = size_of_headers;
  for (const Raw& r : raw) {
    h.Update(image.substr(r.offset, r.size));
    hashed += r.size;
  }
  if (image.size() > hashed) {
    uint64_t extra = image.size() - hashed;
    if (cert_size != 0) {
      if (cert_size > extra) return Bad("certificate table larger than the trailing data");
      extra -= cert_size;
    }
    (void)cert_offset;
    h.Update(image.substr(hashed, extra));
  }
  return h.Finish();
}

}  // namespace cloak::tee::measure
