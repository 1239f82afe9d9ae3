#include "agent/image/manifest.h"

#include "agent/image/digest.h"
#include "agent/image/www_authenticate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/image/test_util.h"

namespace cloak::agent::image {
namespace {

using ::testing::HasSubstr;

const std::string kD1 = Sha256Digest("one");
const std::string kD2 = Sha256Digest("two");

TEST(WwwAuthenticate, DockerHubBearer) {
  auto c = ParseWwwAuthenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull")");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(c->params["service"], "registry.docker.io");
  EXPECT_EQ(c->params["scope"], "repository:library/busybox:pull");
}

TEST(WwwAuthenticate, Variants) {
  auto c = ParseWwwAuthenticate(
      R"(  bearer Realm = "http://x/t?a=1" , service=plain,  scope="a\"b,c", error="insufficient_scope")");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "http://x/t?a=1");
  EXPECT_EQ(c->params["service"], "plain");
  EXPECT_EQ(c->params["scope"], "a\"b,c");
  EXPECT_EQ(c->params["error"], "insufficient_scope");

  auto basic = ParseWwwAuthenticate(R"(Basic realm="Registry Realm")");
  ASSERT_TRUE(basic.ok());
  EXPECT_EQ(basic->scheme, "basic");
  EXPECT_EQ(basic->params["realm"], "Registry Realm");

  EXPECT_FALSE(ParseWwwAuthenticate("").ok());
  EXPECT_FALSE(ParseWwwAuthenticate(R"(Bearer realm="unterminated)").ok());
}

TEST(Manifest, ClassifyByMediaTypeHeaderAndShape) {
  EXPECT_EQ(*ClassifyManifest(R"({"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})", ""),
            ManifestKind::kIndex);
  EXPECT_EQ(*ClassifyManifest(R"({"manifests":[]})",
                              "application/vnd.docker.distribution.manifest.list.v2+json"),
            ManifestKind::kIndex);
  EXPECT_EQ(*ClassifyManifest(R"({"config":{},"layers":[]})",
                              "application/vnd.docker.distribution.manifest.v2+json; x=y"),
            ManifestKind::kManifest);
  EXPECT_EQ(*ClassifyManifest(R"({"schemaVersion":2,"config":{},"layers":[]})", ""),
            ManifestKind::kManifest);
  auto v1 = ClassifyManifest(R"({"schemaVersion":1,"fsLayers":[]})", "");
  EXPECT_EQ(v1.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(ClassifyManifest("not json", "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Manifest, SelectLinuxAmd64FromIndex) {
  std::string body = testing::MakeIndex({{kD1, 100, "arm64"}, {kD2, 200, "amd64"}});
  auto index = ParseImageIndex(body, "index");
  ASSERT_TRUE(index.ok()) << index.status();
  auto d = SelectPlatform(*index, "linux", "amd64");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, kD2);
  EXPECT_EQ(d->size, 200);

  auto none = SelectPlatform(*index, "linux", "s390x");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("linux/arm64, linux/amd64"));
}

TEST(Manifest, ParseValidates) {
  auto m = ParseImageManifest(
      R"({"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
          kD1 + R"(","size":3},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
          kD2 + R"(","size":3}]})",
      "manifest x");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.digest, kD1);
  ASSERT_EQ(m->layers.size(), 1u);
  EXPECT_EQ(m->layers[0].digest, kD2);

  auto bad_digest = ParseImageManifest(
      R"({"config":{"digest":"sha256:../../etc","size":3},"layers":[]})", "manifest x");
  EXPECT_EQ(bad_digest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_digest.status().message(), HasSubstr("manifest x config"));

  auto neg = ParseImageManifest(R"({"config":{"digest":")" + kD1 +
                                    R"(","size":-1},"layers":[]})",
                                "manifest x");
  EXPECT_EQ(neg.status().code(), absl::StatusCode::kInvalidArgument);

  auto artifact = ParseImageManifest(
      R"({"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":")" + kD1 +
          R"(","size":3},"layers":[]})",
      "manifest x");
  EXPECT_THAT(artifact.status().message(), HasSubstr("not a container image config"));
}

TEST(Manifest, LayerMediaTypes) {
  struct Case {
    const char* type;
    Compression compression;
    bool encrypted;
  };
  const Case cases[] = {
      {"application/vnd.oci.image.layer.v1.tar", Compression::kNone, false},
      {"application/vnd.oci.image.layer.v1.tar+gzip", Compression::kGzip, false},
      {"application/vnd.oci.image.layer.v1.tar+zstd", Compression::kZstd, false},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::kGzip, false},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::kGzip, false},
      {"application/vnd.oci.image.layer.v1.tar+gzip+encrypted", Compression::kGzip, true},
      {"application/vnd.oci.image.layer.v1.tar+zstd+encrypted", Compression::kZstd, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.type);
    auto t = ClassifyLayerMediaType(c.type);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->compression, c.compression);
    EXPECT_EQ(t->encrypted, c.encrypted);
  }
  auto bad = ClassifyLayerMediaType("application/vnd.in-toto+json");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BlobVerifier, AcceptsExactContent) {
  auto v = BlobVerifier::Create("layer", Sha256Digest("hello world"), 11);
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(v->Update("hello ").ok());
  ASSERT_TRUE(v->Update("world").ok());
  EXPECT_TRUE(v->Finish().ok());
}

TEST(BlobVerifier, DigestMismatchTruncationAndOversize) {
  std::string digest = Sha256Digest("hello world");
  auto v = BlobVerifier::Create("layer", digest, 11);
  ASSERT_TRUE(v->Update("hello WORLD").ok());
  absl::Status s = v->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr(digest));

  auto t = BlobVerifier::Create("layer", digest, 11);
  ASSERT_TRUE(t->Update("hello").ok());
  s = t->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("truncated"));
  EXPECT_THAT(s.message(), HasSubstr(digest));

  auto o = BlobVerifier::Create("layer", digest, 11);
  s = o->Update("hello world and more");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr(digest));
}

}  // namespace
}  // namespace cloak::agent::image
