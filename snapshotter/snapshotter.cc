#include "snapshotter/snapshotter.h"

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "snapshotter/filters.h"
#include "snapshotter/mounts.h"

namespace cloak::snapshotter {
namespace {

// containerd's limit for one label (key and value together).
constexpr size_t kMaxLabelBytes = 4096;
constexpr size_t kMaxLabels = 512;
constexpr size_t kMaxNameBytes = 4096;
// Manifests are small; anything larger is refused rather than buffered.
constexpr size_t kMaxCachedManifests = 64;

std::shared_ptr<spdlog::logger> Log() { return Logger("snapshotter"); }

// containerd's names and labels are protobuf strings; the metadata file is
// JSON. Both need valid UTF-8, checked here rather than trusted.
bool IsUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

absl::Status ValidateName(absl::string_view what, const std::string& name) {
  if (!IsUtf8(name)) return absl::InvalidArgumentError(absl::StrCat(what, " is not valid UTF-8"));
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " must not be empty"));
  if (name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is longer than ", kMaxNameBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateLabels(const Labels& labels) {
  if (labels.size() > kMaxLabels) {
    return absl::InvalidArgumentError(absl::StrCat("more than ", kMaxLabels, " labels"));
  }
  for (const auto& [k, v] : labels) {
    if (k.empty()) return absl::InvalidArgumentError("a label has an empty key");
    if (!IsUtf8(k) || !IsUtf8(v)) return absl::InvalidArgumentError("a label is not valid UTF-8");
    if (k.size() + v.size() > kMaxLabelBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("label key and value greater than maximum size (", kMaxLabelBytes,
                       " bytes), key: ", k.substr(0, 64)));
    }
  }
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoError(errno, "mkdir ", path);
  return absl::OkStatus();
}

// nftw has no user pointer: the walk's state is per thread.
thread_local Usage* tls_usage = nullptr;
thread_local std::set<std::pair<dev_t, ino_t>>* tls_seen = nullptr;

int CountEntry(const char*, const struct stat* st, int, struct FTW*) {
  if (st->st_nlink > 1 && !S_ISDIR(st->st_mode)) {
    if (!tls_seen->insert({st->st_dev, st->st_ino}).second) return 0;
  }
  tls_usage->inodes += 1;
  tls_usage->size += static_cast<int64_t>(st->st_blocks) * 512;
  return 0;
}

}  // namespace

absl::StatusOr<Usage> TreeUsage(const std::string& path) {
  Usage usage;
  std::set<std::pair<dev_t, ino_t>> seen;
  tls_usage = &usage;
  tls_seen = &seen;
  const int rc = ::nftw(path.c_str(), CountEntry, 32, FTW_PHYS | FTW_MOUNT);
  tls_usage = nullptr;
  tls_seen = nullptr;
  if (rc != 0) return ErrnoError(errno, "measure ", path);
  return usage;
}

