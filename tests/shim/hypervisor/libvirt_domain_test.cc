// The libvirt driver's pure parts: golden domain XML (testdata/<name>.xml),
// domain-capabilities parsing, accel resolution and the launch-security
// refusal, Cloak's metadata element. To regenerate the golden files after
// an intended change:
//   CLOAK_UPDATE_GOLDEN=1 ./hypervisor_unit_test --gtest_filter='LibvirtDomainXml*'
// and review the diff.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/hypervisor/libvirt/domain_caps.h"
#include "shim/hypervisor/libvirt/domain_xml.h"

namespace cloak::shim::hypervisor {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Bytes(int n, int start = 0) {
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>(start + i));
  return out;
}

VmConfig BaseConfig() {
  VmConfig c;
  c.name = "cloak-sandbox-1";
  c.sandbox_id = "sandbox-1";
  c.state_dir = "/run/cloak/sandbox-1";
  c.qemu_path = "/usr/bin/qemu-system-x86_64";
  c.kernel = "/usr/local/share/cloak/vmlinuz";
  c.initrd = "/usr/local/share/cloak/initrd.img";
  c.kernel_cmdline = "console=ttyS0 quiet panic=-1 cloak.channel=serial";
  c.memory_mib = 2048;
  c.serial_socket_path = "/run/cloak/sandbox-1/agent.sock";
  c.console_log_path = "/run/cloak/sandbox-1/console.log";
  return c;
}

