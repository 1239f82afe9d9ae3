#include "agent/process_io.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cloak::agent {

bool OutputBuffer::Append(absl::string_view data) {
  while (!data.empty()) {
    absl::MutexLock lock(&mu_);
    auto has_room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return abandoned_ || data_.size() < capacity_;
    };
    mu_.Await(absl::Condition(&has_room));
    if (abandoned_) return false;
    size_t n = std::min(data.size(), capacity_ - data_.size());
    data_.insert(data_.end(), data.begin(), data.begin() + n);
    data.remove_prefix(n);
  }
  return true;
}

void OutputBuffer::MarkEof() {
  absl::MutexLock lock(&mu_);
  eof_ = true;
}

OutputBuffer::ReadResult OutputBuffer::Read(size_t max, absl::Duration timeout, std::string* out) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !data_.empty() || eof_ || abandoned_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (!data_.empty()) {
    size_t n = std::min(max, data_.size());
    out->assign(data_.begin(), data_.begin() + n);
    data_.erase(data_.begin(), data_.begin() + n);
    return ReadResult::kData;
  }
  if (eof_ || abandoned_) return ReadResult::kEof;
  return ReadResult::kTimeout;
}

bool OutputBuffer::AcquireReader() {
  absl::MutexLock lock(&mu_);
  if (reader_) return false;
  reader_ = true;
  return true;
}

void OutputBuffer::ReleaseReader() {
  absl::MutexLock lock(&mu_);
  reader_ = false;
}

void OutputBuffer::Abandon() {
  absl::MutexLock lock(&mu_);
  abandoned_ = true;
  data_.clear();
}

bool OutputBuffer::eof_drained() {
  absl::MutexLock lock(&mu_);
  return (eof_ || abandoned_) && data_.empty();
}

absl::StatusOr<std::unique_ptr<ProcessIo>> ProcessIo::Create(const StdioPlan& plan) {
  std::unique_ptr<ProcessIo> io(new ProcessIo(plan));
  if (plan.terminal) return io;
  int p[2];
  if (plan.stdin) {
    if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe2 stdin");
    io->child_stdin_.Reset(p[0]);
    absl::MutexLock lock(&io->stdin_mu_);
    io->stdin_write_.Reset(p[1]);
    RETURN_IF_ERROR(SetNonBlocking(p[1], true));
  }
  if (plan.stdout) {
    if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe2 stdout");
    io->stdout_read_.Reset(p[0]);
    io->child_stdout_.Reset(p[1]);
  }
  if (plan.stderr) {
    if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe2 stderr");
    io->stderr_read_.Reset(p[0]);
    io->child_stderr_.Reset(p[1]);
  }
  return io;
}

ProcessIo::~ProcessIo() { Shutdown(); }

void ProcessIo::CloseChildEnds() {
  child_stdin_.Reset();
  child_stdout_.Reset();
  child_stderr_.Reset();
}

absl::Status ProcessIo::AttachPty(UniqueFd master) {
  if (!plan_.terminal) return absl::InternalError("AttachPty without a terminal");
  RETURN_IF_ERROR(SetCloexec(master.get(), true));
  int writer = ::fcntl(master.get(), F_DUPFD_CLOEXEC, 3);
  if (writer < 0) return ErrnoError(errno, "dup pty master");
  RETURN_IF_ERROR(SetNonBlocking(writer, true));
  {
    absl::MutexLock lock(&stdin_mu_);
    stdin_write_.Reset(writer);
  }
  pty_master_ = std::move(master);
  if (plan_.width > 0 && plan_.height > 0) RETURN_IF_ERROR(Resize(plan_.width, plan_.height));
  return absl::OkStatus();
}

void ProcessIo::StartReaders() {
  if (plan_.terminal) {
    if (pty_master_) {
      stdout_thread_ = std::thread([this] { ReaderLoop(pty_master_.get(), &stdout_); });
    } else {
      stdout_.MarkEof();
    }
    stderr_.MarkEof();
    return;
  }
  if (stdout_read_) {
    stdout_thread_ = std::thread([this] { ReaderLoop(stdout_read_.get(), &stdout_); });
  } else {
    stdout_.MarkEof();
  }
  if (stderr_read_) {
    stderr_thread_ = std::thread([this] { ReaderLoop(stderr_read_.get(), &stderr_); });
  } else {
    stderr_.MarkEof();
  }
}