absl::StatusOr<std::unique_ptr<Snapshotter>> Snapshotter::Create(
    const SnapshotterOptions& options, std::unique_ptr<ManifestSource> manifests) {
  if (options.root.empty() || options.root[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("root \"", options.root, "\" must be an absolute path"));
  }
  // Its parents as `mkdir -p` makes them (a root under a scratch tree, or a
  // node without /var/lib yet); the root itself private.
  std::error_code parents;
  std::filesystem::create_directories(std::filesystem::path(options.root).parent_path(), parents);
  if (parents) {
    return ErrnoError(parents.value(), "create the parent directories of root ", options.root);
  }
  if (::mkdir(options.root.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError(errno, "create root ", options.root);
  }
  RETURN_IF_ERROR(MakeDir(options.root + "/snapshots"));
  ASSIGN_OR_RETURN(State state, MetadataFile(options.root + "/metadata.json").Load());
  std::unique_ptr<Snapshotter> s(new Snapshotter(options, std::move(manifests), std::move(state)));
  {
    absl::MutexLock lock(&s->mu_);
    for (const auto& [name, snap] : s->state_.snapshots) {
      struct stat st;
      if (::stat(s->FsDir(snap.id).c_str(), &st) != 0) {
        Log()->error("snapshot {} (id {}) has lost its directory {}; recreating it empty", name,
                     snap.id, s->FsDir(snap.id));
        RETURN_IF_ERROR(s->MakeDirs(snap));
      }
    }
    Log()->info("loaded {} snapshots from {}", s->state_.snapshots.size(), s->file_.path());
  }
  absl::Status cleaned = s->Cleanup();
  if (!cleaned.ok()) Log()->warn("cleanup at start: {}", cleaned.ToString());
  return s;
}

std::string Snapshotter::FsDir(uint64_t id) const {
  return absl::StrCat(options_.root, "/snapshots/", id, "/fs");
}
std::string Snapshotter::WorkDir(uint64_t id) const {
  return absl::StrCat(options_.root, "/snapshots/", id, "/work");
}

absl::Status Snapshotter::MakeDirs(const Snapshot& s) const {
  RETURN_IF_ERROR(MakeDir(absl::StrCat(options_.root, "/snapshots/", s.id)));
  RETURN_IF_ERROR(MakeDir(FsDir(s.id)));
  if (s.kind == Kind::kActive && !s.guest_pull) RETURN_IF_ERROR(MakeDir(WorkDir(s.id)));
  return absl::OkStatus();
}

absl::Status Snapshotter::Persist(State next) {
  RETURN_IF_ERROR(file_.Save(next));
  state_ = std::move(next);
  return absl::OkStatus();
}

std::vector<Mount> Snapshotter::MountsOf(const Snapshot& s) const {
  std::vector<std::string> parents;
  for (std::string p = s.parent; !p.empty();) {
    auto it = state_.snapshots.find(p);
    if (it == state_.snapshots.end()) break;  // DecodeState checks parents exist
    parents.push_back(FsDir(it->second.id));
    p = it->second.parent;
  }
  return SnapshotMounts(s, FsDir(s.id), WorkDir(s.id), parents);
}

absl::StatusOr<std::vector<ManifestLayer>> Snapshotter::ManifestLayers(const std::string& ns,
                                                                       const Labels& labels) {
  auto it = labels.find(std::string(kLabelManifestDigest));
  if (it == labels.end() || it->second.empty()) {
    return absl::FailedPreconditionError("the layer has no cri.manifest-digest label");
  }
  const std::string& digest = it->second;
  const std::string space = ns.empty() ? options_.default_namespace : ns;
  {
    absl::MutexLock lock(&cache_mu_);
    auto hit = manifest_cache_.find({space, digest});
    if (hit != manifest_cache_.end()) return hit->second;
  }
  if (manifests_ == nullptr) {
    return absl::FailedPreconditionError(
        "no containerd address to read manifests from (--containerd-address)");
  }
  absl::StatusOr<std::string> blob = manifests_->ReadBlob(space, digest);
  if (!blob.ok()) {
    return Annotate(blob.status(), absl::StrCat("read manifest ", digest,
                                                " from containerd (namespace ", space, ")"));
  }
  absl::StatusOr<std::vector<ManifestLayer>> layers = ParseManifestLayers(*blob);
  if (!layers.ok()) return Annotate(layers.status(), absl::StrCat("manifest ", digest));
  absl::MutexLock lock(&cache_mu_);
  if (manifest_cache_.size() >= kMaxCachedManifests) manifest_cache_.clear();
  manifest_cache_[{space, digest}] = *layers;
  return layers;
}

absl::StatusOr<std::vector<Mount>> Snapshotter::Prepare(const std::string& ns,
                                                        const std::string& key,
                                                        const std::string& parent,
                                                        const Labels& labels) {
  return CreateSnapshot(Kind::kActive, ns, key, parent, labels);
}

absl::StatusOr<std::vector<Mount>> Snapshotter::View(const std::string& ns, const std::string& key,
                                                     const std::string& parent,
                                                     const Labels& labels) {
  return CreateSnapshot(Kind::kView, ns, key, parent, labels);
}

absl::StatusOr<std::vector<Mount>> Snapshotter::CreateSnapshot(Kind kind, const std::string& ns,
                                                               const std::string& key,
                                                               const std::string& parent,
                                                               const Labels& labels) {
  RETURN_IF_ERROR(ValidateName("snapshot key", key));
  RETURN_IF_ERROR(ValidateLabels(labels));
  LayerFacts facts;
  facts.labels = labels;
  // Checks that hold again under the second lock (nothing changes a
  // committed snapshot's content kind).
  auto check = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
    if (state_.snapshots.count(key) != 0) {
      return absl::AlreadyExistsError(absl::StrCat("snapshot ", key, " already exists"));
    }
    if (parent.empty()) return absl::OkStatus();
    auto p = state_.snapshots.find(parent);
    if (p == state_.snapshots.end()) {
      return absl::NotFoundError(absl::StrCat("parent snapshot ", parent, " does not exist"));
    }
    if (p->second.kind != Kind::kCommitted) {
      return absl::InvalidArgumentError(
          absl::StrCat("parent ", parent, " is not a committed snapshot"));
    }
    facts.parent_guest_pull = p->second.guest_pull;
    facts.parent_image = p->second.image;
    return absl::OkStatus();
  };
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(check());
  }
  // The manifest is read without holding the state: containerd answers it.
  if (NeedsManifest(options_.mode, facts)) {
    ASSIGN_OR_RETURN(facts.manifest, ManifestLayers(ns, labels));
  }
  ASSIGN_OR_RETURN(Decision decision, Decide(options_.mode, facts));

  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(check());
  State next = state_;
  const auto target_it = labels.find(std::string(kLabelTargetRef));
  const std::string target = target_it == labels.end() ? "" : target_it->second;
  Snapshot s;
  s.parent = parent;
  s.id = next.next_id++;
  s.created = s.updated = absl::Now();
  s.labels = labels;
  s.guest_pull = decision.guest_pull;
  s.image = decision.image;
  if (s.guest_pull) s.labels[std::string(kLabelGuestPull)] = "true";

  if (decision.guest_pull && kind == Kind::kActive && !target.empty()) {
    // A layer the guest pulls: record it committed and tell containerd it
    // exists, so that it fetches and applies nothing.
    for (const auto& [name, other] : state_.snapshots) {
      if (other.kind == Kind::kCommitted && other.guest_pull && other.parent == parent) {
        auto ref = other.labels.find(std::string(kLabelTargetRef));
        if (ref != other.labels.end() && ref->second == target) {
          return absl::AlreadyExistsError(
              absl::StrCat("target snapshot ", target, " exists (", name, ", guest pull)"));
        }
      }
    }
    s.kind = Kind::kCommitted;
    s.name = absl::StrCat("cloak/", s.id, "/", target);
    RETURN_IF_ERROR(MakeDirs(s));
    next.snapshots[s.name] = s;
    RETURN_IF_ERROR(Persist(std::move(next)));
    Log()->info("layer {} of {} recorded for guest pull as {} ({})", target, s.image, s.name,
                decision.reason);
    return absl::AlreadyExistsError(
        absl::StrCat("target snapshot ", target, " exists (", s.name, ", guest pull)"));
  }
  s.kind = kind;
  s.name = key;
  RETURN_IF_ERROR(MakeDirs(s));
  next.snapshots[s.name] = s;
  RETURN_IF_ERROR(Persist(std::move(next)));
  Log()->debug("{} snapshot {} (id {}) over {}: {}{}", std::string(KindName(kind)), key, s.id,
               parent.empty() ? "nothing" : parent, decision.guest_pull ? "guest pull, " : "",
               decision.reason);
  return MountsOf(s);
}

