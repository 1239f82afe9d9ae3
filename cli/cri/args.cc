#include "cli/cri/args.h"

#include <cctype>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace cloak::cri {
namespace {

const FlagSpec* Find(const std::vector<FlagSpec>& specs, absl::string_view name) {
  for (const FlagSpec& f : specs) {
    if (f.name == name) return &f;
    if (f.short_name != 0 && name.size() == 1 && name[0] == f.short_name) return &f;
  }
  return nullptr;
}

// Go's strconv.ParseBool.
std::optional<bool> ParseBool(absl::string_view s) {
  if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False") {
    return false;
  }
  return std::nullopt;
}

}  // namespace

bool ParsedFlags::Bool(const std::string& name) const {
  auto it = values.find(name);
  return it != values.end() && it->second == "true";
}

std::string ParsedFlags::Get(const std::string& name, const std::string& fallback) const {
  auto it = values.find(name);
  return it == values.end() ? fallback : it->second;
}

absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<FlagSpec>& specs,
                                       const std::vector<std::string>& argv) {
  ParsedFlags out;
  std::vector<std::string> words = argv;
  size_t i = 0;
  while (i < words.size()) {
    const std::string word = words[i];
    if (word.size() < 2 || word[0] != '-') break;  // the first argument: flags end
    ++i;
    if (word == "--") break;  // ends the flags, and is dropped
    const size_t dashes = word[1] == '-' ? 2 : 1;
    absl::string_view body = absl::string_view(word).substr(dashes);
    if (body.empty() || body[0] == '-' || body[0] == '=') {
      return absl::InvalidArgumentError(absl::StrCat("bad flag syntax: ", word));
    }
    std::optional<std::string> inline_value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      inline_value = std::string(body.substr(eq + 1));
      body = body.substr(0, eq);
    }
    if (body == "h" || body == "help") {
      out.help = true;
      continue;
    }
    const FlagSpec* spec = Find(specs, body);
    if (spec == nullptr) {
      // Short-option handling: "-it" is "-i -t" when "it" is no flag.
      bool all_short = dashes == 1 && body.size() > 1 && !inline_value.has_value();
      for (char c : body) {
        all_short = all_short && Find(specs, absl::string_view(&c, 1)) != nullptr;
      }
      if (!all_short) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag provided but not defined: -", body));
      }
      std::vector<std::string> split;
      for (char c : body) split.push_back(std::string("-") + c);
      words.insert(words.begin() + static_cast<std::ptrdiff_t>(i), split.begin(), split.end());
      continue;
    }
    if (!spec->takes_value) {
      bool value = true;
      if (inline_value.has_value()) {
        auto b = ParseBool(*inline_value);
        if (!b.has_value()) {
          return absl::InvalidArgumentError(absl::StrCat("invalid boolean value \"", *inline_value,
                                                         "\" for -", body, ": parse error"));
        }
        value = *b;
      }
      if (value) {
        out.values[spec->name] = "true";
      } else {
        out.values.erase(spec->name);
      }
      continue;
    }
    if (inline_value.has_value()) {
      out.values[spec->name] = *inline_value;
    } else if (i < words.size()) {
      out.values[spec->name] = words[i++];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("flag needs an argument: -", body));
    }
  }
  out.args.assign(words.begin() + static_cast<std::ptrdiff_t>(i), words.end());
  return out;
}

absl::StatusOr<absl::Duration> ParseTimeout(absl::string_view text) {
  int64_t seconds = 0;
  if (absl::SimpleAtoi(text, &seconds) && seconds >= 0) return absl::Seconds(seconds);
  absl::Duration d;
  if (!text.empty() && std::isdigit(static_cast<unsigned char>(text[0])) != 0 &&
      absl::ParseDuration(text, &d) && d >= absl::ZeroDuration()) {
    return d;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid value \"", text, "\" for flag -t: a duration such as 2s, 240s or 1m30s"));
}

std::string FlagsHelp(const std::vector<FlagSpec>& specs) {
  std::vector<std::pair<std::string, std::string>> lines;
  size_t width = 0;
  for (const FlagSpec& f : specs) {
    std::string left = absl::StrCat("--", f.name);
    if (f.takes_value) absl::StrAppend(&left, " ", f.value_name.empty() ? "value" : f.value_name);
    if (f.short_name != 0) {
      absl::StrAppend(&left, ", -", std::string(1, f.short_name));
      if (f.takes_value) absl::StrAppend(&left, " ", f.value_name.empty() ? "value" : f.value_name);
    }
    width = std::max(width, left.size());
    lines.emplace_back(left, f.usage);
  }
  lines.emplace_back("--help, -h", "show help");
  width = std::max(width, lines.back().first.size());
  std::string out;
  for (const auto& [left, usage] : lines) {
    absl::StrAppend(&out, "   ", left, std::string(width - left.size() + 2, ' '), usage, "\n");
  }
  return out;
}

}  // namespace cloak::cri
