#include "cli/cloak/measure.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/tee/measure/dev_firmware.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "common/tee/measure/snp.h"
#include "common/tee/measure/tdx.h"

namespace cloak::cli {
namespace {

namespace m = cloak::tee::measure;

absl::StatusOr<std::string> Slurp(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read the ", what, " file ", path));
  }
  std::stringstream s;
  s << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return s.str();
}

absl::StatusOr<uint64_t> ParseHex(const std::string& text, absl::string_view what) {
  std::string t = text;
  if (t.rfind("0x", 0) == 0 || t.rfind("0X", 0) == 0) t = t.substr(2);
  if (t.empty() || t.size() > 16 ||
      t.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, " \"", text, "\" is not a hex number"));
  }
  return std::stoull(t, nullptr, 16);
}

}  // namespace

absl::StatusOr<nlohmann::json> MeasureSnp(const SnpMeasureFlags& flags) {
  m::SnpLaunchInput input;
  if (flags.dev_firmware == !flags.ovmf.empty()) {
    return absl::InvalidArgumentError(
        "give the firmware with --ovmf, or --dev-firmware for a simulated (dev) launch");
  }
  if (flags.dev_firmware) {
    input.firmware = m::DevSevFirmware();
  } else {
    ASSIGN_OR_RETURN(input.firmware, Slurp(flags.ovmf, "firmware (--ovmf)"));
  }
  nlohmann::json inputs = {
      {"ovmf", flags.dev_firmware ? std::string("(synthetic dev firmware)") : flags.ovmf},
      {"ovmf_sha256", tee::HexEncode(tee::Sha256(input.firmware))}};
  if (flags.kernel.has_value()) {
    ASSIGN_OR_RETURN(std::string kernel, Slurp(*flags.kernel, "kernel (--kernel)"));
    std::optional<std::string> initrd;
    if (flags.initrd.has_value()) {
      ASSIGN_OR_RETURN(initrd, Slurp(*flags.initrd, "initrd (--initrd)"));
    }
    input.kernel_hashes = m::KernelHashesFromContents(
        kernel, initrd ? std::optional<absl::string_view>(*initrd) : std::nullopt,
        flags.append ? std::optional<absl::string_view>(*flags.append) : std::nullopt);
    inputs["kernel"] = *flags.kernel;
    inputs["kernel_sha256"] = tee::HexEncode(input.kernel_hashes->kernel_sha256);
    inputs["initrd"] = flags.initrd.value_or("");
    inputs["initrd_sha256"] = tee::HexEncode(input.kernel_hashes->initrd_sha256);
    inputs["append"] = flags.append.value_or("");
  } else if (flags.initrd.has_value() || flags.append.has_value()) {
    return absl::InvalidArgumentError(
        "--initrd and --append only count with --kernel (QEMU measures them through the "
        "kernel-hashes table of a direct boot)");
  }
  ASSIGN_OR_RETURN(input.vcpu_signature, m::SnpVcpuSignature(flags.vcpu_type));
  ASSIGN_OR_RETURN(input.guest_features, ParseHex(flags.guest_features, "--guest-features"));
  ASSIGN_OR_RETURN(input.vmm, m::ParseSnpVmmType(flags.vmm_type));
  input.vcpus = flags.vcpus;
  ASSIGN_OR_RETURN(std::string digest, m::ComputeSnpLaunchDigest(input));
  inputs["vcpus"] = flags.vcpus;
  inputs["vcpu_type"] = flags.vcpu_type;
  inputs["guest_features"] = absl::StrFormat("0x%x", input.guest_features);
  inputs["vmm_type"] = std::string(m::SnpVmmTypeName(input.vmm));
  return nlohmann::json{{"tee", "snp"},
                        {"reference_values", {{"measurement", {tee::HexEncode(digest)}}}},
                        {"inputs", inputs}};
}

