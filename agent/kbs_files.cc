#include "agent/kbs_files.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace cloak::agent {

using nlohmann::json;

FileOwner ProcessOwner(const json& spec) {
  FileOwner owner;
  const json* user = nullptr;
  if (spec.is_object() && spec.contains("process") && spec["process"].is_object() &&
      spec["process"].contains("user") && spec["process"]["user"].is_object()) {
    user = &spec["process"]["user"];
  }
  if (user == nullptr) return owner;
  if (user->contains("uid") && (*user)["uid"].is_number_unsigned()) {
    owner.uid = (*user)["uid"].get<uid_t>();
  }
  if (user->contains("gid") && (*user)["gid"].is_number_unsigned()) {
    owner.gid = (*user)["gid"].get<gid_t>();
  }
  return owner;
}

absl::StatusOr<std::vector<json>> WriteKbsFiles(const std::string& dir,
                                                const std::vector<KbsFile>& files,
                                                const std::vector<std::string>& contents,
                                                FileOwner owner, bool require_tmpfs) {
  if (files.size() != contents.size()) {
    return absl::InternalError("kbs files: one content per file expected");
  }
  std::vector<json> mounts;
  if (files.empty()) return mounts;
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  if (::chmod(dir.c_str(), 0700) != 0) return ErrnoError(errno, absl::StrCat("chmod ", dir));
  if (require_tmpfs) {
    struct statfs fs;
    if (::statfs(dir.c_str(), &fs) != 0) return ErrnoError(errno, absl::StrCat("statfs ", dir));
    if (fs.f_type != TMPFS_MAGIC) {
      return absl::FailedPreconditionError(absl::StrCat(
          "kbs files: ", dir, " is not on a tmpfs; refusing to write key broker secrets there"));
    }
  }
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string path = absl::StrCat(dir, "/", i);
    ::unlink(path.c_str());
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400));
    if (!fd) return ErrnoError(errno, absl::StrCat("create ", path));
    const std::string& data = contents[i];
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError(errno, absl::StrCat("write ", path));
      done += static_cast<size_t>(n);
    }
    if (::fchown(fd.get(), owner.uid, owner.gid) != 0) {
      return ErrnoError(errno, absl::StrCat("chown ", path, " to ", owner.uid, ":", owner.gid));
    }
    if (::fchmod(fd.get(), 0400) != 0) return ErrnoError(errno, absl::StrCat("chmod ", path));
    mounts.push_back(json{{"destination", files[i].destination},
                          {"type", "bind"},
                          {"source", path},
                          {"options", {"bind", "ro", "nosuid", "nodev", "noexec", "rprivate"}}});
  }
  return mounts;
}

}  // namespace cloak::agent
