// A realistic multi-layer distribution root through ApplyLayer (docs/agent.md,
// "Layer unpacking"): Debian packages extracted with `dpkg-deb -x` (from the
// local apt cache, else `apt-get download` from Debian's archive), the
// standard /dev nodes a debootstrap root carries, setuid binaries,
// hardlinks; a second layer with whiteouts (of a whole directory tree, of a
// parent whose new content is in the same layer) and an opaque directory; a
// third, gzip-compressed. The result must equal what the same operations
// give on a plain copy of the trees (the OCI layer semantics, as containerd
// applies them), entry for entry: type, mode (setuid included), owner, size,
// content, symlink target, device number, hardlink groups.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <tuple>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/image/unpack.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/image/test_util.h"

namespace cloak::agent::image {
namespace {

namespace fs = std::filesystem;

int Sh(const std::string& command) {
  int rc = std::system(command.c_str());
  if (rc != 0) std::cerr << "command failed (" << rc << "): " << command << "\n";
  return rc;
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// The .deb of `package` from the apt cache, else downloaded into `dir`.
std::string FindDeb(const std::string& package, const std::string& dir) {
  for (const std::string& base : {std::string("/var/cache/apt/archives"), dir}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(base, ec)) {
      std::string name = e.path().filename().string();
      if (name.rfind(package + "_", 0) == 0 && e.path().extension() == ".deb") {
        return e.path().string();
      }
    }
  }
  if (Sh(absl::StrCat("cd ", Quote(dir), " && apt-get download -q ", package, " >/dev/null")) == 0) {
    return FindDeb(package, dir);
  }
  return "";
}

struct Node {
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  off_t size = 0;
  dev_t rdev = 0;
  ino_t ino = 0;
  std::string link;  // symlink target
};

std::map<std::string, Node> Walk(const std::string& root) {
  std::map<std::string, Node> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    std::string rel = fs::relative(it->path(), root).string();
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    Node n{st.st_mode, st.st_uid, st.st_gid, S_ISDIR(st.st_mode) ? 0 : st.st_size, st.st_rdev,
           st.st_ino, ""};
    if (S_ISLNK(st.st_mode)) n.link = fs::read_symlink(it->path()).string();
    out[rel] = n;
  }
  return out;
}

bool SameContent(const std::string& a, const std::string& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  return std::equal(std::istreambuf_iterator<char>(fa), {}, std::istreambuf_iterator<char>(fb), {});
}

// An empty file (a whiteout or opaque marker) at `path`.
void Touch(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path).flush();
}

