#include "common/logging.h"

#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace cloak {
namespace {

struct LogState {
  std::mutex mu;
  spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  spdlog::level::level_enum level = spdlog::level::info;
  std::string pattern = "%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ [cloak/%n] %v";
};

LogState& State() {
  static auto* state = new LogState();
  return *state;
}

}  // namespace

absl::Status InitLogging(const LogOptions& options) {
  auto level = spdlog::level::from_str(options.level);
  if (level == spdlog::level::off && options.level != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown log level \"", options.level,
        "\": use one of trace, debug, info, warn, error, off"));
  }
  spdlog::sink_ptr sink;
  if (options.file.empty()) {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  } else {
    try {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file, false);
    } catch (const spdlog::spdlog_ex& e) {
      return absl::UnavailableError(
          absl::StrCat("open log file ", options.file, ": ", e.what()));
    }
  }
  LogState& st = State();
  std::lock_guard<std::mutex> lock(st.mu);
  st.sink = sink;
  st.level = level;
  st.pattern = absl::StrCat("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ ", options.component, " [%n] %v");
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    l->sinks().assign({sink});
    l->set_level(level);
    l->set_pattern(st.pattern, spdlog::pattern_time_type::utc);
    l->flush_on(spdlog::level::trace);
  });
  return absl::OkStatus();
}

absl::Status SetLogLevel(absl::string_view name) {
  const std::string text(name);
  auto level = spdlog::level::from_str(text);
  if (level == spdlog::level::off && text != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown log level \"", text, "\": use one of trace, debug, info, warn, error, off"));
  }
  LogState& st = State();
  std::lock_guard<std::mutex> lock(st.mu);
  st.level = level;
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(level); });
  return absl::OkStatus();
}

std::shared_ptr<spdlog::logger> Logger(absl::string_view name) {
  LogState& st = State();
  std::lock_guard<std::mutex> lock(st.mu);
  std::string key(name);
  if (auto existing = spdlog::get(key)) return existing;
  auto logger = std::make_shared<spdlog::logger>(key, st.sink);
  logger->set_level(st.level);
  logger->set_pattern(st.pattern, spdlog::pattern_time_type::utc);
  logger->flush_on(spdlog::level::trace);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace cloak
