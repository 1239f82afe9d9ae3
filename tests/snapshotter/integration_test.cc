// cloak-snapshotter behind a private containerd 1.6 with CRI
// (containerd_env.h) and a private registry on 127.0.0.1:
//  - CRI PullImage of a skopeo-encrypted image succeeds with no key on the
//    host, fetches no layer, and leaves no plaintext (a random marker) under
//    containerd's or the snapshotter's directories;
//  - an ordinary image is unpacked; the mounts containerd hands out are
//    mounted here and hold the image's files;
//  - kill -9 of the snapshotter and of containerd: `ctr snapshots ls` and
//    the snapshotter's own state agree, mounts still work;
//  - removing the images removes their snapshots;
//  - the time of PullImage: encrypted through cloak-snapshotter against the
//    same image unencrypted through containerd's own overlayfs.
#include "gmock/gmock.h"
#include "tests/snapshotter/containerd_env.h"

namespace cloak::snapshotter {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using SnapshotterIntegrationTest = SnapshotterEnv;

TEST_F(SnapshotterIntegrationTest, EncryptedImageIsNeverUnpackedOnTheHostOrdinaryImagesAre) {
  // The secret image: its plaintext exists here only until it is encrypted.
  ASSERT_NO_FATAL_FAILURE(MakeImageKeyPair());
  CommandResult r;
  const std::string marker = testutil::RandomMarker("cloak-snapshotter-marker-");
  std::ofstream(d_ + "/marker.txt") << marker << "\n";
  {
    // The search finds the marker where it is, plain and gzipped.
    const std::string probe = d_ + "/probe";
    r = RunCommand({kSource + "/scripts/make-busybox-image", probe, "t", d_ + "/marker.txt"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_THAT(FilesHoldingMarker(marker, {probe}), HasSubstr("/blobs/sha256/"));
    std::filesystem::remove_all(probe);
  }
  const std::string secret = registry_host_ + "/secret:enc";
  ASSERT_NO_FATAL_FAILURE(PushImage(secret, d_ + "/marker.txt", d_ + "/image.pub"));
  std::filesystem::remove(d_ + "/marker.txt");
  std::filesystem::remove(d_ + "/image.key");  // no key on the host at all
  const std::string plain = registry_host_ + "/busybox:plain";
  ASSERT_NO_FATAL_FAILURE(PushImage(plain));

  ASSERT_NO_FATAL_FAILURE(StartSnapshotter());
  ASSERT_NO_FATAL_FAILURE(StartContainerd("cloak"));

  // 1. The encrypted image pulls: nothing is fetched or unpacked.
  auto ref = cri_->PullImage(secret);
  ASSERT_TRUE(ref.ok()) << ref.status();
  std::map<std::string, Row> snaps = CtrSnapshots();
  ASSERT_EQ(snaps.size(), 1u) << "one layer, one snapshot";
  const std::string secret_chain = snaps.begin()->first;
  EXPECT_EQ(snaps.begin()->second.kind, "Committed");
  r = Ctr({"snapshots", "--snapshotter", "cloak", "info", secret_chain});
  EXPECT_THAT(r.output, HasSubstr("cloak.guest-pull"));
  EXPECT_THAT(Slurp(d_ + "/snapshotter.log"), HasSubstr("recorded for guest pull"));
  r = Ctr({"content", "ls"});
  EXPECT_THAT(r.output, Not(HasSubstr("+encrypted"))) << "a layer blob was fetched";
  const std::vector<std::string> searched = {d_ + "/root", d_ + "/state", d_ + "/snap-root"};
  EXPECT_EQ(FilesHoldingMarker(marker, searched), "")
      << "plaintext of the encrypted image on the host";

  // A container's rootfs over it: an empty directory that names the image.
  nlohmann::json enc_mounts = PrepareThroughContainerd("enc-rootfs", secret_chain);
  ASSERT_EQ(enc_mounts.size(), 1u);
  EXPECT_EQ(enc_mounts[0]["Type"], "bind");
  EXPECT_THAT(enc_mounts[0]["Options"].dump(), HasSubstr("cloak.image=" + secret));
  ASSERT_NO_FATAL_FAILURE(MountAll(enc_mounts, d_ + "/mnt-enc"));
  EXPECT_TRUE(std::filesystem::is_empty(d_ + "/mnt-enc"));
  ::umount2((d_ + "/mnt-enc").c_str(), MNT_DETACH);

  // 2. An ordinary image is unpacked and its rootfs mounts hold its files.
  std::set<std::string> before = Keys();
  ref = cri_->PullImage(plain);
  ASSERT_TRUE(ref.ok()) << ref.status();
  const std::string plain_chain = NewCommittedKey(before);
  ASSERT_FALSE(plain_chain.empty());
  nlohmann::json mounts = PrepareThroughContainerd("plain-rootfs", plain_chain);
  ASSERT_NO_FATAL_FAILURE(MountAll(mounts, d_ + "/mnt-plain"));
  EXPECT_EQ(Slurp(d_ + "/mnt-plain/bin/busybox"), Slurp(Which("busybox")));
  EXPECT_EQ(Slurp(d_ + "/mnt-plain/etc/passwd"), "root:x:0:0:root:/:/bin/sh\n");
  std::ofstream(d_ + "/mnt-plain/written") << "upper";
  ::umount2((d_ + "/mnt-plain").c_str(), MNT_DETACH);
  ExpectStatesAgree();

  // 3. kill -9 of the snapshotter: state agrees after a restart, and the
  // container's snapshot still mounts with what was written to it.
  ASSERT_NO_FATAL_FAILURE(KillNine(snapshotter_));
  ASSERT_NO_FATAL_FAILURE(StartSnapshotter());
  {
    // containerd's connection to the proxy retries with gRPC's backoff.
    const absl::Time start = absl::Now();
    CommandResult ls;
    for (int i = 0; i < 120; ++i) {
      ls = Ctr({"snapshots", "--snapshotter", "cloak", "ls"});
      if (ls.exit_code == 0) break;
      absl::SleepFor(absl::Milliseconds(250));
    }
    ASSERT_EQ(ls.exit_code, 0) << ls.output;
    std::cerr << "containerd reached the restarted snapshotter after "
              << absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(10)))
              << "\n";
  }
  ExpectStatesAgree();
  r = Ctr({"snapshots", "--snapshotter", "cloak", "mounts", d_ + "/mnt-plain", "plain-rootfs"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("upperdir="));
  ASSERT_NO_FATAL_FAILURE(
      MountAll(PrepareThroughContainerd("plain-rootfs-2", plain_chain), d_ + "/mnt-plain2"));
  EXPECT_TRUE(Exists(d_ + "/mnt-plain2/bin/busybox"));
  ::umount2((d_ + "/mnt-plain2").c_str(), MNT_DETACH);

  // 4. kill -9 of containerd: the same after its restart; pulling again is
  // a no-op for both images.
  cri_.reset();
  ASSERT_NO_FATAL_FAILURE(KillNine(containerd_));
  ASSERT_NO_FATAL_FAILURE(StartContainerd("cloak"));
  ExpectStatesAgree();
  ref = cri_->PullImage(secret);
  ASSERT_TRUE(ref.ok()) << ref.status();
  ref = cri_->PullImage(plain);
  ASSERT_TRUE(ref.ok()) << ref.status();
  ExpectStatesAgree();
  EXPECT_EQ(FilesHoldingMarker(marker, searched), "");

  // 5. Removing the images (and the test's rootfs snapshots) removes every
  // snapshot, in containerd and in the snapshotter.
  for (const char* key : {"enc-rootfs", "plain-rootfs", "plain-rootfs-2"}) {
    r = Ctr({"snapshots", "--snapshotter", "cloak", "rm", key});
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  r = Ctr({"images", "ls", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> images = absl::StrSplit(r.output, '\n', absl::SkipEmpty());
  ASSERT_FALSE(images.empty());
  std::vector<std::string> rm = {"images", "rm", "--sync"};
  rm.insert(rm.end(), images.begin(), images.end());
  r = Ctr(rm);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (int i = 0; i < 50 && !(CtrSnapshots().empty() && OwnState().empty()); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(CtrSnapshots().empty());
  EXPECT_TRUE(OwnState().empty()) << OwnState().dump();
  EXPECT_TRUE(std::filesystem::is_empty(d_ + "/snap-root/snapshots"));
}

// The closing figure of the snapshotter issue: PullImage of an encrypted
// image through cloak-snapshotter (nothing fetched beyond the manifest and
// config) against the same image unencrypted through containerd's overlayfs.
TEST_F(SnapshotterIntegrationTest, PullTimeEncryptedThroughCloakVsPlainThroughOverlayfs) {
  ASSERT_NO_FATAL_FAILURE(MakeImageKeyPair());
  CommandResult r;
  // busybox plus 32 MiB of incompressible data, so that fetching and
  // unpacking weigh as they do for real images.
  r = RunCommand({"head", "-c", "33554432", "/dev/urandom"});
  ASSERT_EQ(r.exit_code, 0);
  std::ofstream(d_ + "/payload", std::ios::binary) << r.output;
  const std::string enc = registry_host_ + "/timed:enc";
  const std::string plain = registry_host_ + "/timed:plain";
  ASSERT_NO_FATAL_FAILURE(PushImage(enc, d_ + "/payload", d_ + "/image.pub"));
  ASSERT_NO_FATAL_FAILURE(PushImage(plain, d_ + "/payload"));

  ASSERT_NO_FATAL_FAILURE(StartSnapshotter());
  ASSERT_NO_FATAL_FAILURE(StartContainerd("overlayfs"));
  absl::Time start = absl::Now();
  auto ref = cri_->PullImage(plain);
  const absl::Duration plain_took = absl::Now() - start;
  ASSERT_TRUE(ref.ok()) << ref.status();
  cri_.reset();
  containerd_.reset();

  ASSERT_NO_FATAL_FAILURE(StartContainerd("cloak"));
  start = absl::Now();
  ref = cri_->PullImage(enc);
  const absl::Duration enc_took = absl::Now() - start;
  ASSERT_TRUE(ref.ok()) << ref.status();
  std::cerr << "PullImage (one layer: busybox, "
            << std::filesystem::file_size(Which("busybox")) / 1024
            << " KiB, and 32 MiB of random data): unencrypted through containerd's overlayfs "
            << absl::FormatDuration(plain_took) << ", encrypted through cloak-snapshotter "
            << absl::FormatDuration(enc_took) << "\n";
}

}  // namespace
}  // namespace cloak::snapshotter
