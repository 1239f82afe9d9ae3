#include "kbs/cli.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "kbs/server.h"
#include "kbs/store.h"

namespace cloak::kbs {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "cloak-kbs: %s\n", std::string(status.message()).c_str());
  return 1;
}

absl::StatusOr<absl::Duration> ParseTtl(const std::string& text, absl::string_view flag) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " \"", text, "\" is not a positive duration such as 60s or 5m"));
  }
  return d;
}

absl::Status WritePortFile(const std::string& path, int port) {
  return WriteFileAtomic(path, absl::StrCat(port, "\n"), 0644);
}

struct ServeFlags {
  std::string state_dir;
  std::string listen = "127.0.0.1:8080";
  std::string tls_cert, tls_key;
  bool insecure_http = false;
  std::string snp_certs_dir;
  std::string snp_min_tcb;
  std::string tdx_root_ca;
  std::string tdx_collateral_dir;
  bool tdx_allow_unverified = false;
  bool allow_unpinned_root = false;
  std::string nonce_ttl = "30s";
  std::string token_ttl = "5m";
  size_t max_pending_sessions = kMaxPendingSessions;
  double auth_rate = kDefaultAuthRate;
  double auth_burst = kDefaultAuthBurst;
  std::string port_file;
  std::string log_level = "info";
};

int RunServe(const ServeFlags& flags) {
  absl::Status logging = InitLogging({.level = flags.log_level, .file = "", .component = "cloak-kbs"});
  if (!logging.ok()) return Fail(logging);
  KbsConfig config;
  config.state_dir = flags.state_dir;
  size_t colon = flags.listen.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(flags.listen.substr(colon + 1), &config.port)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--listen \"", flags.listen, "\" must be HOST:PORT (PORT 0: any free port)")));
  }
  config.listen_host = flags.listen.substr(0, colon);
  if (config.listen_host.size() > 2 && config.listen_host.front() == '[') {
    config.listen_host = config.listen_host.substr(1, config.listen_host.size() - 2);
  }
  config.tls_cert = flags.tls_cert;
  config.tls_key = flags.tls_key;
  config.insecure_http = flags.insecure_http;
  config.verifier.snp_certs_dir = flags.snp_certs_dir;
  config.verifier.tdx_root_ca_file = flags.tdx_root_ca;
  config.verifier.tdx_collateral_dir = flags.tdx_collateral_dir;
  config.verifier.tdx_allow_unverified = flags.tdx_allow_unverified;
  config.verifier.allow_unpinned_root = flags.allow_unpinned_root;
  if (!flags.snp_min_tcb.empty()) {
    auto tcb = ParseSnpTcb(flags.snp_min_tcb);
    if (!tcb.ok()) return Fail(tcb.status());
    config.verifier.snp_min_tcb = *tcb;
  }
  auto nonce_ttl = ParseTtl(flags.nonce_ttl, "--nonce-ttl");
  auto token_ttl = ParseTtl(flags.token_ttl, "--token-ttl");
  if (!nonce_ttl.ok()) return Fail(nonce_ttl.status());
  if (!token_ttl.ok()) return Fail(token_ttl.status());
  config.nonce_ttl = *nonce_ttl;
  config.token_ttl = *token_ttl;
  if (flags.max_pending_sessions == 0 || flags.auth_rate < 0 || flags.auth_burst < 1) {
    return Fail(absl::InvalidArgumentError(
        "--max-pending-sessions must be at least 1, --auth-rate at least 0 (0: no limit) and "
        "--auth-burst at least 1"));
  }
  config.max_pending_sessions = flags.max_pending_sessions;
  config.auth_rate = flags.auth_rate;
  config.auth_burst = flags.auth_burst;
  if (config.verifier.allow_unpinned_root) {
    Logger("kbs")->warn(
        "--allow-unpinned-root: evidence chaining to a root other than AMD's "
        "pinned ARKs or Intel's SGX Root CA is accepted; claims name the root");
  }
  if (config.verifier.tdx_allow_unverified) {
    Logger("kbs")->warn("--tdx-allow-unverified: TDX quotes are accepted without a signature "
                        "check (development only)");
  }

  // Signals are handled by one thread that stops the server.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = KbsServer::Create(config);
  if (!server.ok()) return Fail(server.status());
  if (!flags.port_file.empty()) {
    absl::Status written = WritePortFile(flags.port_file, (*server)->port());
    if (!written.ok()) return Fail(written);
  }
  KbsServer* raw = server->get();
  std::thread([raw, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    Logger("kbs")->info("signal {}: stopping", sig);
    raw->Stop();
  }).detach();
  absl::Status served = raw->Serve();
  if (!served.ok()) return Fail(served);
  Logger("kbs")->info("stopped");
  return 0;
}

