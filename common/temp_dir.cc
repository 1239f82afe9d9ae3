#include "common/temp_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cloak {

absl::StatusOr<TempDir> TempDir::Create(absl::string_view prefix, absl::string_view base) {
  std::string dir(base);
  if (dir.empty()) {
    const char* env = std::getenv("TMPDIR");
    dir = (env != nullptr && *env != '\0') ? env : "/tmp";
  }
  std::string pattern = absl::StrCat(dir, "/", prefix, "XXXXXX");
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    return ErrnoError(errno, "create temporary directory ", pattern);
  }
  return TempDir(std::filesystem::path(buf.data()));
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

TempDir::~TempDir() { Remove(); }

void TempDir::Remove() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  path_.clear();
}

}  // namespace cloak
