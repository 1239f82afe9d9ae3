#include "common/tee/canonical_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cloak::tee {
namespace {

// UTF-8 → UTF-16 code units; false for malformed UTF-8 (overlong forms,
// surrogates, values above U+10FFFF, truncated sequences).
bool Utf16(absl::string_view s, std::u16string* out) {
  out->clear();
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
      cp = c, len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F, len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F, len = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07, len = 4;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out->push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
      out->push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      out->push_back(static_cast<char16_t>(cp));
    }
    i += len;
  }
  return true;
}

absl::Status AppendString(absl::string_view s, std::string* out) {
  std::u16string ignored;
  if (!Utf16(s, &ignored))
    return absl::InvalidArgumentError("canonical JSON: a string is not UTF-8");
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\r':
        out->append("\\r");
        break;
      default:
        if (c < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
  return absl::OkStatus();
}

absl::Status Append(const nlohmann::json& v, std::string* out) {
  switch (v.type()) {
    case nlohmann::json::value_t::null:
      out->append("null");
      return absl::OkStatus();
    case nlohmann::json::value_t::boolean:
      out->append(v.get<bool>() ? "true" : "false");
      return absl::OkStatus();
    case nlohmann::json::value_t::number_integer: {
      ASSIGN_OR_RETURN(std::string n, CanonicalNumber(static_cast<double>(v.get<int64_t>())));
      out->append(n);
      return absl::OkStatus();
    }
    case nlohmann::json::value_t::number_unsigned: {
      ASSIGN_OR_RETURN(std::string n, CanonicalNumber(static_cast<double>(v.get<uint64_t>())));
      out->append(n);
      return absl::OkStatus();
    }
    case nlohmann::json::value_t::number_float: {
      ASSIGN_OR_RETURN(std::string n, CanonicalNumber(v.get<double>()));
      out->append(n);
      return absl::OkStatus();
    }
    case nlohmann::json::value_t::string:
      return AppendString(v.get_ref<const std::string&>(), out);
    case nlohmann::json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const auto& item : v) {
        if (!first) out->push_back(',');
        first = false;
        RETURN_IF_ERROR(Append(item, out));
      }
      out->push_back(']');
      return absl::OkStatus();
    }
    case nlohmann::json::value_t::object: {
      std::vector<std::pair<std::u16string, nlohmann::json::const_iterator>> members;
      for (auto it = v.begin(); it != v.end(); ++it) {
        std::u16string key;
        if (!Utf16(it.key(), &key)) {
          return absl::InvalidArgumentError("canonical JSON: a member name is not UTF-8");
        }
        members.emplace_back(std::move(key), it);
      }
      std::sort(members.begin(), members.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      out->push_back('{');
      bool first = true;
      for (const auto& [key, it] : members) {
        if (!first) out->push_back(',');
        first = false;
        RETURN_IF_ERROR(AppendString(it.key(), out));
        out->push_back(':');
        RETURN_IF_ERROR(Append(it.value(), out));
      }
      out->push_back('}');
      return absl::OkStatus();
    }
    case nlohmann::json::value_t::binary:
    case nlohmann::json::value_t::discarded:
      break;
  }
  return absl::InvalidArgumentError("canonical JSON: value is not JSON (binary or discarded)");
}

}  // namespace

absl::StatusOr<std::string> CanonicalNumber(double value) {
  if (std::isnan(value) || std::isinf(value)) {
    return absl::InvalidArgumentError("canonical JSON: NaN and infinities are not JSON numbers");
  }
  if (value == 0) return std::string("0");  // also -0
  std::string sign;
  if (value < 0) {
    sign = "-";
    value = -value;
  }
  // Shortest round-trip digits, as "d.ddde±x".
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  if (ec != std::errc()) return absl::InternalError("canonical JSON: number formatting failed");
  absl::string_view sci(buf, static_cast<size_t>(end - buf));
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exponent = 0;
  std::from_chars(sci.data() + e_pos + 1 + (sci[e_pos + 1] == '+' ? 1 : 0), sci.data() + sci.size(),
                  exponent);
  // ECMAScript Number::toString: k digits, value = digits × 10^(n−k).
  const int k = static_cast<int>(digits.size());
  const int n = exponent + 1;
  std::string out = sign;
  if (k <= n && n <= 21) {
    absl::StrAppend(&out, digits, std::string(static_cast<size_t>(n - k), '0'));
  } else if (0 < n && n <= 21) {
    absl::StrAppend(&out, digits.substr(0, static_cast<size_t>(n)), ".",
                    digits.substr(static_cast<size_t>(n)));
  } else if (-6 < n && n <= 0) {
    absl::StrAppend(&out, "0.", std::string(static_cast<size_t>(-n), '0'), digits);
  } else {
    const int e = n - 1;
    absl::StrAppend(&out, digits.substr(0, 1), k > 1 ? "." : "", digits.substr(1), "e",
                    e > 0 ? "+" : "-", std::abs(e));
  }
  return out;
}

absl::StatusOr<std::string> CanonicalJson(const nlohmann::json& value) {
  std::string out;
  RETURN_IF_ERROR(Append(value, &out));
  return out;
}

absl::StatusOr<std::string> CanonicalizeJsonText(absl::string_view json_text) {
  nlohmann::json value = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr,
                                               /*allow_exceptions=*/false);
  if (value.is_discarded()) return absl::InvalidArgumentError("canonical JSON: input is not JSON");
  return CanonicalJson(value);
}

}  // namespace cloak::tee
