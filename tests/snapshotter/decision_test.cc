// The guest-pull decision and the containerd filter subset (pure).
#include "snapshotter/decision.h"

#include <optional>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "snapshotter/filters.h"

namespace cloak::snapshotter {
namespace {

using ::testing::HasSubstr;

constexpr char kEnc[] = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
constexpr char kPlain[] = "application/vnd.oci.image.layer.v1.tar+gzip";

LayerFacts Facts(Labels labels, std::optional<std::vector<ManifestLayer>> manifest = std::nullopt) {
  LayerFacts f;
  f.labels = std::move(labels);
  f.manifest = std::move(manifest);
  return f;
}

Snapshot Snap(const std::string& name, const std::string& parent, Kind kind, Labels labels) {
  Snapshot s;
  s.name = name;
  s.parent = parent;
  s.kind = kind;
  s.labels = std::move(labels);
  return s;
}

Labels LayerLabels(const std::string& layer) {
  return {{std::string(kLabelTargetRef), "sha256:chain"},
          {std::string(kLabelImageRef), "127.0.0.1:5000/app:1"},
          {std::string(kLabelManifestDigest), "sha256:manifest"},
          {std::string(kLabelLayerDigest), layer},
          {"containerd.io/snapshot/cri.image-layers", layer}};
}

TEST(DecisionTest, EncryptedLayerIsPulledByTheGuest) {
  LayerFacts facts = Facts(LayerLabels("sha256:b"),
                           std::vector<ManifestLayer>{{kPlain, "sha256:a"}, {kEnc, "sha256:b"}});
  EXPECT_TRUE(NeedsManifest(GuestPullMode::kEncrypted, facts));
  absl::StatusOr<Decision> d = Decide(GuestPullMode::kEncrypted, facts);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->guest_pull);
  EXPECT_EQ(d->image, "127.0.0.1:5000/app:1");
  EXPECT_THAT(d->reason, HasSubstr("+encrypted"));
}

TEST(DecisionTest, PlainLayerIsUnpackedOnTheHostEvenInAnEncryptedImage) {
  LayerFacts facts = Facts(LayerLabels("sha256:a"),
                           std::vector<ManifestLayer>{{kPlain, "sha256:a"}, {kEnc, "sha256:b"}});
  absl::StatusOr<Decision> d = Decide(GuestPullMode::kEncrypted, facts);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->guest_pull);
}

TEST(DecisionTest, EverythingAboveAGuestPulledLayerIsGuestPulled) {
  // Even a plain layer, and even a container snapshot without labels.
  LayerFacts facts;
  facts.parent_guest_pull = true;
  facts.parent_image = "reg/app:1";
  EXPECT_FALSE(NeedsManifest(GuestPullMode::kEncrypted, facts));
  absl::StatusOr<Decision> d = Decide(GuestPullMode::kEncrypted, facts);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->guest_pull);
  EXPECT_EQ(d->image, "reg/app:1");
}

TEST(DecisionTest, ContainerSnapshotOverHostLayersIsOrdinary) {
  LayerFacts facts;  // no labels, parent on the host
  EXPECT_FALSE(NeedsManifest(GuestPullMode::kAll, facts));
  absl::StatusOr<Decision> d = Decide(GuestPullMode::kAll, facts);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->guest_pull);
}

TEST(DecisionTest, LayerWithoutCriLabelsIsOrdinaryAndSaysWhy) {
  LayerFacts facts = Facts({{std::string(kLabelTargetRef), "sha256:chain"}});
  EXPECT_FALSE(NeedsManifest(GuestPullMode::kEncrypted, facts));
  absl::StatusOr<Decision> d = Decide(GuestPullMode::kEncrypted, facts);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->guest_pull);
  EXPECT_THAT(d->reason, HasSubstr("disable_snapshot_annotations"));
}

TEST(DecisionTest, ModeAllNeedsNoManifest) {
  LayerFacts facts = Facts(LayerLabels("sha256:a"));
  EXPECT_FALSE(NeedsManifest(GuestPullMode::kAll, facts));
  absl::StatusOr<Decision> d = Decide(GuestPullMode::kAll, facts);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->guest_pull);
}

