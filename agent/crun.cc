#include "agent/crun.h"

#include <signal.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <linux/magic.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "agent/cgroup_stats.h"
#include "agent/spec_builder.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace cloak::agent {

namespace {

// crun's error, from its log file (last lines), for a failed call.
std::string CrunLog(const std::string& log_file) {
  absl::StatusOr<std::string> log = ReadFile(log_file, 1 << 20, Symlinks::kRefuse);
  if (!log.ok()) return "";
  std::string text = std::string(absl::StripAsciiWhitespace(*log));
  if (text.size() > 2048) text = text.substr(text.size() - 2048);
  return text;
}

}  // namespace

bool RootIsInitramfs() {
  struct statfs fs;
  if (::statfs("/", &fs) != 0) return false;
  return fs.f_type == RAMFS_MAGIC || fs.f_type == TMPFS_MAGIC;
}

std::vector<std::string> Crun::GlobalArgs(const std::string& log_file) const {
  std::vector<std::string> args = {options_.binary, "--root", options_.state_root};
  if (!log_file.empty()) {
    args.push_back(absl::StrCat("--log=file:", log_file));
    args.push_back("--log-format=text");
  }
  return args;
}

std::vector<std::string> Crun::CreateArgs(const std::string& id, const std::string& bundle,
                                          const std::string& pid_file,
                                          const std::string& log_file,
                                          const std::string& console_socket) const {
  std::vector<std::string> args = GlobalArgs(log_file);
  args.insert(args.end(), {"create", "--bundle", bundle, "--pid-file", pid_file});
  if (options_.no_pivot) args.push_back("--no-pivot");
  if (!console_socket.empty()) args.insert(args.end(), {"--console-socket", console_socket});
  args.push_back(id);
  return args;
}

std::vector<std::string> Crun::ExecArgs(const std::string& id, const std::string& process_file,
                                        const std::string& pid_file, const std::string& log_file,
                                        const std::string& console_socket) const {
  std::vector<std::string> args = GlobalArgs(log_file);
  args.insert(args.end(),
              {"exec", "--detach", "--pid-file", pid_file, "--process", process_file});
  if (!console_socket.empty()) args.insert(args.end(), {"--console-socket", console_socket});
  args.push_back(id);
  return args;
}

std::vector<std::string> Crun::KillArgs(const std::string& id, int signal, bool all) const {
  std::vector<std::string> args = GlobalArgs("");
  args.push_back("kill");
  if (all) args.push_back("--all");
  args.push_back(id);
  args.push_back(absl::StrCat(signal));
  return args;
}

absl::StatusOr<std::string> Crun::RunSimple(std::vector<std::string> args) {
  if (reaper_ == nullptr) return absl::InternalError("no reaper");
  std::string what = absl::StrJoin(args.begin() + 3, args.end(), " ");
  ASSIGN_OR_RETURN(Reaper::RunResult r, reaper_->Run(args, options_.timeout));
  if (r.exit_status != 0) {
    std::string out = std::string(absl::StripAsciiWhitespace(r.output));
    if (out.size() > 2048) out = out.substr(out.size() - 2048);
    return absl::InternalError(
        absl::StrCat("crun ", what, " failed (exit ", r.exit_status, "): ", out));
  }
  return std::move(r.output);
}

