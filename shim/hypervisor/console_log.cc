#include "shim/hypervisor/console_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/fd.h"
#include "common/files.h"
#include "shim/hypervisor/hypervisor.h"

namespace cloak::shim::hypervisor {
namespace {

constexpr std::streamoff kMaxTailBytes = 64 * 1024;
// A console line longer than this is passed on in pieces.
constexpr size_t kMaxLineBytes = 4096;

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

std::vector<std::string> TailLines(const std::string& path, int lines) {
  if (lines <= 0) return {};
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size <= 0) return {};
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
  return std::vector<std::string>(all.end() - static_cast<std::ptrdiff_t>(keep), all.end());
}

}  // namespace

std::string ReadConsoleTail(const std::string& path, int lines) {
  std::vector<std::string> tail = TailLines(path, lines);
  if (tail.size() < static_cast<size_t>(std::max(lines, 0))) {
    std::vector<std::string> before =
        TailLines(path + ".1", lines - static_cast<int>(tail.size()));
    tail.insert(tail.begin(), before.begin(), before.end());
  }
  return absl::StrJoin(tail, "\n");
}

ConsoleLogPump::ConsoleLogPump(std::string path, int64_t max_bytes,
                               std::function<void(absl::string_view line)> on_line,
                               absl::Duration poll_interval)
    : path_(std::move(path)),
      max_bytes_(std::max<int64_t>(max_bytes, 1)),
      on_line_(std::move(on_line)),
      poll_interval_(poll_interval) {
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(poll_interval_)) PollOnce();
  });
}

ConsoleLogPump::~ConsoleLogPump() { Stop(); }

void ConsoleLogPump::Stop() {
  if (stopped_.exchange(true)) return;
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
  PollOnce();
  absl::MutexLock lock(&mu_);
  Emit("", /*flush=*/true);
}

void ConsoleLogPump::Emit(absl::string_view raw, bool flush) {
  partial_.append(raw.data(), raw.size());
  size_t begin = 0;
  while (true) {
    const size_t nl = partial_.find('\n', begin);
    const size_t line_end = nl == std::string::npos ? partial_.size() : nl;
    const bool cut = line_end - begin > kMaxLineBytes;
    if (nl == std::string::npos && !cut) break;
    const size_t end = cut ? begin + kMaxLineBytes : nl;
    std::string line = Sanitize(absl::string_view(partial_).substr(begin, end - begin));
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (!line.empty() && on_line_) on_line_(line);
    begin = cut ? end : nl + 1;
  }
  partial_.erase(0, begin);
  if (flush && !partial_.empty()) {
    std::string line = Sanitize(partial_);
    if (!line.empty() && on_line_) on_line_(line);
    partial_.clear();
  }
}

void ConsoleLogPump::PollOnce() {
  absl::MutexLock lock(&mu_);
  UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return;
  if (st.st_size < offset_) offset_ = 0;  // truncated under us
  // Reads [offset_, EOF) and passes it on; what was read, if `keep`.
  auto drain = [&](std::string* keep) {
    char buf[65536];
    while (true) {
      const ssize_t n = ::pread(fd.get(), buf, sizeof(buf), offset_);
      if (n <= 0) return;
      offset_ += n;
      Emit(absl::string_view(buf, static_cast<size_t>(n)), false);
      if (keep != nullptr) keep->append(buf, static_cast<size_t>(n));
    }
  };
  drain(nullptr);
  if (offset_ < max_bytes_) return;
  // Rotate: the whole file becomes <path>.1, then the file starts over.
  std::string all(static_cast<size_t>(offset_), '\0');
  size_t got = 0;
  while (got < all.size()) {
    const ssize_t n = ::pread(fd.get(), all.data() + got, all.size() - got,
                              static_cast<off_t>(got));
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  all.resize(got);
  drain(&all);
  if (::ftruncate(fd.get(), 0) != 0) return;
  offset_ = 0;
  (void)WriteFileAtomic(path_ + ".1", all, 0600);
  rotations_.fetch_add(1);
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