absl::StatusOr<nlohmann::json> MeasureTdx(const TdxMeasureFlags& flags) {
  ASSIGN_OR_RETURN(std::string firmware, Slurp(flags.firmware, "firmware (--firmware)"));
  ASSIGN_OR_RETURN(m::MrtdPageOrder order, m::ParseMrtdPageOrder(flags.page_order));
  ASSIGN_OR_RETURN(std::string mrtd, m::ComputeMrtd(firmware, order));
  nlohmann::json values = {{"mrtd", {tee::HexEncode(mrtd)}}};
  nlohmann::json inputs = {{"firmware", flags.firmware},
                           {"firmware_sha256", tee::HexEncode(tee::Sha256(firmware))},
                           {"page_order", flags.page_order}};
  if (flags.kernel.has_value()) {
    m::TdxDirectBoot boot;
    ASSIGN_OR_RETURN(boot.kernel, Slurp(*flags.kernel, "kernel (--kernel)"));
    if (flags.initrd.has_value()) {
      ASSIGN_OR_RETURN(boot.initrd, Slurp(*flags.initrd, "initrd (--initrd)"));
    }
    boot.cmdline = flags.append;
    boot.memory_mib = flags.memory_mib;
    ASSIGN_OR_RETURN(m::TdxRtmrs rtmrs, m::ComputeTdxDirectBootRtmrs(boot));
    values["rtmr1"] = {tee::HexEncode(rtmrs.rtmr1)};
    values["rtmr2"] = {tee::HexEncode(rtmrs.rtmr2)};
    inputs["kernel"] = *flags.kernel;
    inputs["kernel_sha256"] = tee::HexEncode(tee::Sha256(boot.kernel));
    inputs["initrd"] = flags.initrd.value_or("");
    inputs["append"] = flags.append;
    inputs["memory_mib"] = flags.memory_mib;
  } else if (flags.initrd.has_value() || !flags.append.empty()) {
    return absl::InvalidArgumentError("--initrd and --append only count with --kernel");
  }
  return nlohmann::json{{"tee", "tdx"}, {"reference_values", values}, {"inputs", inputs}};
}

void AddMeasureCommand(CLI::App& app, MeasureCommand& cmd) {
  cmd.measure = app.add_subcommand(
      "measure", "compute the launch measurement a guest will report (pin it in the KBS policy)");
  cmd.measure->require_subcommand(1);
  cmd.measure->add_flag("--json", cmd.json,
                        "print reference values as JSON (what `cloak-kbs admin` imports)");

  SnpMeasureFlags& s = cmd.snp_flags;
  cmd.snp = cmd.measure->add_subcommand(
      "snp", "SEV-SNP launch digest (as sev-snp-measure computes it; QEMU direct boot)");
  cmd.snp->add_flag("--json", cmd.json, "print reference values as JSON");
  cmd.snp->add_option("--ovmf", s.ovmf, "OVMF firmware (AmdSev build for direct boot)");
  cmd.snp->add_flag("--dev-firmware", s.dev_firmware,
                    "measure over Cloak's synthetic firmware descriptor (the simulated SP's "
                    "value for a dev runtime class)");
  cmd.snp->add_option("--kernel", s.kernel, "kernel (QEMU -kernel, kernel-hashes=on)");
  cmd.snp->add_option("--initrd", s.initrd, "initrd (QEMU -initrd)");
  cmd.snp->add_option("--append", s.append, "kernel command line (QEMU -append)");
  cmd.snp->add_option("--vcpus", s.vcpus, "number of vCPUs")->capture_default_str();
  cmd.snp->add_option("--vcpu-type", s.vcpu_type, "QEMU -cpu model")->capture_default_str();
  cmd.snp->add_option("--guest-features", s.guest_features, "VMSA SEV_FEATURES (hex)")
      ->capture_default_str();
  cmd.snp->add_option("--vmm-type", s.vmm_type, "QEMU or ec2")->capture_default_str();

  TdxMeasureFlags& t = cmd.tdx_flags;
  cmd.tdx = cmd.measure->add_subcommand(
      "tdx", "TDX MRTD from a TDVF image, and RTMR1/RTMR2 of a QEMU direct boot");
  cmd.tdx->add_flag("--json", cmd.json, "print reference values as JSON");
  cmd.tdx->add_option("--firmware,--ovmf", t.firmware, "TDVF firmware image")->required();
  cmd.tdx->add_option("--kernel", t.kernel, "kernel (QEMU -kernel): also compute RTMR1/RTMR2");
  cmd.tdx->add_option("--initrd", t.initrd, "initrd (QEMU -initrd)");
  cmd.tdx->add_option("--append", t.append, "kernel command line (QEMU -append)");
  cmd.tdx->add_option("--memory", t.memory_mib, "guest memory in MiB (QEMU -m; places the initrd)")
      ->capture_default_str();
  cmd.tdx
      ->add_option("--page-order", t.page_order,
                   "single-pass (upstream KVM) or two-pass (older TDX KVM trees)")
      ->capture_default_str();
}

int RunMeasure(const MeasureCommand& cmd) {
  const bool snp = cmd.snp->parsed();
  absl::StatusOr<nlohmann::json> doc = snp ? MeasureSnp(cmd.snp_flags) : MeasureTdx(cmd.tdx_flags);
  if (!doc.ok()) {
    std::cerr << "cloak measure " << (snp ? "snp" : "tdx") << ": " << doc.status().message()
              << "\n";
    return 1;
  }
  if (cmd.json) {
    std::cout << doc->dump(2) << "\n";
  } else if (snp) {
    std::cout << (*doc)["reference_values"]["measurement"][0].get<std::string>() << "\n";
  } else {
    for (const auto& [name, values] : (*doc)["reference_values"].items()) {
      std::cout << name << " " << values[0].get<std::string>() << "\n";
    }
  }
  return 0;
}

}  // namespace cloak::cli
