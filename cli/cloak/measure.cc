#include "cli/cloak/measure.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
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
#include "shim/hypervisor/guest_cmdline.h"

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

absl::Status NoFirmware(const config::Config& c, absl::string_view what) {
  return absl::FailedPreconditionError(absl::StrCat(
      "the runtime class (tee.type = \"", config::TeeTypeName(c.tee.type),
      "\") has no hypervisor.firmware: ", what,
      "; set hypervisor.firmware to that file on the node and run `cloak measure` there"));
}

}  // namespace

absl::StatusOr<SnpMeasureFlags> SnpFlagsForClass(const config::Config& c,
                                                 bool host_has_vhost_vsock) {
  if (c.tee.type == config::TeeType::kTdx) {
    return absl::FailedPreconditionError(
        "the runtime class is a TDX class (tee.type = \"tdx\"): use `cloak measure tdx --config`");
  }
  SnpMeasureFlags f;
  if (c.hypervisor.firmware.empty()) {
    if (c.tee.type == config::TeeType::kSnp) {
      return NoFirmware(c, "SNP direct boot measures OVMF's AmdSev build, which Debian 12 does "
                           "not ship");
    }
    f.dev_firmware = true;  // what the simulated SP measures (docs/simulated-snp.md)
  } else {
    f.ovmf = c.hypervisor.firmware;
  }
  f.kernel = c.hypervisor.kernel;
  f.initrd = c.hypervisor.initrd;
  f.append = shim::hypervisor::GuestKernelCmdline(
      c, shim::hypervisor::ClassAgentChannel(c.agent.channel, host_has_vhost_vsock));
  f.vcpus = static_cast<uint32_t>(c.hypervisor.vcpus);
  return f;
}

absl::StatusOr<TdxMeasureFlags> TdxFlagsForClass(const config::Config& c,
                                                 bool host_has_vhost_vsock) {
  if (c.tee.type != config::TeeType::kTdx) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the runtime class is not a TDX class (tee.type = \"", config::TeeTypeName(c.tee.type),
        "\"): use `cloak measure snp --config`"));
  }
  if (c.hypervisor.firmware.empty()) return NoFirmware(c, "MRTD is measured over a TDVF image");
  TdxMeasureFlags f;
  f.firmware = c.hypervisor.firmware;
  f.kernel = c.hypervisor.kernel;
  f.initrd = c.hypervisor.initrd;
  f.append = shim::hypervisor::GuestKernelCmdline(
      c, shim::hypervisor::ClassAgentChannel(c.agent.channel, host_has_vhost_vsock));
  f.memory_mib = static_cast<uint64_t>(c.hypervisor.memory_mib);
  return f;
}

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
  cmd.snp->add_option("--config", s.config,
                      "a runtime class's config file: measure its default launch (firmware, "
                      "kernel, initrd, command line, vCPUs) from it alone");
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
  cmd.tdx->add_option("--config", t.config,
                      "a runtime class's config file: measure its default launch from it alone");
  cmd.tdx->add_option("--firmware,--ovmf", t.firmware, "TDVF firmware image");
  cmd.tdx->add_option("--kernel", t.kernel, "kernel (QEMU -kernel): also compute RTMR1/RTMR2");
  cmd.tdx->add_option("--initrd", t.initrd, "initrd (QEMU -initrd)");
  cmd.tdx->add_option("--append", t.append, "kernel command line (QEMU -append)");
  cmd.tdx->add_option("--memory", t.memory_mib, "guest memory in MiB (QEMU -m; places the initrd)")
      ->capture_default_str();
  cmd.tdx
      ->add_option("--page-order", t.page_order,
                   "single-pass (upstream KVM) or two-pass (older TDX KVM trees)")
      ->capture_default_str();

  ReferenceValuesInputs& r = cmd.classes_flags;
  cmd.classes = cmd.measure->add_subcommand(
      "classes", "reference values of the installer's default runtime classes over a guest image "
                 "(the build's reference-values.json)");
  cmd.classes->add_option("--image-dir", r.image_dir, "directory holding vmlinuz and initrd.img")
      ->required();
  cmd.classes->add_option("--snp-firmware", r.snp_firmware, "OVMF AmdSev build for cloak-snp");
  cmd.classes->add_option("--tdx-firmware", r.tdx_firmware, "TDVF for cloak-tdx");
  cmd.classes->add_option("--out", cmd.classes_out, "write here instead of stdout");
}

