#include "shim/hypervisor/host_capabilities.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/fd.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "common/temp_dir.h"

namespace cloak::shim::hypervisor {
namespace {

constexpr absl::Duration kQemuProbeTimeout = absl::Seconds(10);

std::string Under(const std::string& root, absl::string_view path) {
  if (root.empty() || root == "/") return std::string(path);
  return absl::StrCat(root, path);
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// "Y", "y" or "1" (module bool parameters).
bool ReadsYes(const std::string& path) {
  std::ifstream in(path);
  if (!in) return false;
  std::string value;
  in >> value;
  return value == "Y" || value == "y" || value == "1";
}

// Resolves a bare name through PATH; returns "" if not found.
std::string FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return ::access(name.c_str(), X_OK) == 0 ? name : "";
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

absl::StatusOr<std::string> RunQemuForReal(const std::vector<std::string>& argv) {
  return RunForOutput(argv, kQemuProbeTimeout);
}

}  // namespace

std::string QemuVersionString(const QemuVersion& v) {
  return absl::StrCat(v.major, ".", v.minor, ".", v.micro);
}

absl::StatusOr<QemuVersion> ParseQemuVersion(absl::string_view version_output) {
  constexpr absl::string_view kMarker = "version ";
  size_t at = version_output.find(kMarker);
  if (at == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("no \"version\" in QEMU's -version output: \"",
                     version_output.substr(0, 80), "\""));
  }
  absl::string_view rest = version_output.substr(at + kMarker.size());
  size_t end = rest.find_first_not_of("0123456789.");
  absl::string_view number = rest.substr(0, end);
  std::vector<absl::string_view> parts = absl::StrSplit(number, '.', absl::SkipEmpty());
  QemuVersion v;
  int* fields[] = {&v.major, &v.minor, &v.micro};
  if (parts.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read a version number in \"", version_output.substr(0, 80), "\""));
  }
  for (size_t i = 0; i < parts.size() && i < 3; ++i) {
    if (!absl::SimpleAtoi(parts[i], fields[i])) {
      return absl::InvalidArgumentError(absl::StrCat("bad QEMU version \"", number, "\""));
    }
  }
  return v;
}

std::vector<std::string> ParseObjectHelp(absl::string_view help_output) {
  std::vector<std::string> names;
  for (absl::string_view line : absl::StrSplit(help_output, '\n')) {
    absl::string_view name = absl::StripAsciiWhitespace(line);
    if (name.empty() || name.back() == ':' || name.find(' ') != absl::string_view::npos) continue;
    names.emplace_back(name);
  }
  return names;
}

std::string HostCapabilities::Summary() const {
  std::string kvm = !kvm_present ? "absent"
                    : kvm_pvm    ? "kvm_pvm"
                    : kvm_openable ? "yes"
                                   : "not-openable";
  return absl::StrCat("kvm=", kvm, " sev-snp=", sev_snp ? "yes" : "no",
                      " /dev/sev=", sev_device ? "yes" : "no", " tdx=", tdx ? "yes" : "no",
                      " vhost-vsock=", vhost_vsock ? "yes" : "no", " qemu=",
                      qemu.found ? absl::StrCat(qemu.path, " ", QemuVersionString(qemu.version))
                                 : absl::StrCat("missing (", qemu.error, ")"),
                      " sev-snp-guest=", qemu.has_sev_snp_guest ? "yes" : "no",
                      " tdx-guest=", qemu.has_tdx_guest ? "yes" : "no");
}

