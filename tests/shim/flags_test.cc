// shim/flags: the command line containerd gives a shim.
#include "shim/flags.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::shim {
namespace {

using ::testing::HasSubstr;

TEST(FlagsTest, StartAsContainerdRunsIt) {
  auto f = ParseShimFlags({"-namespace", "default", "-address", "/run/containerd/containerd.sock",
                           "-publish-binary", "/usr/bin/containerd", "-id", "c1", "-debug",
                           "start"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->namespace_name, "default");
  EXPECT_EQ(f->address, "/run/containerd/containerd.sock");
  EXPECT_EQ(f->publish_binary, "/usr/bin/containerd");
  EXPECT_EQ(f->id, "c1");
  EXPECT_TRUE(f->debug);
  EXPECT_EQ(f->action, Action::kStart);
}

TEST(FlagsTest, EqualsFormDoubleDashBundleAndDelete) {
  auto f = ParseShimFlags({"--namespace=k8s.io", "-address=/a.sock", "-id=x", "-bundle", "/b",
                           "-debug=false", "delete"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->namespace_name, "k8s.io");
  EXPECT_EQ(f->address, "/a.sock");
  EXPECT_EQ(f->bundle, "/b");
  EXPECT_FALSE(f->debug);
  EXPECT_EQ(f->action, Action::kDelete);
}

TEST(FlagsTest, NoActionServesAndSocketAndVersion) {
  auto f = ParseShimFlags({"-namespace", "n", "-id", "i", "-address", "a", "-socket", "/s"});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->action, Action::kServe);
  EXPECT_EQ(f->socket, "/s");
  auto v = ParseShimFlags({"-v"});
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->version);
}

TEST(FlagsTest, Errors) {
  EXPECT_THAT(ParseShimFlags({"-nope"}).status().message(), HasSubstr("-nope"));
  EXPECT_THAT(ParseShimFlags({"-id"}).status().message(), HasSubstr("needs an argument"));
  EXPECT_THAT(ParseShimFlags({"-debug=maybe"}).status().message(), HasSubstr("boolean"));
  EXPECT_THAT(ParseShimFlags({"-id", "x", "frobnicate"}).status().message(),
              HasSubstr("unknown action"));
}

TEST(FlagsTest, DaemonArgsRoundTrip) {
  ShimFlags f;
  f.namespace_name = "default";
  f.id = "c1";
  f.address = "/run/containerd/containerd.sock";
  f.debug = true;
  std::vector<std::string> args = DaemonArgs(f);
  auto back = ParseShimFlags(args);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->action, Action::kServe);
  EXPECT_EQ(back->id, "c1");
  EXPECT_TRUE(back->debug);
}

}  // namespace
}  // namespace cloak::shim
