#include "common/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fd.h"
#include "common/status_macros.h"
#include "common/temp_dir.h"

namespace cloak {

ExitInfo ExitInfoFromWaitStatus(int wait_status) {
  ExitInfo info;
  if (WIFEXITED(wait_status)) {
    info.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    info.term_signal = WTERMSIG(wait_status);
    info.exit_code = 128 + info.term_signal;
  } else {
    info.exit_code = 255;
  }
  return info;
}

namespace {

// In the child: only async-signal-safe calls until exec.
[[noreturn]] void ChildExec(char* const* argv, char* const* envp, const SpawnOptions& o,
                            int out_fd, int err_fd, int err_pipe) {
  if (o.new_process_group) ::setpgid(0, 0);
  sigset_t all;
  sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  int devnull = ::open("/dev/null", O_RDWR);
  ::dup2(devnull, 0);
  ::dup2(out_fd >= 0 ? out_fd : devnull, 1);
  ::dup2(err_fd >= 0 ? err_fd : devnull, 2);
  // Move passed fds into place: first above the target range, then down.
  const int n = static_cast<int>(o.extra_fds.size());
  int moved[64];
  for (int i = 0; i < n && i < 64; ++i) moved[i] = ::fcntl(o.extra_fds[i], F_DUPFD, 3 + n + 16);
  for (int i = 0; i < n && i < 64; ++i) {
    ::dup2(moved[i], 3 + i);
    ::close(moved[i]);
  }
  if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) != 0) {
    int e = errno;
    (void)!::write(err_pipe, &e, sizeof(e));
    ::_exit(127);
  }
  ::execvpe(argv[0], argv, envp);
  int e = errno;
  (void)!::write(err_pipe, &e, sizeof(e));
  ::_exit(127);
}

}  // namespace

absl::StatusOr<Subprocess> Subprocess::Spawn(const std::vector<std::string>& argv,
                                             const SpawnOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("spawn: empty argv");
  if (options.extra_fds.size() > 64) return absl::InvalidArgumentError("spawn: too many fds");
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) env_store.emplace_back(*e);
  for (const auto& e : options.env) env_store.push_back(e);
  std::vector<char*> cenv;
  for (auto& e : env_store) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  UniqueFd out, err;
  if (!options.stdout_path.empty()) {
    out.Reset(::open(options.stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!out) return ErrnoError(errno, "open ", options.stdout_path, " for ", argv[0]);
  }
  if (!options.stderr_path.empty()) {
    if (options.stderr_path == options.stdout_path) {
      err.Reset(::fcntl(out.get(), F_DUPFD_CLOEXEC, 0));
    } else {
      err.Reset(
          ::open(options.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    }
    if (!err) return ErrnoError(errno, "open ", options.stderr_path, " for ", argv[0]);
  }
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe2");
  UniqueFd rd(pipefd[0]), wr(pipefd[1]);

  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError(errno, "fork for ", argv[0]);
  if (pid == 0) ChildExec(cargv.data(), cenv.data(), options, out.get(), err.get(), wr.get());
  wr.Reset();
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(rd.get(), &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(child_errno)) {
    int st;
    ::waitpid(pid, &st, 0);
    return ErrnoError(child_errno, "exec ", argv[0]);
  }
  return Subprocess(pid, options.stop_grace, argv[0]);
}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !exit_) Stop(grace_);
    pid_ = std::exchange(other.pid_, -1);
    grace_ = other.grace_;
    exit_ = std::move(other.exit_);
    name_ = std::move(other.name_);
  }
  return *this;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !exit_) Stop(grace_);
}

std::optional<ExitInfo> Subprocess::Poll() {
  if (exit_ || pid_ <= 0) return exit_;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) exit_ = ExitInfoFromWaitStatus(st);
  if (r < 0 && errno == ECHILD) exit_ = ExitInfo{255, 0};
  return exit_;
}

absl::StatusOr<ExitInfo> Subprocess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("wait: no process");
  if (timeout == absl::InfiniteDuration()) {
    while (!exit_) {
      int st = 0;
      pid_t r = ::waitpid(pid_, &st, 0);
      if (r == pid_) exit_ = ExitInfoFromWaitStatus(st);
      else if (r < 0 && errno != EINTR) return ErrnoError(errno, "waitpid ", name_);
    }
    return *exit_;
  }
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration sleep = absl::Milliseconds(1);
  while (!Poll()) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          name_, " (pid ", pid_, ") still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(sleep);
    sleep = std::min(sleep * 2, absl::Milliseconds(50));
  }
  return *exit_;
}

absl::Status Subprocess::Signal(int sig) {
  if (pid_ <= 0 || Poll()) return absl::OkStatus();
  if (::kill(pid_, sig) != 0 && errno != ESRCH) {
    return ErrnoError(errno, "kill ", name_, " (pid ", pid_, ")");
  }
  return absl::OkStatus();
}

ExitInfo Subprocess::Stop(absl::Duration grace) {
  if (auto e = Poll()) return *e;
  (void)Signal(SIGTERM);
  if (auto r = Wait(grace); r.ok()) return *r;
  ::kill(pid_, SIGKILL);
  auto r = Wait();
  return r.ok() ? *r : ExitInfo{255, 0};
}

namespace {
std::string ReadWhole(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}
}  // namespace

absl::StatusOr<std::string> RunForOutput(const std::vector<std::string>& argv,
                                         absl::Duration timeout) {
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("cloak-run-"));
  SpawnOptions options;
  options.stdout_path = dir.Join("out");
  options.stderr_path = dir.Join("err");
  options.stop_grace = absl::Seconds(1);
  ASSIGN_OR_RETURN(Subprocess process, Subprocess::Spawn(argv, options));
  absl::StatusOr<ExitInfo> exit = process.Wait(timeout);
  if (!exit.ok()) {
    process.Stop(absl::Seconds(1));
    return absl::DeadlineExceededError(absl::StrCat(absl::StrJoin(argv, " "), " did not finish within ",
                                                    absl::FormatDuration(timeout)));
  }
  if (exit->exit_code != 0) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(argv, " "), " exited with code ",
                                            exit->exit_code, ": ",
                                            absl::StripAsciiWhitespace(ReadWhole(options.stderr_path))));
  }
  return ReadWhole(options.stdout_path);
}

}  // namespace cloak