HostCapabilities ProbeHost(const ProbeOptions& options) {
  auto log = Logger("hypervisor");
  HostCapabilities caps;
  const std::string kvm_dev = Under(options.root, "/dev/kvm");
  caps.kvm_present = Exists(kvm_dev);
  if (caps.kvm_present) {
    UniqueFd fd(::open(kvm_dev.c_str(), O_RDWR | O_CLOEXEC));
    caps.kvm_openable = fd.valid();
    if (!fd.valid()) {
      log->info("{} exists but cannot be opened read-write: {}", kvm_dev, std::strerror(errno));
    }
  }
  caps.kvm_pvm = Exists(Under(options.root, "/sys/module/kvm_pvm"));
  caps.sev_snp = ReadsYes(Under(options.root, "/sys/module/kvm_amd/parameters/sev_snp"));
  caps.sev_device = Exists(Under(options.root, "/dev/sev"));
  caps.tdx = ReadsYes(Under(options.root, "/sys/module/kvm_intel/parameters/tdx"));
  caps.vhost_vsock = Exists(Under(options.root, "/dev/vhost-vsock"));

  QemuInfo& qemu = caps.qemu;
  QemuRunner run = options.run_qemu ? options.run_qemu : QemuRunner(RunQemuForReal);
  if (options.run_qemu) {
    qemu.path = options.qemu_path;
  } else {
    qemu.path = FindExecutable(options.qemu_path);
    if (qemu.path.empty()) {
      qemu.path = options.qemu_path;
      qemu.error = absl::StrCat(options.qemu_path, " not found (PATH=",
                                std::getenv("PATH") ? std::getenv("PATH") : "", ")");
    }
  }
  if (qemu.error.empty()) {
    absl::StatusOr<std::string> version_out = run({qemu.path, "-version"});
    if (!version_out.ok()) {
      qemu.error = std::string(version_out.status().message());
    } else {
      qemu.version_line = std::string(
          absl::StripAsciiWhitespace(version_out->substr(0, version_out->find('\n'))));
      absl::StatusOr<QemuVersion> v = ParseQemuVersion(*version_out);
      if (!v.ok()) {
        qemu.error = std::string(v.status().message());
      } else {
        qemu.found = true;
        qemu.version = *v;
      }
    }
  }
  if (qemu.found) {
    absl::StatusOr<std::string> help = run({qemu.path, "-object", "help"});
    if (!help.ok()) {
      qemu.error = absl::StrCat("-object help: ", help.status().message());
    } else {
      for (const std::string& name : ParseObjectHelp(*help)) {
        if (name == "sev-guest") qemu.has_sev_guest = true;
        if (name == "sev-snp-guest") qemu.has_sev_snp_guest = true;
        if (name == "tdx-guest") qemu.has_tdx_guest = true;
      }
    }
  }
  log->debug("host capabilities: {}", caps.Summary());
  return caps;
}

absl::StatusOr<AccelChoice> ResolveAccel(const VmConfig& config, const HostCapabilities& caps) {
  if (config.tee != TeeType::kNone) {
    const absl::string_view tee = TeeTypeName(config.tee);
    if (config.accel == Accel::kTcg) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tee=", tee, " cannot run with accel=tcg: a confidential guest needs KVM; set accel to "
          "auto or kvm"));
    }
    if (!caps.kvm_present) {
      return absl::FailedPreconditionError(absl::StrCat(
          "tee=", tee, " needs KVM but /dev/kvm does not exist: load kvm_amd or kvm_intel"));
    }
    if (caps.kvm_pvm) {
      return absl::FailedPreconditionError(absl::StrCat(
          "tee=", tee, " needs hardware KVM but KVM here is backed by kvm_pvm (nested, no "
          "VT-x/SVM): run on a bare-metal ", config.tee == TeeType::kSnp ? "SEV-SNP" : "TDX",
          " host or use tee=none"));
    }
    if (!caps.kvm_openable) {
      return absl::FailedPreconditionError(absl::StrCat(
          "tee=", tee, " needs KVM but /dev/kvm cannot be opened read-write: run as root or "
          "join the kvm group"));
    }
    return AccelChoice{Accel::kKvm, absl::StrCat("tee=", tee, " requires KVM")};
  }
  switch (config.accel) {
    case Accel::kTcg:
      return AccelChoice{Accel::kTcg, "accel=tcg as configured"};
    case Accel::kKvm:
      if (!caps.kvm_present) {
        return absl::FailedPreconditionError(
            "accel=kvm but /dev/kvm does not exist: load the kvm module or set accel to auto or "
            "tcg");
      }
      if (!caps.kvm_openable) {
        return absl::FailedPreconditionError(
            "accel=kvm but /dev/kvm cannot be opened read-write: run as root, join the kvm "
            "group, or set accel to auto or tcg");
      }
      if (caps.kvm_pvm) {
        return AccelChoice{Accel::kKvm,
                           "accel=kvm as configured (warning: KVM here is kvm_pvm; only "
                           "PVM-enabled guest kernels boot under it)"};
      }
      return AccelChoice{Accel::kKvm, "accel=kvm as configured"};
    case Accel::kAuto:
      break;
  }
  if (!caps.kvm_present) return AccelChoice{Accel::kTcg, "/dev/kvm does not exist; using TCG"};
  if (caps.kvm_pvm) {
    return AccelChoice{Accel::kTcg,
                       "KVM is backed by kvm_pvm (nested, no VT-x/SVM): stock guest kernels hang "
                       "under it; using TCG"};
  }
  if (!caps.kvm_openable) {
    return AccelChoice{Accel::kTcg, "/dev/kvm cannot be opened read-write; using TCG"};
  }
  return AccelChoice{Accel::kKvm, "/dev/kvm is usable; using KVM"};
}

