// `cloak measure --config`: a runtime class's launch measurement from its
// config alone (docs/measurement.md, "One value per runtime class").
#include <fstream>
#include <functional>
#include <optional>
#include <vector>
#include <string>

#include "cli/cloak/measure.h"
#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/hypervisor/guest_cmdline.h"

namespace cloak::cli {
namespace {

using ::testing::HasSubstr;

class MeasureClassTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cloak-measure-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    std::ofstream(dir_->Join("vmlinuz")) << "not really a kernel";
    std::ofstream(dir_->Join("initrd.img")) << "not really an initrd";
    c_.hypervisor.kernel = dir_->Join("vmlinuz");
    c_.hypervisor.initrd = dir_->Join("initrd.img");
    c_.agent.channel = config::AgentChannel::kSerial;
  }
  std::string Measure(const config::Config& c) {
    absl::StatusOr<SnpMeasureFlags> f = SnpFlagsForClass(c, false);
    EXPECT_TRUE(f.ok()) << f.status();
    if (!f.ok()) return "";
    absl::StatusOr<nlohmann::json> doc = MeasureSnp(*f);
    EXPECT_TRUE(doc.ok()) << doc.status();
    return doc.ok() ? (*doc)["reference_values"]["measurement"][0].get<std::string>() : "";
  }

  std::optional<TempDir> dir_;
  config::Config c_;
};

TEST_F(MeasureClassTest, DevClassIsTheSimulatedSpsLaunch) {
  absl::StatusOr<SnpMeasureFlags> f = SnpFlagsForClass(c_, false);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->dev_firmware);
  EXPECT_EQ(*f->kernel, c_.hypervisor.kernel);
  EXPECT_EQ(*f->initrd, c_.hypervisor.initrd);
  EXPECT_EQ(f->vcpus, 1u);
  EXPECT_EQ(*f->append,
            shim::hypervisor::GuestKernelCmdline(c_, config::AgentChannel::kSerial));
  EXPECT_THAT(*f->append, HasSubstr("cloak.tee=none"));
  // The same value as the explicit flags give.
  SnpMeasureFlags explicit_flags;
  explicit_flags.dev_firmware = true;
  explicit_flags.kernel = c_.hypervisor.kernel;
  explicit_flags.initrd = c_.hypervisor.initrd;
  explicit_flags.append = *f->append;
  absl::StatusOr<nlohmann::json> doc = MeasureSnp(explicit_flags);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(Measure(c_), (*doc)["reference_values"]["measurement"][0].get<std::string>());
}

TEST_F(MeasureClassTest, PerPodSettingsDoNotMoveTheMeasurement) {
  const std::string base = Measure(c_);
  ASSERT_EQ(base.size(), 96u);
  // What used to be per-pod kernel parameters now lives in the init-data.
  config::Config pod = c_;
  pod.agent.log_level = "trace";
  pod.image.insecure_registries = {"registry.local:5000"};
  pod.image.max_concurrent_downloads = 9;
  pod.agent.boot_timeout = absl::Minutes(9);
  pod.hypervisor.memory_mib = 4096;
  EXPECT_EQ(Measure(pod), base);
  // Class-level inputs do.
  for (auto change : std::vector<std::function<void(config::Config&)>>{
           [](config::Config& c) { c.agent.allow_all_policy = true; },
           [](config::Config& c) { c.hypervisor.kernel_params = "cloak.modules=vsock"; },
           [](config::Config& c) { c.hypervisor.vcpus = 2; },
           [](config::Config& c) { c.agent.vsock_port = 2048; },
           [](config::Config& c) { c.agent.channel = config::AgentChannel::kVsock; },
       }) {
    config::Config other = c_;
    change(other);
    EXPECT_NE(Measure(other), base);
  }
}

TEST_F(MeasureClassTest, TeeClassesNeedTheirFirmware) {
  config::Config snp = c_;
  snp.tee.type = config::TeeType::kSnp;
  absl::StatusOr<SnpMeasureFlags> f = SnpFlagsForClass(snp, false);
  ASSERT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("hypervisor.firmware"));
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("AmdSev"));
  snp.hypervisor.firmware = "/opt/ovmf/OVMF.amdsev.fd";
  f = SnpFlagsForClass(snp, false);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->dev_firmware);
  EXPECT_EQ(f->ovmf, "/opt/ovmf/OVMF.amdsev.fd");
  EXPECT_THAT(*f->append, HasSubstr("cloak.tee=snp"));
  // auto resolves as the shim does on this host.
  snp.agent.channel = config::AgentChannel::kAuto;
  EXPECT_THAT(*SnpFlagsForClass(snp, true)->append, HasSubstr("cloak.channel=vsock"));
  EXPECT_THAT(*SnpFlagsForClass(snp, false)->append, HasSubstr("cloak.channel=serial"));

  config::Config tdx = c_;
  tdx.tee.type = config::TeeType::kTdx;
  EXPECT_THAT(std::string(SnpFlagsForClass(tdx, false).status().message()),
              HasSubstr("measure tdx"));
  EXPECT_THAT(std::string(TdxFlagsForClass(tdx, false).status().message()),
              HasSubstr("hypervisor.firmware"));
  tdx.hypervisor.firmware = "/opt/tdvf.fd";
  tdx.hypervisor.memory_mib = 4096;
  absl::StatusOr<TdxMeasureFlags> t = TdxFlagsForClass(tdx, false);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->firmware, "/opt/tdvf.fd");
  EXPECT_EQ(t->memory_mib, 4096u);
  EXPECT_THAT(t->append, HasSubstr("cloak.tee=tdx"));
  EXPECT_FALSE(TdxFlagsForClass(c_, false).ok());
}

}  // namespace
}  // namespace cloak::cli
