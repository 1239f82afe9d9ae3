#include "agent/reaper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fd.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/status_macros.h"

extern char** environ;

namespace cloak::agent {

namespace {

constexpr size_t kMaxUnclaimed = 4096;

// Self-pipe written by the SIGCHLD handler.
std::atomic<int> g_wake_write_fd{-1};
std::atomic<bool> g_reaper_exists{false};

void OnSigchld(int) {
  int saved = errno;
  int fd = g_wake_write_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    char c = 0;
    (void)!::write(fd, &c, 1);
  }
  errno = saved;
}

// Moves `fd` to a number above 2 so dup2 onto 0..2 cannot clobber it.
int Lift(int fd) { return fd < 0 ? -1 : ::fcntl(fd, F_DUPFD, 10); }

[[noreturn]] void ChildExec(char* const* argv, char* const* envp, int in, int out, int err,
                            const char* cwd) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Ignored dispositions survive exec; the agent ignores SIGPIPE.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &dfl, nullptr);
  ::sigaction(SIGCHLD, &dfl, nullptr);
  ::setsid();
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int fds[3] = {Lift(in), Lift(out), Lift(err)};
  for (int i = 0; i < 3; ++i) {
    ::dup2(fds[i] >= 0 ? fds[i] : devnull, i);
  }
  ::close_range(3, ~0U, 0);
  if (cwd != nullptr && ::chdir(cwd) != 0) ::_exit(127);
  ::execve(argv[0], argv, envp);
  ::_exit(127);
}

}  // namespace

int ExitStatusFromWaitStatus(int wait_status) {
  return ExitInfoFromWaitStatus(wait_status).exit_code;
}

absl::StatusOr<std::unique_ptr<Reaper>> Reaper::Start(bool subreaper) {
  if (g_reaper_exists.exchange(true)) {
    return absl::FailedPreconditionError("a Reaper already exists in this process");
  }
  if (subreaper && ::getpid() != 1 && ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    g_reaper_exists = false;
    return ErrnoError(errno, "prctl(PR_SET_CHILD_SUBREAPER)");
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    g_reaper_exists = false;
    return ErrnoError(errno, "pipe2");
  }
  g_wake_write_fd = pipe_fds[1];
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnSigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGCHLD, &sa, nullptr) != 0) return ErrnoError(errno, "sigaction(SIGCHLD)");
  std::unique_ptr<Reaper> reaper(new Reaper());
  int read_fd = pipe_fds[0];
  reaper->thread_ = std::thread([r = reaper.get(), read_fd] {
    UniqueFd wake(read_fd);
    while (true) {
      {
        absl::MutexLock lock(&r->mu_);
        if (r->stopping_) break;
      }
      r->ReapAll();
      struct pollfd p = {wake.get(), POLLIN, 0};
      // The timeout is a safety net against a lost wake-up.
      if (::poll(&p, 1, 1000) > 0) {
        char buf[256];
        while (::read(wake.get(), buf, sizeof(buf)) > 0) {
        }
      }
    }
  });
  return reaper;
}

Reaper::~Reaper() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  OnSigchld(0);
  if (thread_.joinable()) thread_.join();
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGCHLD, &dfl, nullptr);
  int fd = g_wake_write_fd.exchange(-1);
  if (fd >= 0) ::close(fd);
  g_reaper_exists = false;
}

void Reaper::ReapAll() {
  while (true) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) return;  // 0: children remain; ECHILD: none
    std::function<void(const ExitRecord&)> callback;
    ExitRecord record;
    {
      absl::MutexLock lock(&mu_);
      record = ExitRecord{status, ExitStatusFromWaitStatus(status), absl::Now(), ++sequence_};
      auto it = watches_.find(pid);
      if (it != watches_.end() && record.sequence > it->second.after) {
        callback = std::move(it->second.callback);
        watches_.erase(it);
      } else {
        if (exited_.size() >= kMaxUnclaimed) {
          auto oldest = exited_.begin();
          for (auto e = exited_.begin(); e != exited_.end(); ++e) {
            if (e->second.sequence < oldest->second.sequence) oldest = e;
          }
          exited_.erase(oldest);
        }
        exited_[pid] = record;
      }
    }
    if (callback) callback(record);
  }
}

