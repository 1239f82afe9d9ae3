#include "shim/stdio.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace cloak::shim {
namespace {

constexpr size_t kStdinChunk = 64 * 1024;
constexpr int kPollSliceMs = 100;

std::shared_ptr<spdlog::logger> Log() { return Logger("stdio"); }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// URL query unescaping ('+' is a space, %XX a byte).
std::string QueryUnescape(absl::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] == '%' && i + 2 < in.size() &&
               HexValue(in[i + 1]) >= 0 && HexValue(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

bool IsFifo(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

absl::StatusOr<UniqueFd> OpenOutputFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) return ErrnoError(errno, "open stdio file ", path);
  return fd;
}

}  // namespace

// One client fifo, shared by stdout and stderr when both name it.
class ProcessIo::FifoOutput {
 public:
  explicit FifoOutput(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  // The write end, opened once a reader exists. Until then Linux refuses
  // O_WRONLY|O_NONBLOCK with ENXIO; the open is retried every poll slice
  // until it succeeds or `cancel` fires (CancelledError).
  absl::StatusOr<int> WaitForReader(const Cancellation& cancel) {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (write_) return write_.get();
        UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
        if (fd) {
          // A read end of our own: a client that closes its reader early
          // makes writes wait for room (until cancelled), never EPIPE.
          UniqueFd keep(::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
          if (!keep) return ErrnoError(errno, "open stdio fifo ", path_, " for reading");
          write_ = std::move(fd);
          keep_reader_ = std::move(keep);
          return write_.get();
        }
        if (errno != ENXIO && errno != EINTR) return ErrnoError(errno, "open stdio fifo ", path_);
      }
      if (cancel.cancelled()) {
        return absl::CancelledError(
            absl::StrCat("no client opened the fifo ", path_, " for reading"));
      }
      absl::SleepFor(absl::Milliseconds(kPollSliceMs));
    }
  }

 private:
  const std::string path_;
  absl::Mutex mu_;
  UniqueFd write_ ABSL_GUARDED_BY(mu_);
  UniqueFd keep_reader_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<StdioTarget> ParseStdioUri(absl::string_view uri) {
  StdioTarget target;
  if (uri.empty()) return target;
  size_t scheme_end = uri.find("://");
  if (scheme_end == absl::string_view::npos) {
    target.kind = StdioTarget::Kind::kFifo;
    target.path = std::string(uri);
    return target;
  }
  absl::string_view scheme = uri.substr(0, scheme_end);
  absl::string_view rest = uri.substr(scheme_end + 3);
  absl::string_view query;
  if (size_t q = rest.find('?'); q != absl::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (scheme == "fifo") {
    target.kind = StdioTarget::Kind::kFifo;
  } else if (scheme == "file") {
    target.kind = StdioTarget::Kind::kFile;
  } else if (scheme == "binary") {
    target.kind = StdioTarget::Kind::kBinary;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "stdio URI \"", uri, "\": unsupported scheme \"", scheme, "\" (want fifo, file or binary)"));
  }
  target.path = QueryUnescape(rest);
  if (target.path.empty() || target.path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("stdio URI \"", uri, "\": the path must be absolute"));
  }
  if (target.kind == StdioTarget::Kind::kBinary && !query.empty()) {
    std::vector<std::string> seen;
    for (absl::string_view kv : absl::StrSplit(query, '&', absl::SkipEmpty())) {
      absl::string_view key = kv;
      absl::string_view value;
      bool has_value = false;
      if (size_t eq = kv.find('='); eq != absl::string_view::npos) {
        key = kv.substr(0, eq);
        value = kv.substr(eq + 1);
        has_value = true;
      }
      std::string k = QueryUnescape(key);
      if (std::find(seen.begin(), seen.end(), k) != seen.end()) continue;  // first value only
      seen.push_back(k);
      target.args.push_back(k);
      if (has_value) target.args.push_back(QueryUnescape(value));
    }
  }
  return target;
}

