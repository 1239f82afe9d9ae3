#include "cli/cloak/cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <optional>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/cloak/containerd_config.h"
#include "cli/cloak/host_check.h"
#include "cli/cloak/kbs_bench.h"
#include "cli/cloak/measure.h"
#include "cli/cloak/policy_cmd.h"
#include "cli/cloak/pull_cmd.h"
#include "common/fd.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "common/files.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "common/tee/digest.h"
#include "common/tee/encoding.h"
#include "common/tee/initdata.h"
#include "common/tee/snp_report.h"
#include "common/tee/tdx_quote.h"
#include "nlohmann/json.hpp"

namespace cloak::cli {
namespace {

constexpr absl::Duration kVersionTimeout = absl::Seconds(10);

int Fail(absl::string_view command, const absl::Status& s) {
  std::cerr << "cloak " << command << ": " << s.message() << "\n";
  return 1;
}

// The file's text, or nullopt when it does not exist.
absl::StatusOr<std::optional<std::string>> ReadOptionalFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (text.ok()) return std::optional<std::string>(*std::move(text));
  if (text.status().code() == absl::StatusCode::kNotFound) return std::optional<std::string>();
  return text.status();
}

int RunCheck(const CheckOptions& options, bool json) {
  const CheckReport report = Evaluate(ProbeHostFacts(options));
  if (json) {
    std::cout << ReportToJson(report).dump(2) << "\n";
  } else {
    std::cout << ReportToText(report);
  }
  return report.AnyUsable() ? 0 : 1;
}

struct ContainerdConfigFlags {
  std::string config;
  std::string handlers = "cloak-dev,cloak-snp,cloak-tdx";
  std::string shim_config_dir = kDefaultShimConfigDir;
  std::string snapshotter_address = kDefaultSnapshotterAddress;
  bool no_snapshotter = false;
  std::string containerd_version = "auto";
  std::string containerd_path = "containerd";
  bool remove = false;
  bool dry_run = false;
};

absl::Status RunContainerdConfig(const ContainerdConfigFlags& flags) {
  ASSIGN_OR_RETURN(std::optional<std::string> current, ReadOptionalFile(flags.config));
  std::string result;
  if (flags.remove) {
    if (!current.has_value()) {
      std::cerr << "cloak containerd-config: " << flags.config << " does not exist; nothing to remove\n";
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(result, RemoveCloakFromContainerdConfig(*current));
  } else {
    ContainerdConfigOptions options;
    options.handlers.clear();
    for (absl::string_view h : absl::StrSplit(flags.handlers, ',', absl::SkipEmpty())) {
      options.handlers.emplace_back(h);
    }
    options.shim_config_dir = flags.shim_config_dir;
    options.snapshotter_address = flags.no_snapshotter ? "" : flags.snapshotter_address;
    if (flags.containerd_version == "auto") {
      absl::StatusOr<std::string> out =
          RunForOutput({flags.containerd_path, "--version"}, kVersionTimeout);
      if (!out.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot tell containerd's version (", out.status().message(),
            "); pass --containerd-version 1.6, 1.7 or 2.0"));
      }
      ASSIGN_OR_RETURN(options.version, ParseContainerdVersionOutput(*out));
    } else {
      ASSIGN_OR_RETURN(options.version, ParseContainerdVersionFlag(flags.containerd_version));
    }
    absl::StatusOr<std::string> merged =
        AddCloakToContainerdConfig(current.value_or(""), options);
    if (!merged.ok()) {
      return absl::Status(merged.status().code(),
                          absl::StrCat(flags.config, ": ", merged.status().message()));
    }
    result = *std::move(merged);
  }
  if (flags.dry_run) {
    std::cout << result;
    return absl::OkStatus();
  }
  if (current.has_value() && *current == result) {
    std::cerr << "cloak containerd-config: " << flags.config << " is already up to date\n";
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(WriteFileAtomically(flags.config, result));
  std::cerr << "cloak containerd-config: " << (flags.remove ? "removed Cloak from " : "wrote ")
            << flags.config << "; restart containerd to apply it\n";
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, absl::string_view text) {
  mode_t mode = 0644;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 07777;
  return WriteFileAtomic(path, text, mode);
}

absl::StatusOr<nlohmann::json> InitDataSummary(absl::string_view document) {
  ASSIGN_OR_RETURN(tee::InitData doc, tee::ParseInitData(document));
  return nlohmann::json{
      {"algorithm", std::string(tee::HashAlgorithmName(doc.algorithm))},
      {"digest", tee::HexEncode(doc.digest)},
      {"snp_host_data", tee::HexEncode(tee::DigestForField(doc.digest, tee::kSnpHostDataSize))},
      {"tdx_mrconfigid", tee::HexEncode(tee::DigestForField(doc.digest, tee::kTdxMrConfigIdSize))},
      {"annotation", absl::StrCat("io.cloak.initdata=", tee::Base64Encode(document))}};
}

int RunCloakCli(int argc, char** argv) {
  CLI::App app{
      "cloak: check a host for Cloak, configure containerd for it, compute launch measurements, "
      "write and read agent policies, pull an image with the guest's puller, time key broker flows"};
  app.set_version_flag("--version", std::string(VersionString()));
  app.require_subcommand(1);

  CheckOptions check_options;
  bool json = false;
  auto* check = app.add_subcommand(
      "check", "what this host can run: KVM, SEV-SNP, TDX, vhost-vsock, QEMU, libvirt, containerd; a "
               "verdict per RuntimeClass");
  check->add_flag("--json", json, "machine-readable output (what the installer labels nodes from)");
  check->add_option("--root", check_options.root,
                    "read /dev, /sys, /proc and the containerd config under this directory");
  check->add_option("--qemu", check_options.qemu_path, "QEMU binary")->capture_default_str();
  check->add_option("--libvirt-uri", check_options.libvirt_uri,
                    "libvirt daemon of the libvirt driver (hypervisor.libvirt_uri); \"\" skips it")
      ->capture_default_str();
  check->add_option("--containerd", check_options.containerd_path, "containerd binary")
      ->capture_default_str();
  check->add_option("--containerd-config", check_options.containerd_config,
                    "containerd's config file")
      ->capture_default_str();

  ContainerdConfigFlags cc;
  auto* ccmd = app.add_subcommand(
      "containerd-config",
      "add Cloak's runtimes and snapshotter to a containerd config (version 2 or 3), or remove "
      "them");
  ccmd->add_option("--config", cc.config, "the containerd config file to edit")->required();
  ccmd->add_option("--handlers", cc.handlers, "comma-separated runtime handlers")
      ->capture_default_str();
  ccmd->add_option("--shim-config-dir", cc.shim_config_dir,
                   "directory of the shim configs (<handler>.toml)")
      ->capture_default_str();
  auto* address = ccmd->add_option("--snapshotter-address", cc.snapshotter_address,
                                   "cloak-snapshotter's socket")
                      ->capture_default_str();
  ccmd->add_flag("--no-snapshotter", cc.no_snapshotter,
                 "configure no proxy snapshotter (containerd unpacks images itself)")
      ->excludes(address);
  ccmd->add_option("--containerd-version", cc.containerd_version,
                   "auto (ask `containerd --version`), 1.6, 1.7 or 2.0")
      ->capture_default_str();
  ccmd->add_option("--containerd", cc.containerd_path, "containerd binary (for auto)")
      ->capture_default_str();
  ccmd->add_flag("--remove", cc.remove, "take out what an earlier run added");
  ccmd->add_flag("--dry-run", cc.dry_run, "print the result instead of writing the file");

  MeasureCommand measure;
  AddMeasureCommand(app, measure);
  PullCommand pull;
  AddPullCommand(app, pull);
  KbsBenchCommand kbs_bench;
  AddKbsBenchCommand(app, kbs_bench);
  auto* pcmd = app.add_subcommand("policy", "agent policies (docs/policy.md): gen, explain, test");
  pcmd->require_subcommand(1);
  std::vector<std::string> gen_inputs;
  std::string gen_output, gen_annotate, gen_initdata_out;
  InitDataOptions gen_initdata;
  bool gen_insecure = false;
  auto* gen = pcmd->add_subcommand(
      "gen", "a policy from Pod/Deployment/StatefulSet/DaemonSet/Job/CronJob YAML and each "
             "image's config (skopeo inspect --config)");
  gen->add_option("yaml", gen_inputs, "workload YAML files (multi-document; - for stdin)")
      ->required();
  gen->add_option("-o,--output", gen_output, "write the policy here (default: stdout)");
  gen->add_option("--annotate", gen_annotate,
                  "write the YAML back here with io.cloak.initdata (base64 init-data carrying the "
                  "policy) on each pod template (- for stdout)");
  gen->add_option("--initdata", gen_initdata_out,
                  "write the init-data (TOML) carrying the policy here (one workload)");
  gen->add_option("--kbs-url", gen_initdata.kbs_url, "init-data kbs_url");
  gen->add_option("--image-key", gen_initdata.image_keys, "init-data image_keys entry (repeatable)");
  gen->add_flag("--insecure-registry", gen_insecure, "read image configs over plain HTTP");
  SignatureGenOptions gen_signatures;
  gen->add_option("--signature-key", gen_signatures.keys,
                  "SCOPE=PEM_FILE: images of SCOPE (registry, namespace, repository) must carry a "
                  "sigstore signature by this public key (repeatable)");
  gen->add_option("--signature-default", gen_signatures.default_action,
                  "images no scope names: reject (the default with --signature-key) or accept");
  gen->add_option("--accept-unsigned", gen_signatures.accept_unsigned,
                  "IMAGE@sha256:<hex>: this image, pinned by digest, runs without a signature "
                  "(repeatable)");
  std::string explain_path;
  auto* explain = pcmd->add_subcommand("explain", "what a policy allows, in plain words");
  explain->add_option("policy", explain_path, "policy file (JSON or YAML)")->required();
  std::string test_policy, test_request;
  auto* ptest = pcmd->add_subcommand(
      "test", "decide a recorded agent request: exit 0 allowed, 3 denied (the reason printed)");
  ptest->add_option("policy", test_policy, "policy file (JSON or YAML)")->required();
  ptest->add_option("request", test_request,
                    "JSON {\"rpc\", \"request\", \"history\": [{\"rpc\", \"request\", \"response\"}]}")
      ->required();
  std::string initdata_file;
  auto* idcmd = app.add_subcommand(
      "initdata",
      "check an init-data document and print its digest, the SNP HOST_DATA and TDX MRCONFIGID "
      "values a pod launched with it carries, and the pod annotation that passes it");
  idcmd->add_option("file", initdata_file, "the init-data TOML document")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (check->parsed()) return RunCheck(check_options, json);
  if (measure.measure->parsed()) return RunMeasure(measure);
  if (pull.pull->parsed()) return RunPull(pull);
  if (kbs_bench.bench->parsed()) return RunKbsBench(kbs_bench);
  if (gen->parsed()) {
    return RunPolicyGen(gen_inputs, gen_output, gen_annotate, gen_initdata_out, gen_initdata,
                        !gen_insecure, gen_signatures);
  }
  if (explain->parsed()) return RunPolicyExplain(explain_path);
  if (ptest->parsed()) return RunPolicyTest(test_policy, test_request);
  if (idcmd->parsed()) {
    absl::StatusOr<std::string> text = ReadFile(initdata_file, tee::kMaxInitDataBytes + 1);
    absl::StatusOr<nlohmann::json> summary =
        text.ok() ? InitDataSummary(*text) : absl::StatusOr<nlohmann::json>(text.status());
    if (!summary.ok()) return Fail("initdata", summary.status());
    std::cout << summary->dump(2) << "\n";
    return 0;
  }
  if (ccmd->parsed()) {
    absl::Status s = RunContainerdConfig(cc);
    return s.ok() ? 0 : Fail("containerd-config", s);
  }
  return 2;
}

}  // namespace cloak::cli