absl::StatusOr<std::vector<Mount>> Snapshotter::Mounts(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = state_.snapshots.find(key);
  if (it == state_.snapshots.end()) {
    return absl::NotFoundError(absl::StrCat("snapshot ", key, " does not exist"));
  }
  if (it->second.kind == Kind::kCommitted) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot ", key, " is committed: only active and view snapshots mount"));
  }
  return MountsOf(it->second);
}

absl::Status Snapshotter::Commit(const std::string& name, const std::string& key,
                                 const Labels& labels) {
  RETURN_IF_ERROR(ValidateName("snapshot name", name));
  RETURN_IF_ERROR(ValidateLabels(labels));
  absl::MutexLock lock(&mu_);
  auto it = state_.snapshots.find(key);
  if (it == state_.snapshots.end()) {
    return absl::NotFoundError(absl::StrCat("snapshot ", key, " does not exist"));
  }
  if (it->second.kind != Kind::kActive) {
    return absl::FailedPreconditionError(absl::StrCat("snapshot ", key, " is not active"));
  }
  if (state_.snapshots.count(name) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("snapshot ", name, " already exists"));
  }
  Snapshot s = it->second;
  s.name = name;
  s.kind = Kind::kCommitted;
  s.created = s.updated = absl::Now();
  s.labels = labels;
  if (s.guest_pull) s.labels[std::string(kLabelGuestPull)] = "true";
  if (!s.guest_pull) {
    ASSIGN_OR_RETURN(Usage usage, TreeUsage(FsDir(s.id)));
    s.size = usage.size;
    s.inodes = usage.inodes;
  }
  State next = state_;
  next.snapshots.erase(key);
  next.snapshots[name] = s;
  RETURN_IF_ERROR(Persist(std::move(next)));
  // The overlay work directory serves only while the snapshot is active.
  absl::Status removed = RemoveTree(WorkDir(s.id));
  if (!removed.ok()) Log()->warn("commit {}: {}", name, removed.ToString());
  return absl::OkStatus();
}

