#include "cli/cloak/kbs_bench.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "agent/attest/attester.h"
#include "agent/attest/kbs_client.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tee/initdata.h"

namespace cloak::cli {
namespace {

using agent::attest::KbsClient;

struct FlowSample {
  absl::Duration flow, auth, attest, resource;
};

struct FlowInputs {
  agent::attest::KbsClientOptions client;
  std::string resource;
  std::optional<std::string> initdata_toml;
  std::string initdata_digest;  // raw bytes
};

// One guest's first contact: new client (new tee key), auth, attest, fetch.
absl::StatusOr<FlowSample> RunFlow(const FlowInputs& in) {
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(std::unique_ptr<KbsClient> client, KbsClient::Create(in.client));
  agent::attest::AttesterOptions attester_options;
  attester_options.initdata_digest = in.initdata_digest;
  ASSIGN_OR_RETURN(std::unique_ptr<agent::attest::Attester> attester,
                   agent::attest::CreateAttester("sample", attester_options));
  RETURN_IF_ERROR(client->Attest(*attester, in.initdata_toml));
  const absl::Time fetch = absl::Now();
  ASSIGN_OR_RETURN(std::string secret, client->GetResource(in.resource));
  FlowSample s;
  s.resource = absl::Now() - fetch;
  s.flow = absl::Now() - start;
  s.auth = client->timings().auth;
  s.attest = client->timings().attest;
  return s;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

absl::StatusOr<FlowInputs> Inputs(const KbsBenchFlags& flags) {
  if (flags.requests < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--requests ", flags.requests, ": give at least 1"));
  }
  if (flags.concurrency < 1 || flags.concurrency > kMaxKbsBenchConcurrency) {
    return absl::InvalidArgumentError(absl::StrCat("--concurrency ", flags.concurrency,
                                                   ": give 1 to ", kMaxKbsBenchConcurrency));
  }
  FlowInputs in;
  in.client.url = flags.url;
  // The sample attester is the dev class's: plain http to loopback is the
  // dev rule (agent/attest/kbs_client.h, CheckKbsTransport).
  in.client.dev_class = true;
  RETURN_IF_ERROR(agent::attest::ValidateKbsUrl(flags.url));
  if (!flags.kbs_cert.empty()) {
    ASSIGN_OR_RETURN(in.client.ca_pem, ReadFile(flags.kbs_cert));
  }
  in.resource = flags.resource;
  if (!flags.initdata.empty()) {
    ASSIGN_OR_RETURN(std::string toml, ReadFile(flags.initdata, tee::kMaxInitDataBytes + 1));
    absl::StatusOr<tee::InitData> doc = tee::ParseInitData(toml);
    if (!doc.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--initdata ", flags.initdata, ": ", doc.status().message()));
    }
    in.initdata_digest = doc->digest;
    in.initdata_toml = std::move(toml);
  }
  return in;
}

absl::StatusOr<KbsBenchResult> Bench(const KbsBenchFlags& flags) {
  ASSIGN_OR_RETURN(FlowInputs in, Inputs(flags));
  // One flow first, outside the figures: it fails fast with the KBS's reason
  // when the URL, resource or policy is wrong, and initialises libcurl
  // before any thread starts.
  absl::StatusOr<FlowSample> first = RunFlow(in);
  if (!first.ok()) {
    return absl::Status(first.status().code(),
                        absl::StrCat("the first flow against ", flags.url, " for ",
                                     flags.resource, " failed: ", first.status().message()));
  }
  absl::Mutex mu;
  std::vector<FlowSample> samples;
  samples.reserve(flags.requests);
  KbsBenchResult result;
  result.concurrency = flags.concurrency;
  std::atomic<int> next{0};
  auto worker = [&] {
    while (next.fetch_add(1) < flags.requests) {
      absl::StatusOr<FlowSample> s = RunFlow(in);
      absl::MutexLock lock(&mu);
      if (s.ok()) {
        samples.push_back(*s);
      } else if (result.failures++ == 0) {
        result.first_failure = std::string(s.status().message());
      }
    }
  };
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int i = 0; i < flags.concurrency; ++i) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  result.wall = absl::Now() - start;
  std::vector<absl::Duration> flow, auth, attest, resource;
  for (const FlowSample& s : samples) {
    flow.push_back(s.flow);
    auth.push_back(s.auth);
    attest.push_back(s.attest);
    resource.push_back(s.resource);
  }
  result.flow = Summarize(flow);
  result.auth = Summarize(auth);
  result.attest = Summarize(attest);
  result.resource = Summarize(resource);
  return result;
}

}  // namespace

absl::Duration Percentile(std::vector<absl::Duration> samples, double p) {
  if (samples.empty()) return absl::ZeroDuration();
  std::sort(samples.begin(), samples.end());
  double rank = std::ceil(p / 100.0 * static_cast<double>(samples.size()));
  size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return samples[std::min(index, samples.size() - 1)];
}

LatencySummary Summarize(const std::vector<absl::Duration>& samples) {
  LatencySummary s;
  s.count = samples.size();
  if (samples.empty()) return s;
  s.median = Percentile(samples, 50);
  s.p99 = Percentile(samples, 99);
  s.min = *std::min_element(samples.begin(), samples.end());
  s.max = *std::max_element(samples.begin(), samples.end());
  return s;
}

std::string KbsBenchReportText(const KbsBenchResult& r) {
  std::string out = absl::StrFormat(
      "%d flows (auth + attest + resource), %d at once: %.1f flows/s, %d failed\n",
      r.flow.count, r.concurrency,
      absl::ToDoubleSeconds(r.wall) > 0 ? r.flow.count / absl::ToDoubleSeconds(r.wall) : 0.0,
      r.failures);
  auto line = [&](absl::string_view name, const LatencySummary& s) {
    absl::StrAppendFormat(&out, "  %-9s median %7.2f ms  p99 %7.2f ms  min %7.2f ms  max %7.2f ms\n",
                          name, Ms(s.median), Ms(s.p99), Ms(s.min), Ms(s.max));
  };
  line("flow", r.flow);
  line("auth", r.auth);
  line("attest", r.attest);
  line("resource", r.resource);
  if (r.failures > 0) absl::StrAppend(&out, "  first failure: ", r.first_failure, "\n");
  return out;
}

nlohmann::json KbsBenchReportJson(const KbsBenchResult& r) {
  auto summary = [](const LatencySummary& s) {
    return nlohmann::json{{"count", s.count},
                          {"median_ms", Ms(s.median)},
                          {"p99_ms", Ms(s.p99)},
                          {"min_ms", Ms(s.min)},
                          {"max_ms", Ms(s.max)}};
  };
  nlohmann::json j{{"concurrency", r.concurrency}, {"wall_ms", Ms(r.wall)},
                   {"failures", r.failures},       {"flow", summary(r.flow)},
                   {"auth", summary(r.auth)},      {"attest", summary(r.attest)},
                   {"resource", summary(r.resource)}};
  if (r.failures > 0) j["first_failure"] = r.first_failure;
  return j;
}

void AddKbsBenchCommand(CLI::App& app, KbsBenchCommand& cmd) {
  KbsBenchFlags& f = cmd.flags;
  cmd.bench = app.add_subcommand(
      "kbs-bench",
      "time full key broker flows (fresh client, auth, attest with sample evidence, one "
      "resource): median and p99");
  cmd.bench->add_option("--url", f.url, "the key broker, e.g. http://127.0.0.1:8080")->required();
  cmd.bench->add_option("--resource", f.resource, "resource path repo/type/tag")->required();
  cmd.bench->add_option("--initdata", f.initdata,
                        "init-data TOML sent with the evidence (what a pinned policy checks)");
  cmd.bench->add_option("--kbs-cert", f.kbs_cert, "PEM CA of an https key broker");
  cmd.bench->add_option("-n,--requests", f.requests, "flows to time")->capture_default_str();
  cmd.bench->add_option("-c,--concurrency", f.concurrency, "flows in flight at once")
      ->capture_default_str();
  cmd.bench->add_option("--log-level", f.log_level, "the client's log: info shows every step")
      ->capture_default_str();
  cmd.bench->add_flag("--json", f.json, "print the report as JSON");
}

int RunKbsBench(const KbsBenchCommand& cmd) {
  LogOptions log;
  log.level = cmd.flags.log_level;
  log.component = "cloak kbs-bench";
  absl::Status logging = InitLogging(log);
  absl::StatusOr<KbsBenchResult> r =
      logging.ok() ? Bench(cmd.flags) : absl::StatusOr<KbsBenchResult>(logging);
  if (!r.ok()) {
    std::cerr << "cloak kbs-bench: " << r.status().message() << "\n";
    return 1;
  }
  std::cout << (cmd.flags.json ? KbsBenchReportJson(*r).dump(2) + "\n" : KbsBenchReportText(*r));
  return r->failures == 0 ? 0 : 1;
}

}  // namespace cloak::cli
