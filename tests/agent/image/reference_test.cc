#include "agent/image/reference.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::agent::image {
namespace {

using ::testing::HasSubstr;

constexpr char kDigest[] =
    "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";

struct Case {
  const char* input;
  const char* registry;
  const char* repository;
  const char* tag;
  const char* digest;
  const char* host;
};

TEST(ParseReference, Table) {
  const Case cases[] = {
      {"busybox", "docker.io", "library/busybox", "latest", "", "registry-1.docker.io"},
      {"busybox:1.36", "docker.io", "library/busybox", "1.36", "", "registry-1.docker.io"},
      {"library/busybox", "docker.io", "library/busybox", "latest", "", "registry-1.docker.io"},
      {"docker.io/busybox", "docker.io", "library/busybox", "latest", "", "registry-1.docker.io"},
      {"index.docker.io/foo/bar:v1", "docker.io", "foo/bar", "v1", "", "registry-1.docker.io"},
      {"quay.io/coreos/etcd:v3.5", "quay.io", "coreos/etcd", "v3.5", "", "quay.io"},
      {"localhost/app", "localhost", "app", "latest", "", "localhost"},
      {"localhost:5000/app:dev", "localhost:5000", "app", "dev", "", "localhost:5000"},
      {"127.0.0.1:5000/cloak/test:1", "127.0.0.1:5000", "cloak/test", "1", "",
       "127.0.0.1:5000"},
      {"ghcr.io/a/b/c.d_e__f-g:T_1.x-y", "ghcr.io", "a/b/c.d_e__f-g", "T_1.x-y", "", "ghcr.io"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.input);
    auto ref = ParseReference(c.input);
    ASSERT_TRUE(ref.ok()) << ref.status();
    EXPECT_EQ(ref->registry, c.registry);
    EXPECT_EQ(ref->repository, c.repository);
    EXPECT_EQ(ref->tag, c.tag);
    EXPECT_EQ(ref->digest, c.digest);
    EXPECT_EQ(ref->RegistryHost(), c.host);
  }
}

TEST(ParseReference, Digests) {
  auto ref = ParseReference(std::string("127.0.0.1:5000/cloak/test@") + kDigest);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->tag, "");
  EXPECT_EQ(ref->digest, kDigest);
  EXPECT_EQ(ref->ManifestReference(), kDigest);
  EXPECT_EQ(ref->String(), std::string("127.0.0.1:5000/cloak/test@") + kDigest);

  auto both = ParseReference(std::string("busybox:1.36@") + kDigest);
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(both->tag, "1.36");
  EXPECT_EQ(both->ManifestReference(), kDigest);
  EXPECT_EQ(both->String(), std::string("docker.io/library/busybox:1.36@") + kDigest);
}

TEST(ParseReference, Invalid) {
  struct Bad {
    const char* input;
    const char* why;
  };
  const Bad cases[] = {
      {"", "empty"},
      {"Busybox", "lowercase"},
      {"busybox:", "tag"},
      {"busybox:-bad", "tag"},
      {"busybox@sha256:abc", "digest"},
      {"busybox@md5:d41d8cd98f00b204e9800998ecf8427e", "digest"},
      {"reg.io:99999/app", "port"},
      {"reg.io:/app", "port"},
      {"a//b", "repository component"},
      {"a/../b", "repository component"},
      {"bad_.name", "repository component"},
      {"foo bar", "whitespace"},
      {"-reg.io/x", "valid host name"},
      {"reg.io/", "empty"},
  };
  for (const Bad& b : cases) {
    SCOPED_TRACE(b.input);
    auto ref = ParseReference(b.input);
    ASSERT_FALSE(ref.ok());
    EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(ref.status().message(), HasSubstr(b.why));
    EXPECT_THAT(ref.status().message(), HasSubstr("invalid image reference"));
  }
}

// Found by tests/fuzz/image_reference_fuzz: a 250-character Docker Hub name
// was accepted, but its canonical form docker.io/library/<name> was refused
// as too long. As in Docker, the 255-character limit is on the normalised
// name, so whatever parses, parses again from String().
TEST(ParseReference, NameLimitIsOnTheNormalisedName) {
  const std::string name(250, 'm');
  auto hub = ParseReference(name);
  ASSERT_FALSE(hub.ok());
  EXPECT_THAT(hub.status().message(), HasSubstr("longer than 255"));
  // 255 characters with the registry: the limit itself is allowed.
  const std::string fits = "reg.io/" + std::string(255 - 7, 'a');
  auto ref = ParseReference(fits);
  ASSERT_TRUE(ref.ok()) << ref.status();
  auto again = ParseReference(ref->String());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->String(), ref->String());
  EXPECT_FALSE(ParseReference(fits + "a").ok());
}

TEST(IsValidSha256Digest, Basics) {
  EXPECT_TRUE(IsValidSha256Digest(kDigest));
  EXPECT_FALSE(IsValidSha256Digest("sha256:ABC"));
  EXPECT_FALSE(IsValidSha256Digest(
      "sha256:../../../../etc/passwd000000000000000000000000000000000000000000000"));
}

}  // namespace
}  // namespace cloak::agent::image
