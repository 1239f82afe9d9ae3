#include "common/tee/encoding.h"

#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace cloak::tee {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// 0..63, or -1 when `c` is not in the alphabet.
int Base64Value(char c, bool url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (url ? '-' : '+')) return 62;
  if (c == (url ? '_' : '/')) return 63;
  return -1;
}

absl::StatusOr<std::string> DecodeWith(absl::string_view text, bool url) {
  size_t data_len = text.size();
  while (data_len > 0 && text[data_len - 1] == '=') --data_len;
  const size_t padding = text.size() - data_len;
  if (data_len % 4 == 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid base64: ", data_len, " characters cannot encode whole bytes"));
  }
  if (padding != 0 && (padding > 2 || (data_len + padding) % 4 != 0)) {
    return absl::InvalidArgumentError("invalid base64: wrong padding");
  }
  std::string out;
  out.reserve(data_len * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < data_len; ++i) {
    int v = Base64Value(text[i], url);
    if (v < 0) {
      return absl::InvalidArgumentError(absl::StrCat("invalid base64: character ", i,
                                                     " is not in the ",
                                                     url ? "url-safe" : "standard", " alphabet"));
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) {
    return absl::InvalidArgumentError("invalid base64: non-zero bits after the last byte");
  }
  return out;
}

}  // namespace

std::string HexEncode(absl::string_view bytes) { return absl::BytesToHexString(bytes); }

absl::StatusOr<std::string> HexDecode(absl::string_view hex) {
  if (hex.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("hex string of odd length ", hex.size()));
  }
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(absl::StrCat("not a hex digit at position ", 2 * i));
    }
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::string Base64Encode(absl::string_view bytes) { return absl::Base64Escape(bytes); }
std::string Base64UrlEncode(absl::string_view bytes) { return absl::WebSafeBase64Escape(bytes); }

absl::StatusOr<std::string> Base64Decode(absl::string_view text, Base64Alphabet alphabet) {
  switch (alphabet) {
    case Base64Alphabet::kStandard:
      return DecodeWith(text, /*url=*/false);
    case Base64Alphabet::kUrlSafe:
      return DecodeWith(text, /*url=*/true);
    case Base64Alphabet::kEither: {
      const bool url = text.find_first_of("-_") != absl::string_view::npos;
      return DecodeWith(text, url);
    }
  }
  return absl::InvalidArgumentError("unknown base64 alphabet");
}

}  // namespace cloak::tee
