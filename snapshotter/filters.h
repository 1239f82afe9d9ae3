// The subset of containerd's filter syntax that snapshot listings use
// (pure): `field==value`, `field!=value` and bare `field` (present), joined
// by commas (all must hold); a list of filters matches when any one does.
// Fields: name, parent, kind, labels.<key> (keys may be quoted:
// labels."containerd.io/snapshot.ref"). Values may be quoted.
#ifndef CLOAK_SNAPSHOTTER_FILTERS_H_
#define CLOAK_SNAPSHOTTER_FILTERS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "snapshotter/snapshot.h"

namespace cloak::snapshotter {

struct FilterTerm {
  enum class Op { kPresent, kEqual, kNotEqual };
  std::vector<std::string> field;  // e.g. {"labels", "containerd.io/snapshot.ref"}
  Op op = Op::kPresent;
  std::string value;
};
using Filter = std::vector<FilterTerm>;  // all terms must match

// InvalidArgument naming the position for malformed input or unsupported
// operators (`~=`).
absl::StatusOr<Filter> ParseFilter(absl::string_view text);

bool Matches(const Filter& filter, const Snapshot& snapshot);
// True when `filters` is empty or any of them matches.
bool MatchesAny(const std::vector<Filter>& filters, const Snapshot& snapshot);

}  // namespace cloak::snapshotter

#endif  // CLOAK_SNAPSHOTTER_FILTERS_H_
