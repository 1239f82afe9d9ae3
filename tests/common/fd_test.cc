#include "common/fd.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace cloak {
namespace {

TEST(UniqueFd, ClosesOnDestructionAndMove) {
  int raw;
  {
    UniqueFd fd(::open("/dev/null", O_RDONLY));
    ASSERT_TRUE(fd.valid());
    raw = fd.get();
    UniqueFd moved = std::move(fd);
    EXPECT_FALSE(fd.valid());
    EXPECT_EQ(moved.get(), raw);
  }
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
}

TEST(Fd, WriteAllReadExactRoundTrip) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  ASSERT_TRUE(WriteAll(a.get(), "hello world").ok());
  char buf[11];
  ASSERT_TRUE(ReadExact(b.get(), buf, sizeof(buf)).ok());
  EXPECT_EQ(std::string(buf, sizeof(buf)), "hello world");
}

TEST(Fd, ReadExactReportsEofKinds) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  ASSERT_TRUE(WriteAll(a.get(), "abc").ok());
  a.Reset();
  char buf[8];
  EXPECT_EQ(ReadExact(b.get(), buf, 8).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadExact(b.get(), buf, 8).code(), absl::StatusCode::kOutOfRange);
}

TEST(Fd, WaitReadableTimesOut) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  EXPECT_EQ(WaitReadable(b.get(), absl::Milliseconds(20)).code(),
            absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(WriteAll(a.get(), "x").ok());
  EXPECT_TRUE(WaitReadable(b.get(), absl::Seconds(1)).ok());
}

}  // namespace
}  // namespace cloak
