#include "snapshotter/filters.h"

#include <optional>

#include "absl/strings/str_cat.h"

namespace cloak::snapshotter {
namespace {

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<Filter> Parse() {
    Filter filter;
    SkipSpace();
    if (AtEnd()) return Error("empty filter");
    while (true) {
      FilterTerm term;
      absl::StatusOr<std::string> part = Word(/*in_field=*/true);
      if (!part.ok()) return part.status();
      term.field.push_back(*part);
      while (Peek('.')) {
        ++pos_;
        part = Word(true);
        if (!part.ok()) return part.status();
        term.field.push_back(*part);
      }
      SkipSpace();
      if (Consume("==")) {
        term.op = FilterTerm::Op::kEqual;
      } else if (Consume("!=")) {
        term.op = FilterTerm::Op::kNotEqual;
      } else if (Peek('~')) {
        return Error("the ~= (regular expression) operator is not supported");
      }
      if (term.op != FilterTerm::Op::kPresent) {
        SkipSpace();
        part = Word(/*in_field=*/false);
        if (!part.ok()) return part.status();
        term.value = *part;
      }
      filter.push_back(std::move(term));
      SkipSpace();
      if (AtEnd()) return filter;
      if (!Peek(',')) return Error("expected ',' or the end");
      ++pos_;
      SkipSpace();
    }
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  bool Peek(char c) const { return !AtEnd() && text_[pos_] == c; }
  bool Consume(absl::string_view s) {
    if (text_.substr(pos_, s.size()) != s) return false;
    pos_ += s.size();
    return true;
  }
  void SkipSpace() {
    while (!AtEnd() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("filter \"", text_, "\" at offset ", pos_, ": ", what));
  }
  // A quoted string ("..." or `...`) or a bare run of characters that are
  // not separators.
  absl::StatusOr<std::string> Word(bool in_field) {
    if (Peek('"') || Peek('`')) {
      const char quote = text_[pos_++];
      std::string out;
      while (!AtEnd() && text_[pos_] != quote) {
        if (quote == '"' && text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
        out.push_back(text_[pos_++]);
      }
      if (AtEnd()) return Error("unterminated quote");
      ++pos_;
      return out;
    }
    const size_t start = pos_;
    while (!AtEnd()) {
      const char c = text_[pos_];
      if (c == ',' || c == ' ' || c == '\t' || c == '"') break;
      if (in_field && (c == '.' || c == '=' || c == '!' || c == '~')) break;
      ++pos_;
    }
    if (pos_ == start) return Error(in_field ? "expected a field name" : "expected a value");
    return std::string(text_.substr(start, pos_ - start));
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

std::optional<std::string> FieldValue(const std::vector<std::string>& field, const Snapshot& s) {
  if (field.size() == 1) {
    if (field[0] == "name") return s.name;
    if (field[0] == "parent") return s.parent;
    if (field[0] == "kind") return std::string(KindName(s.kind));
    return std::nullopt;
  }
  if (field.size() >= 2 && field[0] == "labels") {
    // A bare dotted key (labels.a.b) is the key "a.b".
    std::string key = field[1];
    for (size_t i = 2; i < field.size(); ++i) absl::StrAppend(&key, ".", field[i]);
    auto it = s.labels.find(key);
    if (it == s.labels.end()) return std::nullopt;
    return it->second;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<Filter> ParseFilter(absl::string_view text) { return Parser(text).Parse(); }

bool Matches(const Filter& filter, const Snapshot& snapshot) {
  for (const FilterTerm& term : filter) {
    std::optional<std::string> v = FieldValue(term.field, snapshot);
    switch (term.op) {
      case FilterTerm::Op::kPresent:
        if (!v.has_value()) return false;
        break;
      case FilterTerm::Op::kEqual:
        if (!v.has_value() || *v != term.value) return false;
        break;
      case FilterTerm::Op::kNotEqual:
        if (v.has_value() && *v == term.value) return false;
        break;
    }
  }
  return true;
}

bool MatchesAny(const std::vector<Filter>& filters, const Snapshot& snapshot) {
  if (filters.empty()) return true;
  for (const Filter& f : filters) {
    if (Matches(f, snapshot)) return true;
  }
  return false;
}

}  // namespace cloak::snapshotter
