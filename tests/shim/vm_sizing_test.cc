#include "shim/vm_sizing.h"

#include <string>

#include "gtest/gtest.h"

namespace cloak::shim {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

SizingRules Rules() {
  SizingRules r;
  r.default_memory_mib = 2048;
  r.memory_overhead_mib = 384;
  r.default_vcpus = 1;
  r.max_vcpus = 2;
  return r;
}

TEST(VmSizingTest, MemoryLimitPlusOverhead) {
  PodResources pod;
  pod.memory_limit_bytes = 256 * kMiB;
  pod.source = "test";
  const VmSize s = SizeVm(pod, Rules());
  EXPECT_EQ(s.memory_mib, 256 + 384);
  EXPECT_EQ(s.vcpus, 1);
  EXPECT_NE(s.explanation.find("pod limit 256 MiB + overhead 384 MiB"), std::string::npos)
      << s.explanation;
}

TEST(VmSizingTest, PartialMebibyteRoundsUp) {
  PodResources pod;
  pod.memory_limit_bytes = 100 * 1000 * 1000;  // 100M (decimal): 95.4 MiB
  EXPECT_EQ(SizeVm(pod, Rules()).memory_mib, 96 + 384);
}

TEST(VmSizingTest, NoLimitsGiveTheClassDefault) {
  const VmSize s = SizeVm(PodResources{}, Rules());
  EXPECT_EQ(s.memory_mib, 2048);
  EXPECT_EQ(s.vcpus, 1);
  EXPECT_NE(s.explanation.find("no pod memory limit"), std::string::npos);
}

TEST(VmSizingTest, ClampedToTheFloorAndCeiling) {
  SizingRules r = Rules();
  r.memory_overhead_mib = 0;
  PodResources tiny;
  tiny.memory_limit_bytes = 16 * kMiB;
  EXPECT_EQ(SizeVm(tiny, r).memory_mib, 128);
  r.max_memory_mib = 1024;
  PodResources huge;
  huge.memory_limit_bytes = int64_t{64} << 30;
  const VmSize s = SizeVm(huge, r);
  EXPECT_EQ(s.memory_mib, 1024);
  EXPECT_NE(s.explanation.find("clamped"), std::string::npos);
}

TEST(VmSizingTest, CpuLimitRoundsUpAndStopsAtTheHostsCpus) {
  PodResources pod;
  pod.cpu_quota_us = 150000;
  pod.cpu_period_us = 100000;
  EXPECT_EQ(SizeVm(pod, Rules()).vcpus, 2);
  pod.cpu_quota_us = 50000;
  EXPECT_EQ(SizeVm(pod, Rules()).vcpus, 1);
  pod.cpu_quota_us = 800000;
  EXPECT_EQ(SizeVm(pod, Rules()).vcpus, 2);  // max_vcpus
  pod.cpu_period_us.reset();                 // the kernel's default period
  pod.cpu_quota_us = 200000;
  EXPECT_EQ(SizeVm(pod, Rules()).vcpus, 2);
}

TEST(VmSizingTest, MeasuredVcpuCountIsKept) {
  SizingRules r = Rules();
  r.vcpus_measured = true;
  PodResources pod;
  pod.cpu_quota_us = 200000;
  pod.cpu_period_us = 100000;
  pod.memory_limit_bytes = 512 * kMiB;
  const VmSize s = SizeVm(pod, r);
  EXPECT_EQ(s.vcpus, 1);
  EXPECT_EQ(s.memory_mib, 512 + 384);  // memory is not part of the launch digest
  EXPECT_NE(s.explanation.find("launch measurement"), std::string::npos);
}

TEST(VmSizingTest, PinnedAnnotationsWin) {
  SizingRules r = Rules();
  r.memory_pinned = true;
  r.vcpus_pinned = true;
  r.default_memory_mib = 768;
  r.default_vcpus = 2;
  PodResources pod;
  pod.memory_limit_bytes = 256 * kMiB;
  pod.cpu_quota_us = 100000;
  const VmSize s = SizeVm(pod, r);
  EXPECT_EQ(s.memory_mib, 768);
  EXPECT_EQ(s.vcpus, 2);
}

TEST(VmSizingTest, CriSandboxAnnotationsAreRead) {
  auto pod = PodResourcesFromSpec(R"({
    "annotations": {"io.kubernetes.cri.sandbox-memory": "268435456",
                    "io.kubernetes.cri.sandbox-cpu-quota": "50000",
                    "io.kubernetes.cri.sandbox-cpu-period": "100000"},
    "linux": {"resources": {"memory": {"limit": 999999999}}}})");
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->memory_limit_bytes, 256 * kMiB);
  EXPECT_EQ(pod->cpu_quota_us, 50000);
  EXPECT_EQ(pod->cpu_period_us, 100000);
  EXPECT_EQ(pod->source, "CRI sandbox annotations");
}

TEST(VmSizingTest, ZeroAnnotationsMeanNoLimit) {
  // containerd writes "0" for a pod without limits.
  auto pod = PodResourcesFromSpec(R"({
    "annotations": {"io.kubernetes.cri.sandbox-memory": "0",
                    "io.kubernetes.cri.sandbox-cpu-quota": "0",
                    "io.kubernetes.cri.sandbox-cpu-period": "100000"}})");
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_FALSE(pod->memory_limit_bytes.has_value());
  EXPECT_FALSE(pod->cpu_quota_us.has_value());
}

TEST(VmSizingTest, SpecResourcesOfACtrContainer) {
  auto pod = PodResourcesFromSpec(R"({"linux": {"resources": {
      "memory": {"limit": 134217728}, "cpu": {"quota": 200000, "period": 100000}}}})");
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(pod->memory_limit_bytes, 128 * kMiB);
  EXPECT_EQ(pod->cpu_quota_us, 200000);
  EXPECT_EQ(pod->source, "the spec's linux.resources");
}

TEST(VmSizingTest, MalformedAnnotationIsRefusedByName) {
  for (const char* v : {"\"lots\"", "\"-5\"", "12"}) {
    auto pod = PodResourcesFromSpec(
        std::string(R"({"annotations": {"io.kubernetes.cri.sandbox-memory": )") + v + "}}");
    ASSERT_FALSE(pod.ok()) << v;
    EXPECT_NE(pod.status().message().find("io.kubernetes.cri.sandbox-memory"), std::string::npos);
  }
  EXPECT_FALSE(PodResourcesFromSpec("[1]").ok());
  // Odd types in linux.resources are ignored, not fatal: they are runc's
  // business and the VM keeps the default.
  auto odd = PodResourcesFromSpec(R"({"linux": {"resources": {"memory": {"limit": "x"}}}})");
  ASSERT_TRUE(odd.ok());
  EXPECT_FALSE(odd->memory_limit_bytes.has_value());
}

}  // namespace
}  // namespace cloak::shim