absl::Status Snapshotter::Remove(const std::string& key) {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = state_.snapshots.find(key);
    if (it == state_.snapshots.end()) {
      return absl::NotFoundError(absl::StrCat("snapshot ", key, " does not exist"));
    }
    for (const auto& [name, s] : state_.snapshots) {
      if (s.parent == key) {
        return absl::FailedPreconditionError(
            absl::StrCat("snapshot ", key, " has children (", name, "): remove them first"));
      }
    }
    id = it->second.id;
    State next = state_;
    next.snapshots.erase(key);
    RETURN_IF_ERROR(Persist(std::move(next)));
  }
  // The record is gone first: a crash here leaves a directory Cleanup removes.
  absl::Status removed = RemoveTree(absl::StrCat(options_.root, "/snapshots/", id));
  if (!removed.ok()) Log()->warn("remove {}: {} (Cleanup retries)", key, removed.ToString());
  return absl::OkStatus();
}

absl::StatusOr<Snapshot> Snapshotter::Stat(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = state_.snapshots.find(key);
  if (it == state_.snapshots.end()) {
    return absl::NotFoundError(absl::StrCat("snapshot ", key, " does not exist"));
  }
  return it->second;
}

absl::StatusOr<Snapshot> Snapshotter::Update(const std::string& name, const Labels& labels,
                                             const std::vector<std::string>& paths) {
  RETURN_IF_ERROR(ValidateLabels(labels));
  absl::MutexLock lock(&mu_);
  auto it = state_.snapshots.find(name);
  if (it == state_.snapshots.end()) {
    return absl::NotFoundError(absl::StrCat("snapshot ", name, " does not exist"));
  }
  Snapshot s = it->second;
  if (paths.empty()) s.labels = labels;
  for (const std::string& path : paths) {
    if (path == "labels") {
      s.labels = labels;
    } else if (absl::StartsWith(path, "labels.")) {
      const std::string k = path.substr(7);
      auto v = labels.find(k);
      if (v == labels.end() || v->second.empty()) {
        s.labels.erase(k);
      } else {
        s.labels[k] = v->second;
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot update ", path, " of snapshot ", name, ": only labels change"));
    }
  }
  for (auto l = s.labels.begin(); l != s.labels.end();) {
    l = l->second.empty() ? s.labels.erase(l) : std::next(l);
  }
  RETURN_IF_ERROR(ValidateLabels(s.labels));
  s.updated = absl::Now();
  State next = state_;
  next.snapshots[name] = s;
  RETURN_IF_ERROR(Persist(std::move(next)));
  return s;
}

absl::StatusOr<std::vector<Snapshot>> Snapshotter::List(const std::vector<std::string>& filters) {
  std::vector<Filter> parsed;
  for (const std::string& f : filters) {
    ASSIGN_OR_RETURN(Filter one, ParseFilter(f));
    parsed.push_back(std::move(one));
  }
  absl::MutexLock lock(&mu_);
  std::vector<Snapshot> out;
  for (const auto& [name, s] : state_.snapshots) {
    if (MatchesAny(parsed, s)) out.push_back(s);
  }
  return out;
}

absl::StatusOr<Usage> Snapshotter::GetUsage(const std::string& key) {
  std::string fs;
  {
    absl::MutexLock lock(&mu_);
    auto it = state_.snapshots.find(key);
    if (it == state_.snapshots.end()) {
      return absl::NotFoundError(absl::StrCat("snapshot ", key, " does not exist"));
    }
    const Snapshot& s = it->second;
    if (s.kind == Kind::kCommitted) return Usage{s.size, s.inodes};
    if (s.guest_pull) return Usage{};
    fs = FsDir(s.id);
  }
  return TreeUsage(fs);
}

absl::Status Snapshotter::Cleanup() {
  const std::string dir = options_.root + "/snapshots";
  std::set<std::string> owned;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, s] : state_.snapshots) owned.insert(absl::StrCat(s.id));
  }
  std::vector<std::string> orphans;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoError(errno, "open ", dir);
  while (struct dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (owned.count(name) == 0) orphans.push_back(name);
  }
  ::closedir(d);
  absl::Status first;
  for (const std::string& name : orphans) {
    uint64_t id = 0;
    if (!absl::SimpleAtoi(name, &id)) continue;  // only numbered directories are ours
    // Under the lock: a snapshot made since the listing may own it now, and
    // none can take the id while the directory goes.
    absl::MutexLock lock(&mu_);
    bool owned_now = false;
    for (const auto& [n, s] : state_.snapshots) owned_now = owned_now || s.id == id;
    if (owned_now) continue;
    absl::Status removed = RemoveTree(absl::StrCat(dir, "/", name));
    if (removed.ok()) {
      Log()->info("cleanup: removed {}/{} (no snapshot owns it)", dir, name);
    } else if (first.ok()) {
      first = removed;
    }
  }
  return first;
}

}  // namespace cloak::snapshotter