absl::StatusOr<ChannelChoice> ResolveChannel(const VmConfig& config,
                                             const HostCapabilities& caps) {
  switch (config.agent_channel) {
    case AgentChannel::kSerial:
      return ChannelChoice{AgentChannel::kSerial, "agent_channel=serial as configured"};
    case AgentChannel::kVsock:
      if (!caps.vhost_vsock) {
        return absl::FailedPreconditionError(
            "agent_channel=vsock but /dev/vhost-vsock does not exist: load vhost_vsock "
            "(CONFIG_VHOST_VSOCK) or set agent_channel to auto or serial");
      }
      return ChannelChoice{AgentChannel::kVsock, "agent_channel=vsock as configured"};
    case AgentChannel::kAuto:
      break;
  }
  if (caps.vhost_vsock) {
    return ChannelChoice{AgentChannel::kVsock, "/dev/vhost-vsock exists; using vsock"};
  }
  return ChannelChoice{AgentChannel::kSerial,
                       "/dev/vhost-vsock does not exist; using virtio-serial"};
}

absl::Status CheckTeeSupport(TeeType tee, const HostCapabilities& caps) {
  if (tee == TeeType::kNone) return absl::OkStatus();
  const bool snp = tee == TeeType::kSnp;
  const absl::string_view object = snp ? "sev-snp-guest" : "tdx-guest";
  const QemuVersion min = snp ? kMinQemuForSnp : kMinQemuForTdx;
  std::vector<std::string> missing;
  const bool has_object = snp ? caps.qemu.has_sev_snp_guest : caps.qemu.has_tdx_guest;
  if (!caps.qemu.found) {
    missing.push_back(absl::StrCat("QEMU ≥ ", min.major, ".", min.minor, " with the ", object,
                                   " object; ", caps.qemu.error));
  } else if (caps.qemu.version < min || !has_object) {
    std::string what =
        absl::StrCat("QEMU ≥ ", min.major, ".", min.minor, " with the ", object, " object; ",
                     caps.qemu.path, " is ", QemuVersionString(caps.qemu.version));
    if (!(caps.qemu.version < min)) absl::StrAppend(&what, " but lists no ", object, " object");
    missing.push_back(std::move(what));
  }
  if (snp) {
    if (!caps.sev_snp) {
      missing.push_back(
          "a host kernel with SEV-SNP enabled in KVM: /sys/module/kvm_amd/parameters/sev_snp is "
          "not Y");
    }
    if (!caps.sev_device) missing.push_back("the PSP device /dev/sev");
  } else if (!caps.tdx) {
    missing.push_back(
        "a host kernel with TDX enabled in KVM: /sys/module/kvm_intel/parameters/tdx is not Y");
  }
  if (caps.kvm_pvm) {
    missing.push_back("hardware KVM (KVM here is kvm_pvm: nested, no VT-x/SVM)");
  } else if (!caps.kvm_present) {
    missing.push_back("/dev/kvm");
  }
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("tee=", TeeTypeName(tee), " needs ", absl::StrJoin(missing, "; and ")));
}

}  // namespace cloak::shim::hypervisor