TEST(DecisionTest, MissingManifestOrLayerFailsClosed) {
  LayerFacts facts = Facts(LayerLabels("sha256:zz"));
  EXPECT_EQ(Decide(GuestPullMode::kEncrypted, facts).status().code(),
            absl::StatusCode::kFailedPrecondition);
  facts.manifest = std::vector<ManifestLayer>{{kEnc, "sha256:a"}};
  absl::Status s = Decide(GuestPullMode::kEncrypted, facts).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("sha256:zz"));
}

TEST(DecisionTest, ParsesModes) {
  EXPECT_EQ(*ParseGuestPullMode("encrypted"), GuestPullMode::kEncrypted);
  EXPECT_EQ(*ParseGuestPullMode("all"), GuestPullMode::kAll);
  EXPECT_EQ(ParseGuestPullMode("some").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ManifestTest, ParsesOciAndDockerManifests) {
  absl::StatusOr<std::vector<ManifestLayer>> layers = ParseManifestLayers(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
          "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":1},
          "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
                     "digest":"sha256:l1","size":5,
                     "annotations":{"org.opencontainers.image.enc.keys.jwe":"x"}},
                    {"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip",
                     "digest":"sha256:l2","size":6}]})");
  ASSERT_TRUE(layers.ok()) << layers.status();
  ASSERT_EQ(layers->size(), 2u);
  EXPECT_TRUE(IsEncryptedMediaType((*layers)[0].media_type));
  EXPECT_EQ((*layers)[1].digest, "sha256:l2");
  EXPECT_FALSE(IsEncryptedMediaType((*layers)[1].media_type));
}

TEST(ManifestTest, RefusesWhatIsNotAManifest) {
  for (const char* bad :
       {"", "{", "[]", R"({"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})",
        R"({"layers":[{"mediaType":"x"}]})", R"({"layers":[{"mediaType":"x","digest":"nocolon"}]})",
        R"({"layers":[1]})", R"({"layers":{}})"}) {
    EXPECT_EQ(ParseManifestLayers(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(FilterTest, MatchesContainerdsTargetLookup) {
  // The filter containerd's metadata store sends after AlreadyExists.
  absl::StatusOr<Filter> f =
      ParseFilter(R"(labels."containerd.io/snapshot.ref"==sha256:abc,parent=="")");
  ASSERT_TRUE(f.ok()) << f.status();
  Snapshot s = Snap("cloak/1/sha256:abc", "", Kind::kCommitted,
                    {{"containerd.io/snapshot.ref", "sha256:abc"}});
  EXPECT_TRUE(Matches(*f, s));
  s.parent = "p";
  EXPECT_FALSE(Matches(*f, s));
  s.parent = "";
  s.labels["containerd.io/snapshot.ref"] = "sha256:abd";
  EXPECT_FALSE(Matches(*f, s));
}

TEST(FilterTest, PresenceInequalityKindAndAnyOf) {
  Snapshot s = Snap("n", "p", Kind::kActive, {{"a.b", "1"}});
  EXPECT_TRUE(Matches(*ParseFilter("labels.a.b"), s));
  EXPECT_FALSE(Matches(*ParseFilter("labels.c"), s));
  EXPECT_TRUE(Matches(*ParseFilter("kind==active, name!=x"), s));
  EXPECT_FALSE(Matches(*ParseFilter("kind==committed"), s));
  EXPECT_TRUE(MatchesAny({*ParseFilter("name==x"), *ParseFilter("parent==\"p\"")}, s));
  EXPECT_FALSE(MatchesAny({*ParseFilter("name==x")}, s));
  EXPECT_TRUE(MatchesAny({}, s));
}

TEST(FilterTest, RejectsMalformedFilters) {
  for (const char* bad : {"", "name==", "labels.\"x", "name~=a.*", "name==a b", ",", "name==a,"}) {
    EXPECT_EQ(ParseFilter(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace cloak::snapshotter
