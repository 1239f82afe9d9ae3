#include "kbs/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "kbs/verify/openssl_util.h"

namespace cloak::kbs {
namespace {

bool ValidPart(absl::string_view part) {
  if (part.empty() || part.size() > 128 || part == "." || part == "..") return false;
  for (char c : part) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

absl::Status MakeDirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return ErrnoError(ec.value(), "mkdir -p ", path);
  std::filesystem::permissions(path, std::filesystem::perms::owner_all, ec);
  return absl::OkStatus();
}

// Writes `data` to `path` atomically (temporary file, fsync, rename), 0600.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view data) {
  std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(errno, "create ", tmp);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return ErrnoError(err, "write ", tmp);
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoError(err, "fsync/close ", tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoError(err, "rename ", tmp, " to ", path);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ResourcePath> ParseResourcePath(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '/');
  if (parts.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resource path \"", text, "\" must be <repository>/<type>/<tag>"));
  }
  for (absl::string_view part : parts) {
    if (!ValidPart(part)) {
      return absl::InvalidArgumentError(
          absl::StrCat("resource path \"", text, "\": part \"", part,
                       "\" must be 1-128 characters of [A-Za-z0-9._-] and not . or .."));
    }
  }
  return ResourcePath{std::string(parts[0]), std::string(parts[1]), std::string(parts[2])};
}

absl::StatusOr<ResourceStore> ResourceStore::Open(const std::string& state_dir) {
  if (state_dir.empty()) return absl::InvalidArgumentError("state directory not set");
  RETURN_IF_ERROR(MakeDirs(state_dir));
  RETURN_IF_ERROR(MakeDirs(state_dir + "/resources"));
  RETURN_IF_ERROR(MakeDirs(state_dir + "/policies"));
  return ResourceStore(state_dir);
}

absl::Status ResourceStore::PutResource(const ResourcePath& path, absl::string_view data) const {
  std::string dir = absl::StrCat(dir_, "/resources/", path.repo, "/", path.type);
  RETURN_IF_ERROR(MakeDirs(dir));
  return WriteFileAtomic(absl::StrCat(dir, "/", path.tag), data);
}

absl::StatusOr<std::string> ResourceStore::GetResource(const ResourcePath& path) const {
  std::string file = absl::StrCat(dir_, "/resources/", path.ToString());
  if (!std::filesystem::is_regular_file(file)) {
    return absl::NotFoundError(absl::StrCat("resource ", path.ToString(), " not found"));
  }
  return ReadFile(file);
}

absl::Status ResourceStore::SetPolicy(const ResourcePath* path,
                                      absl::string_view policy_json) const {
  ASSIGN_OR_RETURN(ResourcePolicy policy, ParseResourcePolicy(policy_json));
  std::string text = policy.ToJson().dump(2) + "\n";
  if (path == nullptr) return WriteFileAtomic(dir_ + "/policies/default.json", text);
  std::string dir = absl::StrCat(dir_, "/policies/", path->repo, "/", path->type);
  RETURN_IF_ERROR(MakeDirs(dir));
  return WriteFileAtomic(absl::StrCat(dir, "/", path->tag, ".json"), text);
}

absl::StatusOr<ResourcePolicy> ResourceStore::GetPolicy(const ResourcePath& path) const {
  for (const std::string& file : {absl::StrCat(dir_, "/policies/", path.ToString(), ".json"),
                                  dir_ + "/policies/default.json"}) {
    if (!std::filesystem::is_regular_file(file)) continue;
    ASSIGN_OR_RETURN(std::string text, ReadFile(file));
    auto policy = ParseResourcePolicy(text);
    if (!policy.ok()) return Annotate(policy.status(), file);
    return policy;
  }
  return absl::NotFoundError(absl::StrCat(
      "no key-release policy for resource ", path.ToString(),
      " and no default policy; set one with `cloak-kbs admin set-policy`"));
}

absl::StatusOr<std::string> ResourceStore::TokenKey() const {
  std::string file = dir_ + "/token.key";
  if (std::filesystem::is_regular_file(file)) {
    ASSIGN_OR_RETURN(std::string key, ReadFile(file));
    if (key.size() != 32) {
      return absl::DataLossError(absl::StrCat(file, " is not 32 bytes; delete it to make a new one"));
    }
    return key;
  }
  ASSIGN_OR_RETURN(std::string key, RandomBytes(32));
  RETURN_IF_ERROR(WriteFileAtomic(file, key));
  return key;
}

}  // namespace cloak::kbs