void ExpectGolden(const std::string& name, const std::string& xml) {
  const std::string path = std::string(CLOAK_HV_TESTDATA_DIR) + "/" + name + ".xml";
  const char* update = std::getenv("CLOAK_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(path) << xml;
    return;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing golden file " << path << " (CLOAK_UPDATE_GOLDEN=1 writes it)";
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(xml, want.str()) << "golden " << path;
}

TEST(LibvirtDomainXml, NoneTcgSerialUserNetwork) {
  absl::StatusOr<std::string> xml = BuildDomainXml(BaseConfig(), Accel::kTcg, AgentChannel::kSerial);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ExpectGolden("libvirt_none_tcg_serial", *xml);
  EXPECT_THAT(*xml, HasSubstr("<domain type='qemu'>"));
  EXPECT_THAT(*xml, HasSubstr("<cpu mode='maximum'"));
  EXPECT_THAT(*xml, Not(HasSubstr("launchSecurity")));
}

TEST(LibvirtDomainXml, NoneKvmVsockPodTaps) {
  VmConfig c = BaseConfig();
  c.user_network = false;
  c.vsock_guest_cid = 1234;
  c.taps = {{.fd = -1, .name = "cl0a1b2c3dt0", .mac = "0a:58:0a:58:4d:05"}};
  absl::StatusOr<std::string> xml = BuildDomainXml(c, Accel::kKvm, AgentChannel::kVsock);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ExpectGolden("libvirt_none_kvm_vsock_pod_tap", *xml);
  EXPECT_THAT(*xml, HasSubstr("<domain type='kvm'>"));
  EXPECT_THAT(*xml, HasSubstr("<target dev='cl0a1b2c3dt0' managed='no'/>"));
  EXPECT_THAT(*xml, Not(HasSubstr("type='user'")));
}

TEST(LibvirtDomainXml, SevSnp) {
  VmConfig c = BaseConfig();
  c.tee = TeeType::kSnp;
  c.firmware = "/usr/local/share/cloak/OVMF-AmdSev.fd";
  c.snp.host_data = Bytes(32);
  absl::StatusOr<std::string> xml = BuildDomainXml(c, Accel::kKvm, AgentChannel::kSerial);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ExpectGolden("libvirt_snp", *xml);
  EXPECT_THAT(*xml, HasSubstr("<launchSecurity type='sev-snp' kernelHashes='yes'>"));
  // HOST_DATA is the init-data digest, base64 as libvirt's hostData takes it.
  EXPECT_THAT(*xml, HasSubstr("<hostData>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=</hostData>"));
  EXPECT_THAT(*xml, HasSubstr("<model fallback='forbid'>EPYC-v4</model>"));
}

TEST(LibvirtDomainXml, Tdx) {
  VmConfig c = BaseConfig();
  c.tee = TeeType::kTdx;
  c.firmware = "/usr/local/share/cloak/TDVF.fd";
  c.tdx.mrconfigid = Bytes(48, 1);
  absl::StatusOr<std::string> xml = BuildDomainXml(c, Accel::kKvm, AgentChannel::kSerial);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ExpectGolden("libvirt_tdx", *xml);
  EXPECT_THAT(*xml, HasSubstr("<launchSecurity type='tdx'>"));
  EXPECT_THAT(*xml, HasSubstr("<policy>0x10000000</policy>"));
  EXPECT_THAT(*xml, HasSubstr("<quoteGenerationService path='/var/run/tdx-qgs/qgs.socket'/>"));
  EXPECT_THAT(*xml, HasSubstr("<smm state='off'/>"));
}

TEST(LibvirtDomainXml, RefusesBadValues) {
  struct Case {
    std::string what;
    VmConfig config;
    Accel accel;
    std::string error;
  };
  std::vector<Case> cases;
  VmConfig c = BaseConfig();
  c.name.clear();
  cases.push_back({"no name", c, Accel::kTcg, "name is empty"});
  c = BaseConfig();
  c.tee = TeeType::kSnp;
  c.firmware = "/fw.fd";
  cases.push_back({"tee under tcg", c, Accel::kTcg, "needs a kvm domain"});
  c.snp.host_data = "short";
  cases.push_back({"host data", c, Accel::kKvm, "snp.host_data must be exactly 32"});
  c = BaseConfig();
  c.tee = TeeType::kTdx;
  c.firmware = "/fw.fd";
  c.tdx.quote_generation_socket = "vsock:2:4050";
  cases.push_back({"vsock qgs", c, Accel::kKvm, "takes a unix socket path"});
  c = BaseConfig();
  c.taps = {{.fd = 3, .name = "", .mac = "0a:58:0a:58:4d:05"}};
  cases.push_back({"unnamed tap", c, Accel::kTcg, "has no device name"});
  c = BaseConfig();
  c.extra_args = {"-S"};
  cases.push_back({"raw args", c, Accel::kTcg, "not supported by the libvirt driver"});
  for (const Case& k : cases) {
    absl::StatusOr<std::string> xml = BuildDomainXml(k.config, k.accel, AgentChannel::kSerial);
    ASSERT_FALSE(xml.ok()) << k.what;
    EXPECT_TRUE(absl::IsInvalidArgument(xml.status())) << k.what;
    EXPECT_THAT(xml.status().message(), HasSubstr(k.error)) << k.what;
  }
}

TEST(LibvirtDomainXml, EscapesValues) {
  VmConfig c = BaseConfig();
  c.kernel_cmdline = "a='b' <c> & \"d\"";
  absl::StatusOr<std::string> xml = BuildDomainXml(c, Accel::kTcg, AgentChannel::kSerial);
  ASSERT_TRUE(xml.ok()) << xml.status();
  EXPECT_THAT(*xml, HasSubstr("<cmdline>a=&apos;b&apos; &lt;c&gt; &amp; &quot;d&quot;</cmdline>"));
}

TEST(LibvirtMetadata, RoundTripsThroughLibvirtsForms) {
  // As the domain XML writes it, and as virDomainGetMetadata gives it back
  // (libvirt may rewrite the prefix).
  for (const std::string& xml : {
           std::string("<cloak:sandbox xmlns:cloak='https://cloak.io/xmlns/libvirt/domain/1' "
                       "id='sb-1' stateDir='/run/cloak/sb-1'/>"),
           std::string("<sandbox xmlns=\"https://cloak.io/xmlns/libvirt/domain/1\" id=\"sb-1\" "
                       "stateDir=\"/run/cloak/sb-1\"/>"),
           // What libvirt 9.0's virDomainGetMetadata returns.
           std::string("<sandbox id=\"sb-1\" stateDir=\"/run/cloak/sb-1\"/>"),
       }) {
    absl::StatusOr<DomainMetadata> m = ParseDomainMetadata(xml);
    ASSERT_TRUE(m.ok()) << m.status() << " for " << xml;
    EXPECT_EQ(m->sandbox_id, "sb-1");
    EXPECT_EQ(m->state_dir, "/run/cloak/sb-1");
  }
  EXPECT_FALSE(ParseDomainMetadata("<x:sandbox xmlns:x='urn:other' id='x'/>").ok());
  EXPECT_FALSE(
      ParseDomainMetadata("<sandbox xmlns='https://cloak.io/xmlns/libvirt/domain/1'/>").ok());
  EXPECT_FALSE(ParseDomainMetadata("not xml").ok());
  // The builder's element parses back.
  absl::StatusOr<std::string> xml = BuildDomainXml(BaseConfig(), Accel::kTcg, AgentChannel::kSerial);
  ASSERT_TRUE(xml.ok());
  const size_t begin = xml->find("<cloak:sandbox");
  const size_t end = xml->find("/>", begin) + 2;
  absl::StatusOr<DomainMetadata> m = ParseDomainMetadata(xml->substr(begin, end - begin));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->sandbox_id, "sandbox-1");
}