absl::StatusOr<Crun::Launch> Crun::Launch_(
    std::vector<std::string> args, const std::string& what, const std::string& pid_file,
    const std::string& log_file, const CrunStdio& stdio,
    const std::function<absl::Status(const std::function<bool()>&)>& receive_console) {
  if (reaper_ == nullptr) return absl::InternalError("no reaper");
  ::unlink(pid_file.c_str());
  ::unlink(log_file.c_str());
  ChildSpec spec;
  spec.argv = std::move(args);
  spec.stdin_fd = stdio.stdin_fd;
  spec.stdout_fd = stdio.stdout_fd;
  spec.stderr_fd = stdio.stderr_fd;
  const absl::Time deadline = absl::Now() + options_.timeout;
  Launch launch;
  launch.mark = reaper_->Mark();
  ASSIGN_OR_RETURN(pid_t crun_pid, reaper_->Spawn(spec));

  std::optional<ExitRecord> crun_exit;
  auto crun_done = [&]() {
    if (crun_exit) return true;
    absl::StatusOr<ExitRecord> r = reaper_->Wait(crun_pid, launch.mark, absl::Now());
    if (r.ok()) crun_exit = *r;
    return crun_exit.has_value();
  };
  absl::Status console = absl::OkStatus();
  if (!stdio.console_socket.empty() && receive_console) console = receive_console(crun_done);
  if (!crun_exit) {
    absl::StatusOr<ExitRecord> r = reaper_->Wait(crun_pid, launch.mark, deadline);
    if (!r.ok()) {
      ::kill(crun_pid, SIGKILL);
      (void)reaper_->Wait(crun_pid, launch.mark, absl::Now() + absl::Seconds(5));
      return absl::DeadlineExceededError(absl::StrCat("crun ", what, ": no exit within ",
                                                      absl::FormatDuration(options_.timeout)));
    }
    crun_exit = *r;
  }
  if (crun_exit->exit_status != 0) {
    return absl::InternalError(absl::StrCat("crun ", what, " failed (exit ",
                                            crun_exit->exit_status, "): ", CrunLog(log_file)));
  }
  RETURN_IF_ERROR(console);
  ASSIGN_OR_RETURN(std::string pid_text, ReadFile(pid_file, 64, Symlinks::kRefuse));
  int pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(pid_text), &pid) || pid <= 1) {
    return absl::InternalError(absl::StrCat("crun ", what, ": bad pid file '", pid_text, "'"));
  }
  launch.pid = pid;
  return launch;
}

absl::StatusOr<Crun::Launch> Crun::Create(
    const std::string& id, const std::string& bundle, const CrunStdio& stdio,
    const std::function<absl::Status(const std::function<bool()>&)>& receive_console) {
  std::string pid_file = absl::StrCat(bundle, "/init.pid");
  std::string log_file = absl::StrCat(bundle, "/crun-create.log");
  return Launch_(CreateArgs(id, bundle, pid_file, log_file, stdio.console_socket),
                 absl::StrCat("create ", id), pid_file, log_file, stdio, receive_console);
}

absl::Status Crun::Start(const std::string& id) {
  std::vector<std::string> args = GlobalArgs("");
  args.insert(args.end(), {"start", id});
  return RunSimple(std::move(args)).status();
}

absl::StatusOr<Crun::Launch> Crun::Exec(
    const std::string& id, const std::string& bundle, const std::string& process_file,
    const std::string& exec_id, const CrunStdio& stdio,
    const std::function<absl::Status(const std::function<bool()>&)>& receive_console) {
  std::string pid_file = absl::StrCat(bundle, "/exec-", exec_id, ".pid");
  std::string log_file = absl::StrCat(bundle, "/crun-exec-", exec_id, ".log");
  auto launch = Launch_(ExecArgs(id, process_file, pid_file, log_file, stdio.console_socket),
                        absl::StrCat("exec ", id, " ", exec_id), pid_file, log_file, stdio,
                        receive_console);
  ::unlink(log_file.c_str());
  return launch;
}

absl::Status Crun::Kill(const std::string& id, int signal, bool all) {
  return RunSimple(KillArgs(id, signal, all)).status();
}

absl::Status Crun::Pause(const std::string& id) {
  std::vector<std::string> args = GlobalArgs("");
  args.insert(args.end(), {"pause", id});
  return RunSimple(std::move(args)).status();
}

absl::Status Crun::Resume(const std::string& id) {
  std::vector<std::string> args = GlobalArgs("");
  args.insert(args.end(), {"resume", id});
  return RunSimple(std::move(args)).status();
}

absl::Status Crun::Delete(const std::string& id, bool force) {
  std::vector<std::string> args = GlobalArgs("");
  args.push_back("delete");
  if (force) args.push_back("--force");
  args.push_back(id);
  return RunSimple(std::move(args)).status();
}

absl::Status Crun::Update(const std::string& id, const std::string& resources_file) {
  std::vector<std::string> args = GlobalArgs("");
  args.insert(args.end(), {"update", "--resources", resources_file, id});
  return RunSimple(std::move(args)).status();
}

absl::StatusOr<std::vector<pid_t>> Crun::Ps(const std::string& id) {
  std::vector<std::string> args = GlobalArgs("");
  args.insert(args.end(), {"ps", "--format", "json", id});
  ASSIGN_OR_RETURN(std::string out, RunSimple(std::move(args)));
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson("crun ps output", out));
  std::vector<pid_t> pids;
  if (!j.is_array()) return absl::InternalError("crun ps: not a JSON array");
  for (const auto& e : j) {
    if (e.is_number_integer()) pids.push_back(e.get<pid_t>());
  }
  return pids;
}

}  // namespace cloak::agent