absl::StatusOr<nlohmann::json> BuildReferenceValues(const ReferenceValuesInputs& in) {
  const std::string kernel = absl::StrCat(in.image_dir, "/vmlinuz");
  const std::string initrd = absl::StrCat(in.image_dir, "/initrd.img");
  ASSIGN_OR_RETURN(std::string kernel_bytes, Slurp(kernel, "kernel"));
  ASSIGN_OR_RETURN(std::string initrd_bytes, Slurp(initrd, "initrd"));
  nlohmann::json out = {
      {"schema", 1},
      {"guest_image",
       {{"vmlinuz_sha256", tee::HexEncode(tee::Sha256(kernel_bytes))},
        {"initrd_sha256", tee::HexEncode(tee::Sha256(initrd_bytes))}}},
      {"about",
       "Launch reference values of the installer's default runtime classes (docs/measurement.md). "
       "Import one class into a key-release policy with `cloak-kbs admin import-reference-values "
       "--class <name>`."},
      {"classes", nlohmann::json::object()}};
  struct Class {
    const char* name;
    config::TeeType tee;
    std::optional<std::string> firmware;
    const char* firmware_what;
  };
  const Class classes[] = {
      {"cloak-dev", config::TeeType::kNone, std::nullopt, ""},
      {"cloak-snp", config::TeeType::kSnp, in.snp_firmware,
       "the OVMF AmdSev build (Debian 12 ships none; cloak-deploy.sh --snp-firmware)"},
      {"cloak-tdx", config::TeeType::kTdx, in.tdx_firmware,
       "the TDVF image (cloak-deploy.sh --tdx-firmware)"},
  };
  for (const Class& k : classes) {
    config::Config c = config::DefaultConfig();
    c.tee.type = k.tee;
    c.hypervisor.kernel = kernel;
    c.hypervisor.initrd = initrd;
    const bool snp_like = k.tee != config::TeeType::kTdx;
    const std::string sub = snp_like ? "snp" : "tdx";
    if (k.tee != config::TeeType::kNone) {
      if (!k.firmware.has_value() || ::access(k.firmware->c_str(), R_OK) != 0) {
        out["classes"][k.name] = {
            {"tee", sub},
            {"missing",
             absl::StrCat("hypervisor.firmware: ", k.firmware_what,
                          k.firmware.has_value() ? absl::StrCat(" (", *k.firmware, " not found)")
                                                 : std::string(" (not on the build machine)"))},
            {"compute_on_node",
             absl::StrCat("cloak measure ", sub, " --config <the shim config of ", k.name,
                          "> --json > ", k.name, "-rv.json && cloak-kbs admin "
                          "import-reference-values --state-dir <dir> <repo/type/tag> --file ",
                          k.name, "-rv.json")}};
        continue;
      }
      c.hypervisor.firmware = *k.firmware;
    }
    nlohmann::json entry;
    nlohmann::json variants = nlohmann::json::array();
    // agent.channel "auto": the value depends on the node's vhost-vsock.
    for (bool vhost_vsock : {false, true}) {
      nlohmann::json doc;
      if (snp_like) {
        ASSIGN_OR_RETURN(SnpMeasureFlags f, SnpFlagsForClass(c, vhost_vsock));
        ASSIGN_OR_RETURN(doc, MeasureSnp(f));
      } else {
        ASSIGN_OR_RETURN(TdxMeasureFlags f, TdxFlagsForClass(c, vhost_vsock));
        ASSIGN_OR_RETURN(doc, MeasureTdx(f));
      }
      if (entry.is_null()) {
        entry = {{"tee", sub},
                 {"reference_values", nlohmann::json::object()},
                 {"inputs", doc["inputs"]}};
        entry["inputs"].erase("append");
        entry["inputs"]["tee_type"] = std::string(config::TeeTypeName(k.tee));
        entry["inputs"]["agent_channel"] = "auto (one value per channel, see variants)";
      }
      for (const auto& [key, list] : doc["reference_values"].items()) {
        nlohmann::json& target = entry["reference_values"][key];
        if (target.is_null()) target = nlohmann::json::array();
        for (const auto& v : list) {
          if (std::find(target.begin(), target.end(), v) == target.end()) target.push_back(v);
        }
      }
      variants.push_back({{"agent_channel", vhost_vsock ? "vsock" : "serial"},
                          {"append", doc["inputs"]["append"]},
                          {"reference_values", doc["reference_values"]}});
    }
    entry["variants"] = variants;
    if (k.tee == config::TeeType::kNone) {
      entry["simulated"] = true;
      entry["about"] =
          "the simulated SP's MEASUREMENT for this class (tee.simulated_snp_chain, synthetic "
          "firmware descriptor): dev only, never for a production policy";
    }
    out["classes"][k.name] = entry;
  }
  return out;
}

