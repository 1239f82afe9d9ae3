#include "shim/simsp/cli.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "shim/simsp/chain.h"
#include "shim/simsp/crypto.h"
#include "shim/simsp/measurement.h"
#include "common/tee/sp_protocol.h"
#include "shim/simsp/server.h"
#include "common/status_macros.h"

namespace cloak::simsp {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "cloak-simsp: %s\n", std::string(status.message()).c_str());
  return 1;
}

absl::StatusOr<std::string> HexOfSize(const std::string& hex, size_t size, const char* flag) {
  auto raw = tee::HexDecode(hex);
  if (!raw.ok() || raw->size() != size) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " must be ", size, " bytes as ", 2 * size, " hex digits"));
  }
  return *raw;
}

struct InitFlags {
  std::string dir;
  std::string product = "Milan";
  int rsa_bits = 4096;
  bool force = false;
};

int RunInitChain(const InitFlags& flags) {
  DevChainOptions options;
  auto product = tee::ParseSnpProduct(flags.product);
  if (!product.ok()) return Fail(product.status());
  options.product = *product;
  options.rsa_bits = flags.rsa_bits;
  options.overwrite = flags.force;
  auto chain = GenerateDevChain(flags.dir, options);
  if (!chain.ok()) return Fail(chain.status());
  std::cout << "Cloak TEST SEV-SNP chain (NOT AMD; never configure it in a production KBS)\n"
            << "product:  " << ProductName(chain->product) << "\n"
            << "chip id:  " << tee::HexEncode(chain->chip_id) << "\n"
            << "tcb:      bl=" << int{chain->tcb.bootloader} << " tee=" << int{chain->tcb.tee}
            << " snp=" << int{chain->tcb.snp} << " ucode=" << int{chain->tcb.microcode} << "\n"
            << "ark:      " << chain->ark_path << "\n"
            << "ask:      " << chain->ask_path << "\n"
            << "vcek:     " << chain->vcek_path << "\n"
            << "vcek key: " << chain->vcek_key_path << "\n"
            << "KBS:      cloak-kbs serve --snp-certs-dir " << flags.dir << " ...\n";
  return 0;
}

absl::StatusOr<std::string> Measure(const std::string& manifest, const std::string& cmdline,
                                    uint32_t vcpus, const std::string& ovmf) {
  ASSIGN_OR_RETURN(ImageDigests image, ReadManifest(manifest));
  std::string firmware;
  if (!ovmf.empty()) {
    ASSIGN_OR_RETURN(firmware, ReadFile(ovmf));
  }
  return MeasurementFromManifest(image, cmdline, vcpus, firmware);
}

struct ServeFlags {
  std::string dir;
  std::string socket;
  std::string manifest;
  std::string cmdline;
  uint32_t vcpus = 1;
  std::string ovmf;
  std::string measurement_hex;
  std::string host_data_hex;
  std::string policy = "0x30000";
  bool no_vcek = false;
  std::string log_level = "info";
};

int RunServe(const ServeFlags& flags) {
  absl::Status logging =
      InitLogging({.level = flags.log_level, .file = "", .component = "cloak-simsp"});
  if (!logging.ok()) return Fail(logging);
  SimulatedSpOptions options;
  if (!flags.measurement_hex.empty()) {
    auto m = HexOfSize(flags.measurement_hex, 48, "--measurement-hex");
    if (!m.ok()) return Fail(m.status());
    options.measurement = *m;
  } else if (!flags.manifest.empty()) {
    auto m = Measure(flags.manifest, flags.cmdline, flags.vcpus, flags.ovmf);
    if (!m.ok()) return Fail(m.status());
    options.measurement = *m;
  } else {
    return Fail(absl::InvalidArgumentError("serve needs --manifest or --measurement-hex"));
  }
  if (!flags.host_data_hex.empty()) {
    auto h = HexOfSize(flags.host_data_hex, 32, "--host-data-hex");
    if (!h.ok()) return Fail(h.status());
    options.host_data = *h;
  }
  uint64_t policy = 0;
  if (!absl::SimpleHexAtoi(flags.policy, &policy)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--policy \"", flags.policy, "\" is not a hex number such as 0x30000")));
  }
  options.policy = policy;
  options.include_vcek = !flags.no_vcek;
  auto chain = LoadDevChain(flags.dir);
  if (!chain.ok()) return Fail(chain.status());
  auto sp = SimulatedSp::Create(*std::move(chain), options);
  if (!sp.ok()) return Fail(sp.status());
  absl::Status listen = (*sp)->Listen(flags.socket);
  if (!listen.ok()) return Fail(listen);

  // SIGINT/SIGTERM: a thread waits for them and stops the server.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  SimulatedSp* raw = sp->get();
  std::thread([raw, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    Logger("simsp")->info("signal {}: stopping", sig);
    raw->Stop();
  }).detach();

  Logger("simsp")->info(
      "measurement={} host_data={} policy=0x{:x}", tee::HexEncode(options.measurement),
      options.host_data.empty() ? std::string(64, '0') : tee::HexEncode(options.host_data),
      options.policy);
  absl::Status served = (*sp)->ServeUnixSocket(flags.socket);
  if (!served.ok()) return Fail(served);
  return 0;
}

