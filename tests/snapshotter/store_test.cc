// The metadata file: round trip, a torn write of the next state, corruption.
#include "snapshotter/store.h"

#include <fstream>

#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::snapshotter {
namespace {

using ::testing::HasSubstr;

Snapshot Record(const std::string& name, const std::string& parent, Kind kind, uint64_t id) {
  Snapshot s;
  s.name = name;
  s.parent = parent;
  s.kind = kind;
  s.id = id;
  return s;
}

State SampleState() {
  State state;
  state.next_id = 4;
  Snapshot a = Record("k8s.io/1/sha256:a", "", Kind::kCommitted, 1);
  a.created = absl::FromUnixSeconds(100);
  a.updated = absl::FromUnixSeconds(101);
  a.labels = {{"containerd.io/snapshot.ref", "sha256:a"}};
  a.size = 4096;
  a.inodes = 3;
  Snapshot b = Record("cloak/2/sha256:b", a.name, Kind::kCommitted, 2);
  b.guest_pull = true;
  b.image = "127.0.0.1:5000/app:enc";
  Snapshot c = Record("ctr \"1\"\n", b.name, Kind::kActive, 3);
  c.guest_pull = true;
  c.image = b.image;
  for (const Snapshot& s : {a, b, c}) state.snapshots[s.name] = s;
  return state;
}

void ExpectSame(const State& a, const State& b) {
  EXPECT_EQ(a.next_id, b.next_id);
  ASSERT_EQ(a.snapshots.size(), b.snapshots.size());
  for (const auto& [name, s] : a.snapshots) {
    auto it = b.snapshots.find(name);
    ASSERT_NE(it, b.snapshots.end()) << name;
    const Snapshot& t = it->second;
    EXPECT_EQ(s.parent, t.parent);
    EXPECT_EQ(s.kind, t.kind);
    EXPECT_EQ(s.id, t.id);
    EXPECT_EQ(s.created, t.created);
    EXPECT_EQ(s.updated, t.updated);
    EXPECT_EQ(s.labels, t.labels);
    EXPECT_EQ(s.guest_pull, t.guest_pull);
    EXPECT_EQ(s.image, t.image);
    EXPECT_EQ(s.size, t.size);
    EXPECT_EQ(s.inodes, t.inodes);
  }
}

TEST(StoreTest, RoundTrips) {
  absl::StatusOr<State> back = DecodeState(EncodeState(SampleState()));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSame(SampleState(), *back);
}

TEST(StoreTest, MissingFileIsAnEmptyState) {
  auto dir = TempDir::Create("cksnap-");
  ASSERT_TRUE(dir.ok());
  absl::StatusOr<State> s = MetadataFile(dir->Join("metadata.json")).Load();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->snapshots.empty());
  EXPECT_EQ(s->next_id, 1u);
}

// A crash while the next state is written leaves a torn temp file beside
// the last complete state: the load returns that state, the next save wins.
TEST(StoreTest, TornWriteOfTheNextStateKeepsTheLastOne) {
  auto dir = TempDir::Create("cksnap-");
  ASSERT_TRUE(dir.ok());
  MetadataFile file(dir->Join("metadata.json"));
  ASSERT_TRUE(file.Save(SampleState()).ok());
  State next = SampleState();
  next.snapshots.erase("ctr \"1\"\n");
  const std::string full = EncodeState(next);
  std::ofstream(file.path() + ".tmp") << full.substr(0, full.size() / 2);

  absl::StatusOr<State> loaded = file.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSame(SampleState(), *loaded);

  ASSERT_TRUE(file.Save(next).ok());
  loaded = file.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSame(next, *loaded);
}

TEST(StoreTest, CorruptFileIsDataLossNamingTheFile) {
  auto dir = TempDir::Create("cksnap-");
  ASSERT_TRUE(dir.ok());
  MetadataFile file(dir->Join("metadata.json"));
  const std::string full = EncodeState(SampleState());
  std::ofstream(file.path()) << full.substr(0, full.size() - 10);
  absl::Status s = file.Load().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr(file.path()));
}

TEST(StoreTest, InconsistentRecordsAreRefused) {
  State orphan = SampleState();
  orphan.snapshots.erase("k8s.io/1/sha256:a");  // a parent that is gone
  EXPECT_EQ(DecodeState(EncodeState(orphan)).status().code(), absl::StatusCode::kDataLoss);
  State ids = SampleState();
  ids.next_id = 2;  // an id already handed out would be reused
  EXPECT_EQ(DecodeState(EncodeState(ids)).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeState(R"({"version":2,"next_id":1,"snapshots":[]})").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeState(R"({"version":1,"next_id":5,"snapshots":[{"name":"x"}]})").status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace cloak::snapshotter