int RunAdmin(const std::string& command, const std::string& state_dir, const std::string& target,
             const std::string& file, const std::string& only_class) {
  auto store = ResourceStore::Open(state_dir);
  if (!store.ok()) return Fail(store.status());
  if (command == "show-policy") {
    auto path = ParseResourcePath(target);
    if (!path.ok()) return Fail(path.status());
    auto policy = store->GetPolicy(*path);
    if (!policy.ok()) return Fail(policy.status());
    std::printf("%s\n", policy->ToJson().dump(2).c_str());
    return 0;
  }
  std::string data;
  if (file == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    data = ss.str();
  } else {
    auto read = ReadFile(file);
    if (!read.ok()) return Fail(read.status());
    data = *std::move(read);
  }
  if (command == "put-resource") {
    auto path = ParseResourcePath(target);
    if (!path.ok()) return Fail(path.status());
    absl::Status put = store->PutResource(*path, data);
    if (!put.ok()) return Fail(put);
    std::printf("stored resource %s (%zu bytes)\n", path->ToString().c_str(), data.size());
    return 0;
  }
  if (command == "import-reference-values") {
    nlohmann::json doc = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(file, ": not valid JSON")));
    }
    std::optional<ResourcePath> path;
    if (target != "default") {
      auto parsed = ParseResourcePath(target);
      if (!parsed.ok()) return Fail(parsed.status());
      path = *parsed;
    }
    // The policy in force for the target, if it has its own (or the default).
    std::optional<ResourcePolicy> current;
    auto existing = store->GetPolicy(path.value_or(ResourcePath{"-", "-", "-"}));
    if (existing.ok()) {
      current = *std::move(existing);
    } else if (!absl::IsNotFound(existing.status())) {
      return Fail(existing.status());
    }
    auto merged = MergeReferenceValues(current ? &*current : nullptr, doc, only_class);
    if (!merged.ok()) return Fail(merged.status());
    absl::Status set = store->SetPolicy(path ? &*path : nullptr, merged->ToJson().dump());
    if (!set.ok()) return Fail(set);
    std::printf("imported reference values into the key-release policy of %s:\n%s\n",
                target.c_str(), merged->ToJson().dump(2).c_str());
    return 0;
  }
  // set-policy
  if (target == "default") {
    absl::Status set = store->SetPolicy(nullptr, data);
    if (!set.ok()) return Fail(set);
    std::printf("set the default key-release policy\n");
    return 0;
  }
  auto path = ParseResourcePath(target);
  if (!path.ok()) return Fail(path.status());
  absl::Status set = store->SetPolicy(&*path, data);
  if (!set.ok()) return Fail(set);
  std::printf("set the key-release policy of %s\n", path->ToString().c_str());
  return 0;
}

}  // namespace

absl::StatusOr<SnpTcb> ParseSnpTcb(absl::string_view text) {
  SnpTcb tcb;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(part, '=');
    uint32_t v = 0;
    if (!absl::SimpleAtoi(kv.second, &v) || v > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("SNP TCB \"", text, "\": \"", part, "\" wants name=0..255"));
    }
    auto byte = static_cast<uint8_t>(v);
    if (kv.first == "bl" || kv.first == "bootloader") {
      tcb.bootloader = byte;
    } else if (kv.first == "tee") {
      tcb.tee = byte;
    } else if (kv.first == "snp") {
      tcb.snp = byte;
    } else if (kv.first == "ucode" || kv.first == "microcode") {
      tcb.microcode = byte;
    } else if (kv.first == "fmc") {
      tcb.fmc = byte;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "SNP TCB \"", text, "\": unknown component \"", kv.first, "\" (bl, tee, snp, ucode, fmc)"));
    }
  }
  return tcb;
}

