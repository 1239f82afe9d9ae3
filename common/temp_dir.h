// TempDir: a fresh directory removed recursively on destruction.
#ifndef CLOAK_COMMON_TEMP_DIR_H_
#define CLOAK_COMMON_TEMP_DIR_H_

#include <filesystem>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace cloak {

class TempDir {
 public:
  // Creates `<base>/<prefix>XXXXXX` (base defaults to $TMPDIR or /tmp).
  static absl::StatusOr<TempDir> Create(absl::string_view prefix = "cloak-",
                                        absl::string_view base = "");
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::filesystem::path& path() const { return path_; }
  std::string Join(absl::string_view name) const { return (path_ / std::string(name)).string(); }

 private:
  explicit TempDir(std::filesystem::path path) : path_(std::move(path)) {}
  void Remove();
  std::filesystem::path path_;
};

}  // namespace cloak

#endif  // CLOAK_COMMON_TEMP_DIR_H_