// Trimmed from `virsh domcapabilities --virttype qemu --machine q35` of
// libvirt 9.0.0 on this machine.
constexpr char kDomcaps90[] = R"(<domainCapabilities>
  <path>/usr/bin/qemu-system-x86_64</path>
  <domain>qemu</domain>
  <machine>pc-q35-7.2</machine>
  <arch>x86_64</arch>
  <os supported='yes'>
    <enum name='firmware'/>
  </os>
  <features>
    <gic supported='no'/>
    <sev supported='no'/>
    <sgx supported='no'/>
  </features>
</domainCapabilities>)";

// The shape newer libvirt reports on an SNP + TDX capable host.
constexpr char kDomcapsNew[] = R"(<domainCapabilities>
  <path>/usr/bin/qemu-system-x86_64</path>
  <domain>kvm</domain>
  <machine>pc-q35-10.1</machine>
  <os supported='yes'>
    <enum name='firmware'><value>efi</value></enum>
  </os>
  <features>
    <sev supported='yes'><cbitpos>51</cbitpos></sev>
    <launchSecurity supported='yes'>
      <enum name='sectype'><value>sev</value><value>sev-snp</value><value>tdx</value></enum>
    </launchSecurity>
  </features>
</domainCapabilities>)";

TEST(LibvirtDomainCaps, Parses) {
  absl::StatusOr<DomainCapabilities> old = ParseDomainCapabilities(kDomcaps90);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_TRUE(old->available);
  EXPECT_EQ(old->emulator, "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(old->machine, "pc-q35-7.2");
  EXPECT_TRUE(old->launch_security.empty());
  EXPECT_TRUE(old->firmware.empty());
  absl::StatusOr<DomainCapabilities> now = ParseDomainCapabilities(kDomcapsNew);
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_THAT(now->launch_security, ElementsAre("sev", "sev-snp", "tdx"));
  EXPECT_THAT(now->firmware, ElementsAre("efi"));
  EXPECT_FALSE(ParseDomainCapabilities("<capabilities/>").ok());
  EXPECT_FALSE(ParseDomainCapabilities("garbage").ok());
  EXPECT_EQ(LibvirtVersionFromNumber(9000000), (LibvirtVersion{9, 0, 0}));
  EXPECT_EQ(LibvirtVersionFromNumber(10005001), (LibvirtVersion{10, 5, 1}));
}

LibvirtCapabilities Debian12() {
  LibvirtCapabilities lv;
  lv.uri = "qemu:///system";
  lv.reachable = true;
  lv.version = {9, 0, 0};
  lv.hypervisor_version = {7, 2, 22};
  lv.kvm.available = true;
  lv.tcg = *ParseDomainCapabilities(kDomcaps90);
  lv.kvm = lv.tcg;
  return lv;
}

TEST(LibvirtDomainCaps, RefusesSnpAndTdxOnLibvirt90NamingVersionAndWhatIsMissing) {
  const LibvirtCapabilities lv = Debian12();
  EXPECT_TRUE(CheckLibvirtTeeSupport(TeeType::kNone, lv).ok());
  absl::Status snp = CheckLibvirtTeeSupport(TeeType::kSnp, lv);
  EXPECT_TRUE(absl::IsFailedPrecondition(snp));
  EXPECT_EQ(snp.message(),
            "tee=snp through libvirt needs libvirt ≥ 10.5.0 (<launchSecurity type='sev-snp'>) "
            "with sev-snp in its kvm domain capabilities; qemu:///system runs libvirt 9.0.0, "
            "whose domain XML has no launchSecurity type 'sev-snp', and lists launch security: "
            "none in its kvm domain capabilities (QEMU 7.2.22)");
  absl::Status tdx = CheckLibvirtTeeSupport(TeeType::kTdx, lv);
  EXPECT_TRUE(absl::IsFailedPrecondition(tdx));
  EXPECT_THAT(tdx.message(), HasSubstr("needs libvirt ≥ 11.8.0 (<launchSecurity type='tdx'>)"));
  EXPECT_THAT(tdx.message(), HasSubstr("runs libvirt 9.0.0"));

  LibvirtCapabilities newer = lv;
  newer.version = {11, 8, 0};
  newer.kvm = *ParseDomainCapabilities(kDomcapsNew);
  EXPECT_TRUE(CheckLibvirtTeeSupport(TeeType::kSnp, newer).ok());
  EXPECT_TRUE(CheckLibvirtTeeSupport(TeeType::kTdx, newer).ok());

  LibvirtCapabilities down = lv;
  down.reachable = false;
  down.error = "Failed to connect socket";
  EXPECT_THAT(CheckLibvirtTeeSupport(TeeType::kSnp, down).message(),
              HasSubstr("is not reachable: Failed to connect socket"));
}

TEST(LibvirtDomainCaps, ResolvesAccel) {
  HostCapabilities pvm;
  pvm.kvm_present = pvm.kvm_openable = pvm.kvm_pvm = true;
  HostCapabilities kvm = pvm;
  kvm.kvm_pvm = false;
  LibvirtCapabilities lv = Debian12();
  VmConfig c;
  absl::StatusOr<AccelChoice> a = ResolveLibvirtAccel(c, lv, pvm);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->accel, Accel::kTcg);
  EXPECT_THAT(a->reason, HasSubstr("kvm_pvm"));
  a = ResolveLibvirtAccel(c, lv, kvm);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->accel, Accel::kKvm);
  lv.kvm.available = false;
  lv.kvm.error = "the accel 'kvm' is not supported";
  a = ResolveLibvirtAccel(c, lv, kvm);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->accel, Accel::kTcg);
  c.accel = Accel::kKvm;
  EXPECT_THAT(ResolveLibvirtAccel(c, lv, kvm).status().message(),
              HasSubstr("accel=kvm needs a kvm domain, but libvirt at qemu:///system offers no "
                        "kvm domains"));
  lv.reachable = false;
  lv.error = "no socket";
  c.accel = Accel::kAuto;
  EXPECT_THAT(ResolveLibvirtAccel(c, lv, kvm).status().message(),
              HasSubstr("start libvirtd (and virtlogd) or set hypervisor.libvirt_uri"));
}

}  // namespace
}  // namespace cloak::shim::hypervisor