namespace {

// --config: the class's inputs replace the input flags, which may not be
// given with it (but --vcpus may: a pod may override hypervisor.vcpus).
absl::StatusOr<nlohmann::json> MeasureClass(const MeasureCommand& cmd, bool snp) {
  const std::string path = snp ? *cmd.snp_flags.config : *cmd.tdx_flags.config;
  CLI::App* sub = snp ? cmd.snp : cmd.tdx;
  for (const char* flag : {"--ovmf", "--firmware", "--dev-firmware", "--kernel", "--initrd",
                           "--append", "--memory"}) {
    if (sub->get_option_no_throw(flag) != nullptr && sub->count(flag) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " cannot be given with --config (the class config names it)"));
    }
  }
  ASSIGN_OR_RETURN(config::Config c, config::LoadConfig(path));
  const bool vhost_vsock = ::access("/dev/vhost-vsock", F_OK) == 0;
  nlohmann::json doc;
  if (snp) {
    ASSIGN_OR_RETURN(SnpMeasureFlags f, SnpFlagsForClass(c, vhost_vsock));
    f.vcpu_type = cmd.snp_flags.vcpu_type;
    f.guest_features = cmd.snp_flags.guest_features;
    f.vmm_type = cmd.snp_flags.vmm_type;
    if (sub->count("--vcpus") > 0) f.vcpus = cmd.snp_flags.vcpus;
    ASSIGN_OR_RETURN(doc, MeasureSnp(f));
  } else {
    ASSIGN_OR_RETURN(TdxMeasureFlags f, TdxFlagsForClass(c, vhost_vsock));
    f.page_order = cmd.tdx_flags.page_order;
    ASSIGN_OR_RETURN(doc, MeasureTdx(f));
  }
  doc["inputs"]["runtime_class_config"] = path;
  doc["inputs"]["tee_type"] = std::string(config::TeeTypeName(c.tee.type));
  return doc;
}

}  // namespace

int RunMeasure(const MeasureCommand& cmd) {
  if (cmd.classes != nullptr && cmd.classes->parsed()) {
    absl::StatusOr<nlohmann::json> doc = BuildReferenceValues(cmd.classes_flags);
    if (!doc.ok()) {
      std::cerr << "cloak measure classes: " << doc.status().message() << "\n";
      return 1;
    }
    const std::string text = doc->dump(2) + "\n";
    if (cmd.classes_out.empty()) {
      std::cout << text;
      return 0;
    }
    const std::string tmp = cmd.classes_out + ".tmp";
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out || std::rename(tmp.c_str(), cmd.classes_out.c_str()) != 0) {
      std::cerr << "cloak measure classes: cannot write " << cmd.classes_out << "\n";
      return 1;
    }
    return 0;
  }
  const bool snp = cmd.snp->parsed();
  const bool by_class = snp ? cmd.snp_flags.config.has_value() : cmd.tdx_flags.config.has_value();
  absl::StatusOr<nlohmann::json> doc =
      by_class ? MeasureClass(cmd, snp)
      : snp    ? MeasureSnp(cmd.snp_flags)
      : cmd.tdx_flags.firmware.empty()
          ? absl::StatusOr<nlohmann::json>(absl::InvalidArgumentError(
                "give the TDVF firmware with --firmware, or a runtime class with --config"))
          : MeasureTdx(cmd.tdx_flags);
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
