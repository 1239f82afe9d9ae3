// agent/process_io: the bounded output buffer between a process and its readers.
#include "agent/process_io.h"

#include <thread>

#include "gtest/gtest.h"

namespace cloak::agent {
namespace {

TEST(OutputBufferTest, BackpressureAndEof) {
  OutputBuffer buffer(8);
  std::thread producer([&] {
    EXPECT_TRUE(buffer.Append("0123456789abcdef"));  // blocks until the reader drains
    buffer.MarkEof();
  });
  std::string all, chunk;
  while (true) {
    OutputBuffer::ReadResult r = buffer.Read(5, absl::Seconds(5), &chunk);
    if (r == OutputBuffer::ReadResult::kEof) break;
    ASSERT_EQ(r, OutputBuffer::ReadResult::kData);
    EXPECT_LE(chunk.size(), 5u);
    all += chunk;
  }
  producer.join();
  EXPECT_EQ(all, "0123456789abcdef");
  EXPECT_TRUE(buffer.eof_drained());
  EXPECT_TRUE(buffer.AcquireReader());
  EXPECT_FALSE(buffer.AcquireReader());
  buffer.ReleaseReader();
  EXPECT_TRUE(buffer.AcquireReader());
}

TEST(OutputBufferTest, AbandonUnblocksProducer) {
  OutputBuffer buffer(4);
  std::thread producer([&] { EXPECT_FALSE(buffer.Append("0123456789")); });
  absl::SleepFor(absl::Milliseconds(50));
  buffer.Abandon();
  producer.join();
}

}  // namespace
}  // namespace cloak::agent
