#include "shim/volumes.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include <algorithm>
#include <cerrno>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace cloak::shim {
namespace {

namespace agentpb = ::cloak::agent::v1;

std::shared_ptr<spdlog::logger> Log() { return Logger("volumes"); }

struct Walk {
  const GuestVolume& volume;
  VolumeSnapshot out;
  size_t bytes = 0;
};

absl::Status ReadWhole(int dir, const std::string& name, size_t limit, std::string* data,
                       const std::string& shown) {
  int fd = ::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("volume: open ", shown));
  UniqueFd f(fd);
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(f.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("volume: read ", shown));
    }
    if (n == 0) return absl::OkStatus();
    if (data->size() + static_cast<size_t>(n) > limit) {
      return absl::ResourceExhaustedError(absl::StrCat("volume: ", shown, " makes the volume larger than ",
                                                       kMaxVolumeBytes, " bytes"));
    }
    data->append(buf, static_cast<size_t>(n));
  }
}

// Adds the entry `name` of `dir` (guest path `guest`), and what it holds.
absl::Status AddEntry(Walk& w, int dir, const std::string& name, const std::string& host,
                      const std::string& guest, int depth) {
  if (depth > kMaxVolumeDepth) {
    return absl::ResourceExhaustedError(absl::StrCat("volume: ", host, " is nested deeper than ",
                                                     kMaxVolumeDepth));
  }
  if (w.out.entries.size() >= kMaxVolumeEntries) {
    return absl::ResourceExhaustedError(absl::StrCat("volume: ", w.volume.host_source, " has more than ",
                                                     kMaxVolumeEntries, " entries"));
  }
  struct stat st;
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("volume: stat ", host));
  }
  agentpb::CopyFileRequest r;
  r.set_path(guest);
  r.set_file_mode(st.st_mode & (S_IFMT | 07777));
  r.set_uid(st.st_uid);
  r.set_gid(st.st_gid);
  absl::StrAppend(&w.out.fingerprint, guest, "|", st.st_mode, "|", st.st_uid, ":", st.st_gid, "|",
                  st.st_size, "|", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, "|", st.st_ino, "\n");
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = ::readlinkat(dir, name.c_str(), target, sizeof target);
    if (n < 0) return absl::ErrnoToStatus(errno, absl::StrCat("volume: readlink ", host));
    r.set_data(std::string(target, static_cast<size_t>(n)));
    absl::StrAppend(&w.out.fingerprint, "->", r.data(), "\n");
    w.out.entries.push_back(std::move(r));
    return absl::OkStatus();
  }
  if (S_ISREG(st.st_mode)) {
    std::string data;
    RETURN_IF_ERROR(ReadWhole(dir, name, kMaxVolumeBytes - w.bytes, &data, host));
    w.bytes += data.size();
    r.set_data(std::move(data));
    w.out.entries.push_back(std::move(r));
    return absl::OkStatus();
  }
  if (!S_ISDIR(st.st_mode)) {
    Log()->warn("volume {}: {} is neither a file, a directory nor a symlink: not copied",
                w.volume.host_source, host);
    return absl::OkStatus();
  }
  w.out.entries.push_back(std::move(r));
  int fd = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("volume: open ", host));
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    int err = errno;
    ::close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat("volume: opendir ", host));
  }
  std::vector<std::pair<bool, std::string>> children;  // (is symlink, name)
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat cst;
    bool link = ::fstatat(::dirfd(d), n.c_str(), &cst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(cst.st_mode);
    children.emplace_back(link, std::move(n));
  }
  // Files and directories first, symlinks last: kubelet's `..data` and the
  // user-visible links then point at entries that already exist.
  std::sort(children.begin(), children.end());
  absl::Status status;
  for (const auto& child : children) {
    const std::string& n = child.second;
    status = AddEntry(w, ::dirfd(d), n, absl::StrCat(host, "/", n), absl::StrCat(guest, "/", n),
                      depth + 1);
    if (!status.ok()) break;
  }
  ::closedir(d);
  return status;
}

}  // namespace

absl::StatusOr<std::vector<GuestVolume>> VolumesOfSpec(absl::string_view spec_json) {
  nlohmann::json spec = nlohmann::json::parse(spec_json, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded() || !spec.is_object()) {
    return absl::InvalidArgumentError("config.json: not a JSON object (malformed OCI spec)");
  }
  std::vector<GuestVolume> out;
  auto it = spec.find("mounts");
  if (it == spec.end() || !it->is_array()) return out;
  for (const nlohmann::json& m : *it) {
    if (!m.is_object()) continue;
    auto str = [&m](const char* k) {
      auto f = m.find(k);
      return f != m.end() && f->is_string() ? f->get<std::string>() : std::string();
    };
    std::vector<std::string> options;
    if (auto o = m.find("options"); o != m.end() && o->is_array()) {
      for (const auto& e : *o) {
        if (e.is_string()) options.push_back(e.get<std::string>());
      }
    }
    ASSIGN_OR_RETURN(std::optional<GuestVolume> v,
                     GuestVolumeForMount(str("destination"), str("type"), str("source"), options));
    if (v) out.push_back(std::move(*v));
  }
  return out;
}

