#include "shim/hypervisor/console_log.h"

#include <algorithm>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "shim/hypervisor/hypervisor.h"

namespace cloak::shim::hypervisor {
namespace {

constexpr std::streamoff kMaxTailBytes = 64 * 1024;

// Drops ANSI escape sequences (ESC [ ... final byte, ESC x) and CRs;
// replaces other control characters except newline and tab.
std::string Sanitize(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char ch = static_cast<unsigned char>(text[i]);
    if (ch == 0x1b) {
      if (i + 1 < text.size() && text[i + 1] == '[') {
        i += 2;
        while (i < text.size() && !(text[i] >= 0x40 && text[i] <= 0x7e)) ++i;
      } else {
        ++i;
      }
      continue;
    }
    if (ch == '\r') continue;
    if (ch == '\n' || ch == '\t' || ch >= 0x20) {
      out.push_back(static_cast<char>(ch));
    } else {
      out.push_back('?');
    }
  }
  return out;
}

}  // namespace

std::string ReadConsoleTail(const std::string& path, int lines) {
  if (lines <= 0) return "";
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size <= 0) return "";
  const std::streamoff start = std::max<std::streamoff>(0, size - kMaxTailBytes);
  in.seekg(start);
  std::string raw(static_cast<size_t>(size - start), '\0');
  in.read(raw.data(), static_cast<std::streamsize>(raw.size()));
  raw.resize(static_cast<size_t>(in.gcount()));
  std::string text = Sanitize(raw);
  std::vector<absl::string_view> all = absl::StrSplit(text, '\n');
  // Drop a partial first line (we started mid-file) and a trailing empty one.
  if (start > 0 && all.size() > 1) all.erase(all.begin());
  while (!all.empty() && all.back().empty()) all.pop_back();
  const size_t keep = std::min(all.size(), static_cast<size_t>(lines));
  return absl::StrJoin(all.end() - static_cast<std::ptrdiff_t>(keep), all.end(), "\n");
}

std::string BootDeadline::Tail() const {
  std::string tail = ReadConsoleTail(console_log_path_, kBootErrorConsoleLines);
  if (tail.empty()) {
    return absl::StrCat("the console (", console_log_path_,
                        ") is empty: the guest printed nothing (wrong kernel, console= missing "
                        "from the kernel command line, or a guest that hangs before its first "
                        "message)");
  }
  return absl::StrCat("last ", kBootErrorConsoleLines, " lines of the console (",
                      console_log_path_, "):\n", tail);
}

absl::Status BootDeadline::Exceeded(absl::string_view waiting_for) const {
  return absl::DeadlineExceededError(absl::StrCat(waiting_for, " did not happen within ",
                                                  absl::FormatDuration(timeout_),
                                                  " of the VM's start; ", Tail()));
}

absl::Status BootDeadline::WaitFor(Hypervisor& hypervisor, absl::string_view waiting_for,
                                   const std::function<absl::StatusOr<bool>()>& ready) const {
  absl::Duration interval = absl::Milliseconds(50);
  while (true) {
    absl::StatusOr<bool> r = ready();
    if (!r.ok()) return r.status();
    if (*r) return absl::OkStatus();
    absl::StatusOr<ExitInfo> exited = hypervisor.Wait(absl::Now());
    if (exited.ok()) {
      return absl::AbortedError(absl::StrCat(
          "the VM exited (code ", exited->exit_code,
          exited->term_signal != 0 ? absl::StrCat(", signal ", exited->term_signal) : "",
          ") while waiting for ", waiting_for, "; ", Tail()));
    }
    if (Expired()) return Exceeded(waiting_for);
    absl::SleepFor(std::min(interval, std::max(deadline() - absl::Now(), absl::ZeroDuration())));
    interval = std::min(interval * 2, absl::Milliseconds(250));
  }
}

}  // namespace cloak::shim::hypervisor
