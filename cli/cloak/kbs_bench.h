// `cloak kbs-bench`: a load client of a key broker. Each flow is what a guest
// does at its first encrypted layer (agent/attest/session.cc): a fresh
// KbsClient with a new tee key, auth, attest with the sample attester's
// evidence (bound to an init-data when given), and one resource fetched and
// decrypted. N flows run one after another, or spread over C threads; it
// prints the median and the 99th percentile (docs/performance.md).
#ifndef CLOAK_CLI_CLOAK_KBS_BENCH_H_
#define CLOAK_CLI_CLOAK_KBS_BENCH_H_

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace cloak::cli {

inline constexpr int kMaxKbsBenchConcurrency = 256;

struct KbsBenchFlags {
  std::string url;       // http://127.0.0.1:PORT (loopback) or https://
  std::string resource;  // repo/type/tag
  std::string initdata;  // init-data TOML file sent with the evidence; empty: none
  std::string kbs_cert;  // PEM CA for an https URL; empty: the system store
  int requests = 100;
  int concurrency = 1;
  std::string log_level = "warn";
  bool json = false;
};

struct KbsBenchCommand {
  CLI::App* bench = nullptr;
  KbsBenchFlags flags;
};

void AddKbsBenchCommand(CLI::App& app, KbsBenchCommand& cmd);
// Exit code as cli.h documents (1 when any flow failed).
int RunKbsBench(const KbsBenchCommand& cmd);

// Nearest-rank percentile (p in (0, 100]) of `samples`, which need not be
// sorted; 0 for none. Pure.
absl::Duration Percentile(std::vector<absl::Duration> samples, double p);

struct LatencySummary {
  size_t count = 0;
  absl::Duration median;
  absl::Duration p99;
  absl::Duration min;
  absl::Duration max;
};
LatencySummary Summarize(const std::vector<absl::Duration>& samples);

// The per-phase and whole-flow summaries as `cloak kbs-bench` prints them.
// Pure.
struct KbsBenchResult {
  int concurrency = 1;
  absl::Duration wall;
  LatencySummary flow, auth, attest, resource;
  size_t failures = 0;
  std::string first_failure;
};
std::string KbsBenchReportText(const KbsBenchResult& result);
nlohmann::json KbsBenchReportJson(const KbsBenchResult& result);

}  // namespace cloak::cli

#endif  // CLOAK_CLI_CLOAK_KBS_BENCH_H_