void ProcessIo::ReaderLoop(int fd, OutputBuffer* buffer) {
  char buf[32 * 1024];
  while (!stopping_.load()) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = ::poll(&p, 1, 200);  // wakes to notice Shutdown()
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;  // EOF, or EIO once a pty's last slave closed
    if (!buffer->Append(absl::string_view(buf, static_cast<size_t>(n)))) break;
  }
  buffer->MarkEof();
}

absl::StatusOr<size_t> ProcessIo::WriteStdin(absl::string_view data, absl::Time deadline) {
  if (data.size() > kMaxStdinWrite) {
    return absl::InvalidArgumentError(absl::StrCat("stdin write larger than ", kMaxStdinWrite));
  }
  absl::MutexLock lock(&stdin_mu_);
  if (!plan_.stdin && !plan_.terminal) {
    return absl::FailedPreconditionError("process has no stdin");
  }
  if (stdin_closed_ || !stdin_write_) return absl::FailedPreconditionError("stdin is closed");
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(stdin_write_.get(), data.data() + written, data.size() - written);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      struct pollfd p = {stdin_write_.get(), POLLOUT, 0};
      int ms = static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1000));
      ::poll(&p, 1, ms);
      continue;
    }
    if (written > 0) break;
    if (errno == EPIPE || errno == EIO) {
      return absl::FailedPreconditionError("the process closed its stdin");
    }
    return ErrnoError(errno, "write stdin");
  }
  if (written == 0 && !data.empty()) {
    return absl::DeadlineExceededError("stdin is full (the process does not read)");
  }
  return written;
}

absl::Status ProcessIo::CloseStdin() {
  absl::MutexLock lock(&stdin_mu_);
  if (stdin_closed_) return absl::OkStatus();
  stdin_closed_ = true;
  if (plan_.terminal) {
    if (stdin_write_) {
      char eof = 0x04;  // VEOF in canonical mode
      (void)!::write(stdin_write_.get(), &eof, 1);
    }
    return absl::OkStatus();
  }
  stdin_write_.Reset();
  return absl::OkStatus();
}

absl::Status ProcessIo::Resize(uint32_t width, uint32_t height) {
  if (!plan_.terminal || !pty_master_) {
    return absl::FailedPreconditionError("process has no terminal");
  }
  // 0x0 is what a terminal without a size reports (as script(1) gives);
  // the kernel takes it, and so does runc's shim.
  if (width > 0xFFFF || height > 0xFFFF) {
    return absl::InvalidArgumentError("terminal size must be 0..65535");
  }
  struct winsize ws;
  std::memset(&ws, 0, sizeof(ws));
  ws.ws_col = static_cast<unsigned short>(width);
  ws.ws_row = static_cast<unsigned short>(height);
  if (::ioctl(pty_master_.get(), TIOCSWINSZ, &ws) != 0) return ErrnoError(errno, "TIOCSWINSZ");
  return absl::OkStatus();
}

void ProcessIo::Shutdown() {
  stopping_ = true;
  stdout_.Abandon();
  stderr_.Abandon();
  if (stdout_thread_.joinable()) stdout_thread_.join();
  if (stderr_thread_.joinable()) stderr_thread_.join();
}

absl::StatusOr<UniqueFd> ListenConsoleSocket(const std::string& path) {
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InternalError(absl::StrCat("console socket path too long: ", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(errno, "socket");
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoError(errno, "bind ", path);
  }
  ::chmod(path.c_str(), 0600);
  if (::listen(fd.get(), 1) != 0) return ErrnoError(errno, "listen ", path);
  return fd;
}

absl::StatusOr<UniqueFd> ReceivePtyMaster(int listen_fd, absl::Time deadline,
                                          const std::function<bool()>& gave_up) {
  UniqueFd conn;
  while (!conn) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError("crun did not send the terminal");
    }
    struct pollfd p = {listen_fd, POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    if (r > 0) {
      conn.Reset(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn && errno != EINTR && errno != EAGAIN) return ErrnoError(errno, "accept console");
    } else if (gave_up()) {
      return absl::FailedPreconditionError("crun ended without sending the terminal");
    }
  }
  RETURN_IF_ERROR(WaitReadable(conn.get(), std::max(deadline - absl::Now(), absl::Milliseconds(1))));
  char data[256];
  struct iovec iov = {data, sizeof(data)};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  struct msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = ::recvmsg(conn.get(), &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return ErrnoError(errno, "recvmsg console");
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
      return UniqueFd(fd);
    }
  }
  return absl::InternalError("console socket message carried no fd");
}

}  // namespace cloak::agent