TEST(DistroRootTest, MultiLayerDebianRootUnpacksAsContainerdUnpacksIt) {
  ASSERT_EQ(geteuid(), 0) << "this test builds /dev nodes and setuid files: run it as root";
  auto tmp = TempDir::Create("cloak-distro-");
  ASSERT_TRUE(tmp.ok()) << tmp.status();
  const std::string dir = tmp->path().string();
  const std::string debs = dir + "/debs", l1 = dir + "/l1", l2 = dir + "/l2", l3 = dir + "/l3";
  const std::string expected = dir + "/expected", rootfs = dir + "/rootfs";
  for (const std::string& d : {debs, l1, l2, l3, rootfs}) fs::create_directories(d);

  auto extract = [&](const std::string& package, const std::string& into) {
    std::string deb = FindDeb(package, debs);
    ASSERT_FALSE(deb.empty()) << "no .deb for " << package
                              << " in /var/cache/apt/archives and apt-get download failed";
    ASSERT_EQ(Sh(absl::StrCat("dpkg-deb -x ", Quote(deb), " ", Quote(into))), 0);
  };

  // Layer 1: the base root.
  for (const char* p : {"passwd", "login", "perl-modules-5.36", "systemd"}) {
    ASSERT_NO_FATAL_FAILURE(extract(p, l1));
  }
  fs::create_directories(l1 + "/dev/pts");
  fs::create_directories(l1 + "/dev/shm");
  for (auto [name, maj, min] : std::vector<std::tuple<const char*, int, int>>{
           {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9},
           {"tty", 5, 0}, {"console", 5, 1}, {"ptmx", 5, 2}}) {
    std::string p = l1 + "/dev/" + name;
    ASSERT_EQ(::mknod(p.c_str(), S_IFCHR | 0666, makedev(maj, min)), 0) << p;
    ::chmod(p.c_str(), name == std::string("console") ? 0600 : 0666);
  }
  fs::create_symlink("/proc/self/fd", l1 + "/dev/fd");
  ASSERT_EQ(::link((l1 + "/usr/bin/passwd").c_str(), (l1 + "/usr/bin/passwd.hardlink").c_str()), 0);
  ASSERT_EQ(::link((l1 + "/usr/bin/chfn").c_str(), (l1 + "/usr/sbin/chfn-alias").c_str()), 0);
  ::chmod((l1 + "/usr/bin/newgrp").c_str(), 02755);  // setgid too
  ASSERT_TRUE(fs::exists(l1 + "/usr/share/perl/5.36.0/unicore"));

  // Layer 2: fuse3 (setuid fusermount3), whiteouts, an opaque directory.
  ASSERT_NO_FATAL_FAILURE(extract("fuse3", l2));
  ::chmod((l2 + "/bin/fusermount3").c_str(), 04755);  // as its postinst makes it
  Touch(l2 + "/usr/share/doc/.wh.passwd");            // a whole tree
  Touch(l2 + "/lib/systemd/.wh.system");               // a big directory tree
  Touch(l2 + "/usr/share/.wh.doc");                    // a parent; fuse3's docs stay
  Touch(l2 + "/usr/share/perl/5.36.0/unicore/.wh..wh..opq");  // opaque
  std::ofstream(l2 + "/usr/share/perl/5.36.0/unicore/README.new") << "opaque replacement\n";
  Touch(l2 + "/etc/.wh.login.defs");                   // one file

  // Layer 3 (gzip): python3-sympy, and a file replaced by a directory.
  ASSERT_NO_FATAL_FAILURE(extract("python3-sympy", l3));
  fs::create_directories(l3 + "/etc/securetty/now-a-dir");

  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(l1)) files += e.is_regular_file() ? 1 : 0;
  std::cout << "base layer: " << files << " regular files\n";
  ASSERT_GT(files, 2000);

  // The layers as tars (GNU tar records hardlinks as links).
  ASSERT_EQ(Sh(absl::StrCat("tar --numeric-owner -C ", Quote(l1), " -cf ", Quote(dir + "/1.tar"),
                            " .")),
            0);
  ASSERT_EQ(Sh(absl::StrCat("tar --numeric-owner -C ", Quote(l2), " -cf ", Quote(dir + "/2.tar"),
                            " .")),
            0);
  ASSERT_EQ(Sh(absl::StrCat("tar --numeric-owner -C ", Quote(l3), " -czf ",
                            Quote(dir + "/3.tar.gz"), " .")),
            0);

  // What containerd's applier gives: whiteouts and opaque markers hide
  // lower content, then the layer's own entries are copied over.
  ASSERT_EQ(Sh(absl::StrCat("cp -a ", Quote(l1), " ", Quote(expected))), 0);
  for (const char* gone : {"usr/share/doc/passwd", "lib/systemd/system", "usr/share/doc",
                           "etc/login.defs"}) {
    fs::remove_all(expected + "/" + gone);
  }
  for (const auto& e : fs::directory_iterator(expected + "/usr/share/perl/5.36.0/unicore")) {
    fs::remove_all(e.path());
  }
  ASSERT_EQ(Sh(absl::StrCat("cd ", Quote(l2), " && tar --exclude='.wh.*' -cf - . | tar -C ",
                            Quote(expected), " -xpf -")),
            0);
  fs::remove(expected + "/etc/securetty");
  ASSERT_EQ(Sh(absl::StrCat("tar -C ", Quote(l3), " -cf - . | tar -C ", Quote(expected),
                            " -xpf -")),
            0);

  UnpackBudget budget;
  int64_t entries = 0, hardlinks = 0, whiteouts = 0, devices = 0;
  for (const char* layer : {"1.tar", "2.tar", "3.tar.gz"}) {
    auto stats = ApplyLayer(dir + "/" + layer, rootfs, absl::StrCat("sha256:", layer), &budget);
    ASSERT_TRUE(stats.ok()) << layer << ": " << stats.status();
    entries += stats->entries;
    hardlinks += stats->hardlinks;
    whiteouts += stats->whiteouts;
    devices += stats->devices;
    EXPECT_EQ(stats->skipped_devices, 0) << layer;
  }
  std::cout << "applied 3 layers: " << entries << " entries, " << hardlinks << " hardlinks, "
            << whiteouts << " whiteouts, " << devices << " device nodes; " << budget.stream_bytes
            << " uncompressed bytes\n";
  EXPECT_EQ(devices, 8);
  EXPECT_GE(hardlinks, 2);
  EXPECT_EQ(whiteouts, 5);

  std::map<std::string, Node> want = Walk(expected), got = Walk(rootfs);
  std::vector<std::string> missing, extra, differ;
  std::map<ino_t, ino_t> inode_map;  // expected inode → actual inode
  for (const auto& [path, w] : want) {
    auto it = got.find(path);
    if (it == got.end()) {
      missing.push_back(path);
      continue;
    }
    const Node& g = it->second;
    bool same = w.mode == g.mode && w.uid == g.uid && w.gid == g.gid && w.size == g.size &&
                w.link == g.link && (!S_ISCHR(w.mode) || w.rdev == g.rdev);
    if (same && S_ISREG(w.mode)) same = SameContent(expected + "/" + path, rootfs + "/" + path);
    if (same && S_ISREG(w.mode)) {
      auto [m, fresh] = inode_map.emplace(w.ino, g.ino);
      if (!fresh && m->second != g.ino) same = false;  // a hardlink group split
    }
    if (!same) differ.push_back(path);
  }
  for (const auto& [path, g] : got) {
    if (!want.contains(path)) extra.push_back(path);
  }
  auto head = [](const std::vector<std::string>& v) {
    return absl::StrJoin(v.begin(), v.begin() + std::min<size_t>(v.size(), 10), ", ");
  };
  EXPECT_TRUE(missing.empty()) << missing.size() << " missing: " << head(missing);
  EXPECT_TRUE(extra.empty()) << extra.size() << " extra: " << head(extra);
  EXPECT_TRUE(differ.empty()) << differ.size() << " differ: " << head(differ);
  std::cout << "compared " << want.size() << " entries with the reference tree\n";

  // Spot checks of what matters most.
  struct stat st;
  ASSERT_EQ(::lstat((rootfs + "/usr/bin/passwd").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  ASSERT_EQ(::lstat((rootfs + "/bin/fusermount3").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 04000, 04000u);
  ASSERT_EQ(::lstat((rootfs + "/dev/console").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(5, 1));
  EXPECT_FALSE(fs::exists(rootfs + "/usr/share/doc/passwd"));
  EXPECT_TRUE(fs::exists(rootfs + "/usr/share/doc/fuse3"));
  EXPECT_FALSE(fs::exists(rootfs + "/lib/systemd/system"));
  EXPECT_TRUE(fs::exists(rootfs + "/lib/systemd/systemd"));
  EXPECT_TRUE(fs::is_directory(rootfs + "/etc/securetty/now-a-dir"));
}

}  // namespace
}  // namespace cloak::agent::image