absl::StatusOr<std::unique_ptr<ProcessIo>> ProcessIo::Open(const StdioUris& uris,
                                                           const Context& context) {
  std::unique_ptr<ProcessIo> io(new ProcessIo(uris));
  {
    absl::MutexLock lock(&io->mu_);
    RETURN_IF_ERROR(io->OpenOutputs(context));
  }
  if (!uris.stdin_uri.empty()) {
    ASSIGN_OR_RETURN(StdioTarget target, ParseStdioUri(uris.stdin_uri));
    if (target.kind != StdioTarget::Kind::kFifo) {
      return absl::InvalidArgumentError(
          absl::StrCat("stdin URI \"", uris.stdin_uri, "\": stdin must be a fifo"));
    }
    io->stdin_fd_.Reset(::open(target.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!io->stdin_fd_) return ErrnoError(errno, "open stdin fifo ", target.path);
  }
  return io;
}

absl::Status ProcessIo::OpenOutputs(const Context& context) {
  ASSIGN_OR_RETURN(StdioTarget out, ParseStdioUri(uris_.stdout_uri));
  StdioTarget err;
  if (!uris_.terminal) {
    ASSIGN_OR_RETURN(err, ParseStdioUri(uris_.stderr_uri));
  }
  // file:// and binary:// carry both streams, whichever field names them.
  for (const StdioTarget* t : {&out, &err}) {
    if (t->kind == StdioTarget::Kind::kFile) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(t->path).parent_path(), ec);
      UniqueFd fd(::open(t->path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
      if (!fd) return ErrnoError(errno, "open log file ", t->path);
      stdout_.fd = fd.get();
      stderr_.fd = uris_.terminal ? -1 : fd.get();
      owned_fds_.push_back(std::move(fd));
      return absl::OkStatus();
    }
    if (t->kind == StdioTarget::Kind::kBinary) return StartLogger(*t, context);
  }
  // A fifo waits for its reader (in the copier); any other path is a file.
  auto open_path = [this](const std::string& path) -> absl::StatusOr<Destination> {
    Destination d;
    if (IsFifo(path)) {
      d.fifo = std::make_shared<FifoOutput>(path);
      return d;
    }
    ASSIGN_OR_RETURN(UniqueFd fd, OpenOutputFile(path));
    d.fd = fd.get();
    owned_fds_.push_back(std::move(fd));
    return d;
  };
  if (out.kind == StdioTarget::Kind::kFifo) {
    ASSIGN_OR_RETURN(stdout_, open_path(out.path));
  }
  if (err.kind == StdioTarget::Kind::kFifo) {
    if (out.kind == StdioTarget::Kind::kFifo && err.path == out.path) {
      stderr_ = stdout_;
    } else {
      ASSIGN_OR_RETURN(stderr_, open_path(err.path));
    }
  }
  return absl::OkStatus();
}

absl::Status ProcessIo::StartLogger(const StdioTarget& target, const Context& context) {
  int out_pipe[2], err_pipe[2], ready_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe for logger");
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe for logger");
  UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]);
  if (::pipe2(ready_pipe, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe for logger");
  UniqueFd ready_r(ready_pipe[0]), ready_w(ready_pipe[1]);

  std::vector<std::string> argv = {target.path};
  argv.insert(argv.end(), target.args.begin(), target.args.end());
  SpawnOptions options;
  options.env = {absl::StrCat("CONTAINER_ID=", context.container_id),
                 absl::StrCat("CONTAINER_NAMESPACE=", context.namespace_name)};
  options.extra_fds = {out_r.get(), err_r.get(), ready_w.get()};
  options.stop_grace = absl::Seconds(2);
  absl::StatusOr<Subprocess> logger = Subprocess::Spawn(argv, options);
  if (!logger.ok()) return Annotate(logger.status(), absl::StrCat("start log binary ", target.path));
  logger_.emplace(std::move(*logger));
  out_r.Reset();
  err_r.Reset();
  ready_w.Reset();
  // One byte or EOF on the ready pipe.
  absl::Status ready = WaitReadable(ready_r.get(), kLoggerReadyTimeout);
  if (!ready.ok()) {
    return Annotate(ready, absl::StrCat("log binary ", target.path, " did not signal ready"));
  }
  RETURN_IF_ERROR(SetNonBlocking(out_w.get(), true));
  RETURN_IF_ERROR(SetNonBlocking(err_w.get(), true));
  stdout_.fd = out_w.get();
  stderr_.fd = uris_.terminal ? -1 : err_w.get();
  owned_fds_.push_back(std::move(out_w));
  owned_fds_.push_back(std::move(err_w));
  return absl::OkStatus();
}

ProcessIo::~ProcessIo() { Close(); }

absl::Status ProcessIo::WriteOutput(int fd, absl::string_view data, const Cancellation& cancel) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return ErrnoError(errno, "write process output");
    if (cancel.cancelled()) return absl::CancelledError("output copy cancelled");
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, kPollSliceMs);
  }
  return absl::OkStatus();
}

