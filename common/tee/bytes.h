// Little-endian field access for the report and quote layouts. Callers
// check bounds first. Pure.
#ifndef CLOAK_COMMON_TEE_BYTES_H_
#define CLOAK_COMMON_TEE_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace cloak::tee {

inline uint64_t LeField(absl::string_view b, size_t off, size_t size) {
  uint64_t v = 0;
  for (size_t i = size; i > 0; --i) v = (v << 8) | static_cast<unsigned char>(b[off + i - 1]);
  return v;
}
inline uint16_t Le16(absl::string_view b, size_t off) {
  return static_cast<uint16_t>(LeField(b, off, 2));
}
inline uint32_t Le32(absl::string_view b, size_t off) {
  return static_cast<uint32_t>(LeField(b, off, 4));
}
inline uint64_t Le64(absl::string_view b, size_t off) { return LeField(b, off, 8); }

// Writes the low `size` bytes of `v` little-endian at `off`.
inline void PutLe(std::string& b, size_t off, size_t size, uint64_t v) {
  for (size_t i = 0; i < size; ++i) b[off + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace cloak::tee

#endif  // CLOAK_COMMON_TEE_BYTES_H_