int RunKbsCli(int argc, char** argv) {
  CLI::App app{"cloak-kbs: key broker speaking the Trustee KBS protocol 0.4.0 (docs/kbs.md)"};
  app.set_version_flag("--version", std::string(::cloak::VersionString()));
  app.require_subcommand(1);

  ServeFlags serve;
  CLI::App* serve_cmd = app.add_subcommand("serve", "Serve the KBS protocol");
  serve_cmd->add_option("--state-dir", serve.state_dir, "Resources, policies, token key")
      ->required();
  serve_cmd->add_option("--listen", serve.listen, "HOST:PORT (PORT 0: any free port)")
      ->capture_default_str();
  serve_cmd->add_option("--tls-cert", serve.tls_cert, "TLS certificate chain (PEM)");
  serve_cmd->add_option("--tls-key", serve.tls_key, "TLS private key (PEM)");
  serve_cmd->add_flag("--insecure-http", serve.insecure_http,
                      "Serve plain HTTP (loopback addresses only; tests)");
  serve_cmd->add_option("--snp-certs-dir", serve.snp_certs_dir,
                        "AMD <product>_ark.pem/<product>_ask.pem (+ vcek/ cache)");
  serve_cmd->add_option("--snp-min-tcb", serve.snp_min_tcb,
                        "Minimum SNP REPORTED_TCB, e.g. bl=3,tee=0,snp=8,ucode=115");
  serve_cmd->add_option("--tdx-root-ca", serve.tdx_root_ca,
                        "Intel SGX Root CA certificate for TDX quote chains");
  serve_cmd->add_option("--tdx-collateral-dir", serve.tdx_collateral_dir,
                        "Intel PCS collateral for TDX TCB status: tcb_info.json, "
                        "qe_identity.json, tcb_signing_chain.pem, root_ca_crl.{pem,der}, "
                        "pck_crl.{pem,der} (read at start)");
  serve_cmd->add_flag("--tdx-allow-unverified", serve.tdx_allow_unverified,
                      "Accept TDX quotes without a signature check (development only)");
  serve_cmd->add_flag("--allow-unpinned-root", serve.allow_unpinned_root,
                      "Trust an ARK / Intel root that is not the vendor's pinned one (claims "
                      "name it)");
  serve_cmd->add_option("--nonce-ttl", serve.nonce_ttl,
                        "Nonce lifetime, also how long a session that has not attested is kept")
      ->capture_default_str();
  serve_cmd->add_option("--max-pending-sessions", serve.max_pending_sessions,
                        "Sessions kept that have not attested; past it the oldest is forgotten")
      ->capture_default_str();
  serve_cmd->add_option("--auth-rate", serve.auth_rate,
                        "POST /kbs/v0/auth per second per client address (0: no limit)")
      ->capture_default_str();
  serve_cmd->add_option("--auth-burst", serve.auth_burst,
                        "POST /kbs/v0/auth at once per client address")
      ->capture_default_str();
  serve_cmd->add_option("--token-ttl", serve.token_ttl, "Attestation token lifetime")
      ->capture_default_str();
  serve_cmd->add_option("--port-file", serve.port_file, "Write the bound port here");
  serve_cmd->add_option("--log-level", serve.log_level, "trace|debug|info|warn|error")
      ->capture_default_str();

  CLI::App* admin = app.add_subcommand("admin", "Manage resources and policies in a state dir");
  admin->require_subcommand(1);
  std::string state_dir, target, file, only_class;
  std::string command;
  for (const char* name :
       {"put-resource", "set-policy", "show-policy", "import-reference-values"}) {
    const std::string n = name;
    const char* help =
        n == "put-resource" ? "Store a resource: put-resource <repo/type/tag> --file F"
        : n == "set-policy"
            ? "Set a key-release policy: set-policy <repo/type/tag|default> --file F"
        : n == "import-reference-values"
            ? "Add `cloak measure --json` / the guest-image build's reference values to a "
              "policy: import-reference-values <repo/type/tag|default> --file F"
            : "Print the policy in force for <repo/type/tag>";
    CLI::App* sub = admin->add_subcommand(name, help);
    sub->add_option("--state-dir", state_dir, "KBS state directory")->required();
    sub->add_option("target", target, "repo/type/tag (or default for set-policy)")->required();
    if (std::string(name) != "show-policy") {
      sub->add_option("--file", file, "Input file (- for stdin)")->required();
    }
    if (n == "import-reference-values") {
      sub->add_option("--class", only_class,
                      "Import only this runtime class of a reference-values.json "
                      "(a simulated dev class also sets allow_simulated)");
    }
    sub->callback([&command, name] { command = name; });
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (serve_cmd->parsed()) return RunServe(serve);
  return RunAdmin(command, state_dir, target, file, only_class);
}

}  // namespace cloak::kbs