void ProcessIo::StartOutput(StreamKind stream, OutputReader reader) {
  absl::MutexLock lock(&mu_);
  const Destination dest = stream == StreamKind::kStdout ? stdout_ : stderr_;
  if (!dest.valid() || closed_) return;
  Copier copier;
  copier.cancel = std::make_shared<Cancellation>();
  copier.done = std::make_shared<absl::Notification>();
  const char* name = stream == StreamKind::kStdout ? "stdout" : "stderr";
  copier.thread = std::thread([dest, reader = std::move(reader), cancel = copier.cancel,
                               done = copier.done, name] {
    int fd = dest.fd;
    absl::Status status;
    if (dest.fifo != nullptr) {
      // Nothing is read from the guest before the client can receive it.
      absl::StatusOr<int> opened = dest.fifo->WaitForReader(*cancel);
      if (opened.ok()) {
        fd = *opened;
      } else {
        status = opened.status();
        Log()->warn("{}: {}; the process's output was not copied", name, status.ToString());
      }
    }
    absl::Status write_status;
    if (status.ok()) {
      status = reader(
          [&](absl::string_view chunk) {
            write_status = WriteOutput(fd, chunk, *cancel);
            return write_status.ok();
          },
          *cancel);
      if (!status.ok() && !cancel->cancelled()) {
        Log()->warn("{} copy ended: {}", name, status.ToString());
      } else if (!write_status.ok() && !cancel->cancelled()) {
        Log()->warn("{} write: {}", name, write_status.ToString());
      }
    }
    done->Notify();
  });
  copiers_.push_back(std::move(copier));
}

void ProcessIo::StartStdin(StdinWriter write, StdinCloser close) {
  if (!stdin_fd_) return;
  absl::MutexLock lock(&mu_);
  if (closed_ || stdin_thread_.joinable()) return;
  stdin_thread_ = std::thread([this, write = std::move(write), close = std::move(close)] {
    StdinLoop(write, close);
  });
}

void ProcessIo::StdinLoop(StdinWriter write, StdinCloser close) {
  std::string buf(kStdinChunk, '\0');
  const int fd = stdin_fd_.get();
  bool forward_ok = true;
  while (!stdin_abort_.load()) {
    const bool draining = stdin_close_requested_.load();
    if (!draining) {
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, kPollSliceMs);
      if (r == 0) continue;
      if (r < 0 && errno == EINTR) continue;
    }
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      if (forward_ok) {
        absl::Status s = write(absl::string_view(buf.data(), static_cast<size_t>(n)));
        if (!s.ok()) {
          Log()->warn("stdin write to the guest failed: {}; dropping further input", s.ToString());
          forward_ok = false;
        }
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (draining) break;  // nothing more buffered
      continue;
    }
    break;  // EOF (n == 0 after a writer left) or an error
  }
  if (!stdin_abort_.load()) {
    absl::Status s = close();
    if (!s.ok()) Log()->warn("closing the process's stdin failed: {}", s.ToString());
  }
}

bool ProcessIo::WaitOutput(absl::Time deadline) {
  std::vector<std::pair<std::shared_ptr<absl::Notification>, std::shared_ptr<Cancellation>>> list;
  {
    absl::MutexLock lock(&mu_);
    for (const Copier& c : copiers_) list.emplace_back(c.done, c.cancel);
  }
  bool all = true;
  for (auto& [done, cancel] : list) {
    if (!done->WaitForNotificationWithDeadline(deadline)) {
      all = false;
      cancel->Cancel();
    }
  }
  FinishOutputs();
  return all;
}

void ProcessIo::FinishOutputs() {
  absl::MutexLock finish(&finish_mu_);
  std::vector<Copier> copiers;
  {
    absl::MutexLock lock(&mu_);
    copiers.swap(copiers_);
  }
  for (Copier& c : copiers) {
    c.cancel->Cancel();
    if (c.thread.joinable()) c.thread.join();
  }
  std::optional<Subprocess> logger;
  {
    absl::MutexLock lock(&mu_);
    owned_fds_.clear();
    stdout_ = Destination{};
    stderr_ = Destination{};
    logger.swap(logger_);
  }
  if (logger.has_value()) {
    absl::StatusOr<ExitInfo> exit = logger->Wait(kLoggerExitTimeout);
    if (!exit.ok()) logger->Stop(absl::Seconds(1));
  }
}

void ProcessIo::CloseStdin() { stdin_close_requested_.store(true); }

void ProcessIo::Close() {
  std::thread stdin_thread;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    for (Copier& c : copiers_) c.cancel->Cancel();
    stdin_thread.swap(stdin_thread_);
  }
  stdin_abort_.store(true);
  FinishOutputs();
  if (stdin_thread.joinable()) stdin_thread.join();
  stdin_fd_.Reset();
}

}  // namespace cloak::shim