absl::StatusOr<pid_t> Reaper::Spawn(const ChildSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty() || spec.argv[0][0] != '/') {
    return absl::InvalidArgumentError("spawn: argv[0] must be an absolute path");
  }
  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  char* const* env = spec.env.empty() ? environ : envp.data();
  const char* cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();

  absl::MutexLock lock(&mu_);
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError(errno, "fork ", spec.argv[0]);
  if (pid == 0) ChildExec(argv.data(), env, spec.stdin_fd, spec.stdout_fd, spec.stderr_fd, cwd);
  exited_.erase(pid);  // a stale status of a recycled pid
  watches_.erase(pid);
  return pid;
}

uint64_t Reaper::Mark() {
  absl::MutexLock lock(&mu_);
  return sequence_;
}

absl::StatusOr<ExitRecord> Reaper::Wait(pid_t pid, uint64_t after, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = exited_.find(pid);
    return it != exited_.end() && it->second.sequence > after;
  };
  mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  if (!ready()) {
    return absl::DeadlineExceededError(absl::StrCat("pid ", pid, " still running"));
  }
  ExitRecord record = exited_[pid];
  exited_.erase(pid);
  return record;
}

void Reaper::OnExit(pid_t pid, uint64_t after, std::function<void(const ExitRecord&)> callback) {
  ExitRecord record;
  {
    absl::MutexLock lock(&mu_);
    auto it = exited_.find(pid);
    if (it == exited_.end() || it->second.sequence <= after) {
      watches_[pid] = Watch{after, std::move(callback)};
      return;
    }
    record = it->second;
    exited_.erase(it);
  }
  callback(record);
}

void Reaper::Forget(pid_t pid) {
  absl::MutexLock lock(&mu_);
  watches_.erase(pid);
  exited_.erase(pid);
}

absl::StatusOr<Reaper::RunResult> Reaper::Run(const std::vector<std::string>& argv,
                                              absl::Duration timeout, size_t max_output) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe2");
  UniqueFd read_end(p[0]);
  UniqueFd write_end(p[1]);
  ChildSpec spec;
  spec.argv = argv;
  spec.stdout_fd = write_end.get();
  spec.stderr_fd = write_end.get();
  uint64_t mark = Mark();
  ASSIGN_OR_RETURN(pid_t pid, Spawn(spec));
  write_end.Reset();
  const absl::Time deadline = absl::Now() + timeout;
  RunResult result;
  bool timed_out = false;
  char buf[16384];
  while (true) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      timed_out = true;
      break;
    }
    absl::Status readable = WaitReadable(read_end.get(), left);
    if (!readable.ok()) {
      timed_out = true;
      break;
    }
    ssize_t n = ::read(read_end.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t room = max_output - std::min(max_output, result.output.size());
    result.output.append(buf, std::min(room, static_cast<size_t>(n)));
  }
  if (timed_out) {
    ::kill(pid, SIGKILL);
    (void)Wait(pid, mark, absl::Now() + absl::Seconds(5));
    return absl::DeadlineExceededError(absl::StrCat(absl::StrJoin(argv, " "), ": no exit within ",
                                                    absl::FormatDuration(timeout)));
  }
  // Output is at EOF; the exit follows shortly (a grandchild may hold the
  // pipe past the child's exit, which is why EOF comes first here).
  absl::StatusOr<ExitRecord> exit = Wait(pid, mark, deadline);
  if (!exit.ok()) {
    ::kill(pid, SIGKILL);
    (void)Wait(pid, mark, absl::Now() + absl::Seconds(5));
    return exit.status();
  }
  result.exit_status = exit->exit_status;
  return result;
}

}  // namespace cloak::agent
