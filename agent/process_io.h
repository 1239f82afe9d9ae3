// Stdio of one container process: stdout/stderr pipes (or a pty master)
// drained by reader threads into bounded buffers, and a stdin writer.
//
// No output is lost: when a buffer is full its reader stops reading, so the
// process blocks on write (backpressure) until the host reads. A stream ends
// for the host only after the pipe reached EOF and every buffered byte was
// handed out.
#ifndef CLOAK_AGENT_PROCESS_IO_H_
#define CLOAK_AGENT_PROCESS_IO_H_

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/fd.h"

namespace cloak::agent {

// Bytes kept per stream while nobody reads.
inline constexpr size_t kOutputBufferBytes = 1 << 20;
// Largest chunk handed to the host (OutputChunk.data).
inline constexpr size_t kMaxOutputChunk = 64 * 1024;
// Largest WriteStdin payload.
inline constexpr size_t kMaxStdinWrite = 1 << 20;

class OutputBuffer {
 public:
  explicit OutputBuffer(size_t capacity = kOutputBufferBytes) : capacity_(capacity) {}

  // Producer side. Blocks while the buffer is full, until there is room or
  // the buffer is abandoned (then the data is dropped). Returns false once
  // abandoned.
  bool Append(absl::string_view data);
  void MarkEof();

  enum class ReadResult { kData, kEof, kTimeout };
  // Consumer side: waits up to `timeout` for data; fills `out` with at most
  // `max` bytes. kEof once EOF was marked and the buffer is empty.
  ReadResult Read(size_t max, absl::Duration timeout, std::string* out);

  // Only one consumer at a time. False if another holds the stream.
  bool AcquireReader();
  void ReleaseReader();

  // Unblocks the producer for good; later appends are dropped.
  void Abandon();
  bool eof_drained();

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<char> data_ ABSL_GUARDED_BY(mu_);
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
  bool reader_ ABSL_GUARDED_BY(mu_) = false;
};

// Fds handed to crun for a process, and the agent's ends.
struct StdioPlan {
  bool stdin = false;
  bool stdout = false;
  bool stderr = false;
  bool terminal = false;
  uint32_t width = 0;
  uint32_t height = 0;
};

class ProcessIo {
 public:
  // Makes the pipes for `plan` (nothing for a terminal: the pty master comes
  // later through AttachPty).
  static absl::StatusOr<std::unique_ptr<ProcessIo>> Create(const StdioPlan& plan);
  ~ProcessIo();

  // The process's ends (-1: /dev/null). Close them with CloseChildEnds()
  // once crun has them.
  int child_stdin() const { return child_stdin_.get(); }
  int child_stdout() const { return child_stdout_.get(); }
  int child_stderr() const { return child_stderr_.get(); }
  void CloseChildEnds();

  // Takes the pty master received from crun's console socket.
  absl::Status AttachPty(UniqueFd master);
  // Starts the reader threads.
  void StartReaders();

  const StdioPlan& plan() const { return plan_; }
  // nullptr if the stream is not wired (stderr of a terminal process).
  OutputBuffer* stdout_buffer() { return plan_.stdout || plan_.terminal ? &stdout_ : nullptr; }
  OutputBuffer* stderr_buffer() { return plan_.stderr && !plan_.terminal ? &stderr_ : nullptr; }

  // Writes `data` to stdin, waiting for room until `deadline`. Returns the
  // bytes written (short only on deadline).
  absl::StatusOr<size_t> WriteStdin(absl::string_view data, absl::Time deadline);
  // Closes stdin (a terminal gets ^D, the terminal's end of file).
  absl::Status CloseStdin();
  absl::Status Resize(uint32_t width, uint32_t height);

  // Stops the readers and drops buffered output (container removed).
  void Shutdown();

 private:
  explicit ProcessIo(const StdioPlan& plan) : plan_(plan) {}
  void ReaderLoop(int fd, OutputBuffer* buffer);

  StdioPlan plan_;
  UniqueFd child_stdin_, child_stdout_, child_stderr_;
  UniqueFd stdout_read_, stderr_read_;
  UniqueFd pty_master_;
  absl::Mutex stdin_mu_;
  UniqueFd stdin_write_ ABSL_GUARDED_BY(stdin_mu_);
  bool stdin_closed_ ABSL_GUARDED_BY(stdin_mu_) = false;
  OutputBuffer stdout_;
  OutputBuffer stderr_;
  std::atomic<bool> stopping_{false};
  std::thread stdout_thread_, stderr_thread_;
};

// Listens on a unix socket at `path` for crun's --console-socket.
absl::StatusOr<UniqueFd> ListenConsoleSocket(const std::string& path);
// Accepts one connection on `listen_fd` and receives the pty master sent
// with SCM_RIGHTS. Polls `gave_up` between waits (e.g. crun exited) and
// returns DeadlineExceeded at `deadline`.
absl::StatusOr<UniqueFd> ReceivePtyMaster(int listen_fd, absl::Time deadline,
                                          const std::function<bool()>& gave_up);

}  // namespace cloak::agent

#endif  // CLOAK_AGENT_PROCESS_IO_H_