absl::StatusOr<VolumeSnapshot> SnapshotVolume(const GuestVolume& volume) {
  Walk w{volume, {}, 0};
  // The mount's source may itself be a symlink (a file of a kubelet volume
  // is `name -> ..data/name`): what the container sees is its target, so
  // the walk starts there, resolved afresh each time.
  char real[PATH_MAX];
  if (::realpath(volume.host_source.c_str(), real) == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("volume: resolve ", volume.host_source));
  }
  const std::string src = real;
  const size_t slash = src.rfind('/');
  if (slash == std::string::npos || src == "/") {
    return absl::InvalidArgumentError(absl::StrCat("volume: ", volume.host_source, " resolves to /"));
  }
  const std::string parent = slash == 0 ? "/" : src.substr(0, slash);
  int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("volume: open ", parent));
  UniqueFd dir(fd);
  RETURN_IF_ERROR(AddEntry(w, dir.get(), src.substr(slash + 1), src, volume.guest_path, 0));
  return std::move(w.out);
}

VolumeSync::VolumeSync(std::string sandbox_id, Sender send, absl::Duration interval)
    : sandbox_id_(std::move(sandbox_id)), send_(std::move(send)) {
  if (interval > absl::ZeroDuration()) {
    thread_ = std::thread([this, interval] {
      while (!stop_.WaitForNotificationWithTimeout(interval)) PollOnce();
    });
  }
}

VolumeSync::~VolumeSync() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

size_t VolumeSync::tracked() const {
  absl::MutexLock lock(&mu_);
  return volumes_.size();
}

absl::Status VolumeSync::Apply(Tracked& t, const VolumeSnapshot& snapshot) {
  std::set<std::string> now;
  for (const agentpb::CopyFileRequest& r : snapshot.entries) {
    RETURN_IF_ERROR(send_(r));
    now.insert(r.path());
  }
  // Deepest first, so a directory goes after what it held.
  std::vector<std::string> gone;
  for (const std::string& p : t.guest_paths) {
    if (now.count(p) == 0) gone.push_back(p);
  }
  std::sort(gone.begin(), gone.end(), [](const std::string& a, const std::string& b) {
    return a.size() > b.size();
  });
  for (const std::string& p : gone) {
    agentpb::CopyFileRequest r;
    r.set_path(p);
    r.set_remove(true);
    RETURN_IF_ERROR(send_(r));
  }
  t.guest_paths.assign(now.begin(), now.end());
  t.fingerprint = snapshot.fingerprint;
  return absl::OkStatus();
}

absl::Status VolumeSync::Add(const GuestVolume& volume) {
  if (volume.empty_dir) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  Tracked t;
  auto it = volumes_.find(volume.guest_path);
  if (it != volumes_.end()) t = it->second;
  t.volume = volume;
  absl::StatusOr<VolumeSnapshot> snap = SnapshotVolume(volume);
  if (!snap.ok()) return snap.status();
  if (it != volumes_.end() && snap->fingerprint == t.fingerprint) return absl::OkStatus();
  const absl::Time start = absl::Now();
  absl::Status s = Apply(t, *snap);
  if (!s.ok()) {
    Log()->warn("sandbox={} volume {} ({}) not copied into the guest: {}", sandbox_id_,
                volume.guest_path, volume.host_source, std::string(s.message()));
    return s;
  }
  Log()->info("sandbox={} volume {} <- {}: {} entries copied in {}", sandbox_id_, volume.guest_path,
              volume.host_source, snap->entries.size(),
              absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))));
  volumes_[volume.guest_path] = std::move(t);
  return absl::OkStatus();
}

void VolumeSync::PollOnce() {
  absl::MutexLock lock(&mu_);
  for (auto& [path, t] : volumes_) {
    absl::StatusOr<VolumeSnapshot> snap = SnapshotVolume(t.volume);
    if (!snap.ok()) {
      Log()->warn("sandbox={} volume {}: cannot read {}: {}", sandbox_id_, path, t.volume.host_source,
                  std::string(snap.status().message()));
      continue;
    }
    if (snap->fingerprint == t.fingerprint) continue;
    absl::Status s = Apply(t, *snap);
    if (s.ok()) {
      Log()->info("sandbox={} volume {} refreshed from {} ({} entries)", sandbox_id_, path,
                  t.volume.host_source, snap->entries.size());
    } else {
      Log()->warn("sandbox={} volume {} refresh from {} refused or failed: {}", sandbox_id_, path,
                  t.volume.host_source, std::string(s.message()));
    }
  }
}

}  // namespace cloak::shim