struct RequestFlags {
  std::string socket;
  std::string report_data_hex;
  std::string out;
  std::string vcek_out;
};

int RunRequest(const RequestFlags& flags) {
  std::string report_data(64, '\0');
  if (!flags.report_data_hex.empty()) {
    auto rd = tee::HexDecode(flags.report_data_hex);
    if (!rd.ok() || rd->size() > 64) {
      return Fail(absl::InvalidArgumentError("--report-data-hex: at most 64 bytes of hex"));
    }
    report_data.replace(0, rd->size(), *rd);
  }
  auto response = RequestReportFromSocket(flags.socket, report_data);
  if (!response.ok()) return Fail(response.status());
  absl::Status s = WriteFileAtomic(flags.out, response->report, 0644);
  if (s.ok() && !flags.vcek_out.empty() && !response->vcek_der.empty()) {
    s = WriteFileAtomic(flags.vcek_out, response->vcek_der, 0644);
  }
  if (!s.ok()) return Fail(s);
  std::cout << "report: " << flags.out << " (" << response->report.size() << " bytes)\n";
  return 0;
}

}  // namespace

int RunSimspCli(int argc, char** argv) {
  CLI::App app{
      "cloak-simsp: a simulated SEV-SNP security processor with a TEST chain, NOT AMD "
      "(docs/simulated-snp.md)"};
  app.require_subcommand(1);

  InitFlags init;
  CLI::App* init_cmd = app.add_subcommand("init-chain", "Write a TEST ARK/ASK/VCEK chain to --dir");
  init_cmd->add_option("--dir", init.dir, "Directory (becomes cloak-kbs --snp-certs-dir)")
      ->required();
  init_cmd->add_option("--product", init.product, "Milan, Genoa or Turin")->capture_default_str();
  init_cmd->add_option("--rsa-bits", init.rsa_bits, "ARK/ASK RSA key size")->capture_default_str();
  init_cmd->add_flag("--force", init.force, "Replace a chain already in --dir");

  std::string manifest, cmdline, measure_ovmf;
  uint32_t measure_vcpus = 1;
  CLI::App* measure_cmd =
      app.add_subcommand("measure", "Print the simulated launch measurement (hex) of an image");
  measure_cmd->add_option("--manifest", manifest, "Guest image manifest.json")->required();
  measure_cmd->add_option("--cmdline", cmdline,
                          "Final kernel command line (default: the manifest's)");
  measure_cmd->add_option("--vcpus", measure_vcpus, "vCPUs of the VM")->capture_default_str();
  measure_cmd->add_option("--ovmf", measure_ovmf,
                          "Firmware the VM boots (default: the synthetic descriptor)");

  ServeFlags serve;
  CLI::App* serve_cmd = app.add_subcommand("serve", "Answer report requests on a unix socket");
  serve_cmd->add_option("--dir", serve.dir, "Chain directory from init-chain")->required();
  serve_cmd->add_option("--socket", serve.socket, "Unix socket path")->required();
  serve_cmd->add_option("--manifest", serve.manifest, "Guest image manifest.json");
  serve_cmd->add_option("--cmdline", serve.cmdline,
                        "Final kernel command line (default: the manifest's)");
  serve_cmd->add_option("--vcpus", serve.vcpus, "vCPUs of the VM")->capture_default_str();
  serve_cmd->add_option("--ovmf", serve.ovmf,
                        "Firmware the VM boots (default: the synthetic descriptor)");
  serve_cmd->add_option("--measurement-hex", serve.measurement_hex,
                        "48-byte measurement instead of --manifest");
  serve_cmd->add_option("--host-data-hex", serve.host_data_hex,
                        "32-byte HOST_DATA (the init-data SHA-256); default zeros");
  serve_cmd->add_option("--policy", serve.policy, "Guest policy (hex)")->capture_default_str();
  serve_cmd->add_flag("--no-vcek", serve.no_vcek, "Do not send the VCEK with each report");
  serve_cmd->add_option("--log-level", serve.log_level, "trace|debug|info|warn|error")
      ->capture_default_str();

  RequestFlags request;
  CLI::App* request_cmd =
      app.add_subcommand("request", "Ask a serving cloak-simsp for one report (manual tests)");
  request_cmd->add_option("--socket", request.socket, "Unix socket path")->required();
  request_cmd->add_option("--report-data-hex", request.report_data_hex,
                          "Up to 64 bytes, zero-padded");
  request_cmd->add_option("--out", request.out, "Where to write the 1184-byte report")
      ->required();
  request_cmd->add_option("--vcek-out", request.vcek_out, "Where to write the VCEK (DER)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (init_cmd->parsed()) return RunInitChain(init);
  if (measure_cmd->parsed()) {
    auto m = Measure(manifest, cmdline, measure_vcpus, measure_ovmf);
    if (!m.ok()) return Fail(m.status());
    std::cout << tee::HexEncode(*m) << "\n";
    return 0;
  }
  if (serve_cmd->parsed()) return RunServe(serve);
  return RunRequest(request);
}

}  // namespace cloak::simsp
