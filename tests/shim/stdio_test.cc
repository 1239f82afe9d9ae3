// shim/stdio: containerd's stdio URIs.
#include "shim/stdio.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::shim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(StdioUriTest, Table) {
  auto none = ParseStdioUri("");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->kind, StdioTarget::Kind::kNone);
  auto fifo = ParseStdioUri("/run/containerd/fifo/1/c-stdout");
  ASSERT_TRUE(fifo.ok());
  EXPECT_EQ(fifo->kind, StdioTarget::Kind::kFifo);
  EXPECT_EQ(fifo->path, "/run/containerd/fifo/1/c-stdout");
  auto file = ParseStdioUri("file:///var/log/c.log");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->kind, StdioTarget::Kind::kFile);
  EXPECT_EQ(file->path, "/var/log/c.log");
  auto bin = ParseStdioUri("binary:///usr/bin/logger?id=a%20b&mode=x&id=dup");
  ASSERT_TRUE(bin.ok());
  EXPECT_EQ(bin->kind, StdioTarget::Kind::kBinary);
  EXPECT_EQ(bin->path, "/usr/bin/logger");
  EXPECT_THAT(bin->args, ElementsAre("id", "a b", "mode", "x"));
  EXPECT_FALSE(ParseStdioUri("http://x/y").ok());
  EXPECT_FALSE(ParseStdioUri("file://relative").ok());
}

}  // namespace
}  // namespace cloak::shim
