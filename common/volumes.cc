#include "common/volumes.h"

#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace cloak {
namespace {

// The sandbox files containerd's CRI plugin binds into every container.
bool IsSandboxFile(absl::string_view destination) {
  for (absl::string_view d :
       {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/shm", "/dev/termination-log"}) {
    if (destination == d) return true;
  }
  return false;
}

bool IsBind(absl::string_view type, const std::vector<std::string>& options) {
  if (type == "bind" || type == "rbind") return true;
  for (const std::string& o : options) {
    if (o == "bind" || o == "rbind") return true;
  }
  return false;
}

// A single path component usable as a directory name in the guest.
bool IsSafeComponent(absl::string_view c) {
  if (c.empty() || c == "." || c == ".." || c.size() > 255) return false;
  for (char ch : c) {
    if (ch == '/' || ch == '\0') return false;
  }
  return true;
}

bool IsUid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-')) return false;
  }
  return true;
}

uint64_t Fnv1a64(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

bool IsCleanAbsolutePath(absl::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  if (path == "/") return true;
  if (path.back() == '/') return false;
  for (absl::string_view c : absl::StrSplit(path.substr(1), '/')) {
    if (c.empty() || c == "." || c == "..") return false;
  }
  return path.find('\0') == absl::string_view::npos;
}

std::optional<std::string> ResolveSymlinkLexically(absl::string_view link_path,
                                                   absl::string_view target) {
  if (target.empty() || target.front() == '/') return std::nullopt;
  std::vector<std::string> parts;
  size_t slash = link_path.rfind('/');
  absl::string_view dir = slash == absl::string_view::npos ? "" : link_path.substr(0, slash);
  for (absl::string_view c : absl::StrSplit(dir, '/', absl::SkipEmpty())) parts.emplace_back(c);
  for (absl::string_view c : absl::StrSplit(target, '/', absl::SkipEmpty())) {
    if (c == ".") continue;
    if (c == "..") {
      if (parts.empty()) return std::nullopt;
      parts.pop_back();
      continue;
    }
    parts.emplace_back(c);
  }
  return absl::StrCat("/", absl::StrJoin(parts, "/"));
}

absl::StatusOr<std::optional<GuestVolume>> GuestVolumeForMount(
    absl::string_view destination, absl::string_view type, absl::string_view source,
    const std::vector<std::string>& options) {
  if (!IsBind(type, options) || IsSandboxFile(destination)) return std::nullopt;
  if (!IsCleanAbsolutePath(source) || source == "/" || source.size() > kMaxGuestPathBytes / 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bind mount to \"", destination, "\" has source \"", source,
        "\", not a clean absolute path (no \"..\", \".\", \"//\" or trailing \"/\")"));
  }
  GuestVolume v;
  v.host_source = std::string(source);
  for (const std::string& o : options) {
    if (o == "ro") v.readonly = true;
  }
  // kubelet: <root>/pods/<uid>/volumes/<plugin kind>/<name>[/<file>].
  std::vector<absl::string_view> parts = absl::StrSplit(source.substr(1), '/');
  std::string rest;
  for (size_t i = 0; i + 4 < parts.size(); ++i) {
    if (parts[i] == "pods" && IsUid(parts[i + 1]) && parts[i + 2] == "volumes" &&
        IsSafeComponent(parts[i + 3]) && IsSafeComponent(parts[i + 4])) {
      v.kind = std::string(parts[i + 3]);
      v.name = std::string(parts[i + 4]);
      for (size_t j = i + 5; j < parts.size(); ++j) absl::StrAppend(&rest, "/", parts[j]);
      break;
    }
  }
  if (v.kind.empty()) {
    v.kind = kHostPathVolumeKind;
    absl::string_view base = parts.back();
    if (base.size() > 64) base = base.substr(0, 64);
    v.name = absl::StrFormat("%s-%016x", base, Fnv1a64(source));
  }
  v.empty_dir = v.kind == kEmptyDirVolumeKind;
  v.guest_volume_dir = absl::StrCat(kGuestVolumeRoot, "/", v.kind, "/", v.name);
  v.guest_path = absl::StrCat(v.guest_volume_dir, rest);
  return v;
}

}  // namespace cloak
