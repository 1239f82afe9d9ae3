// Host side of a container process's stdio (docs/shim.md, "Contract: stdio"): containerd's
// fifos, `file://` and `binary://` log URIs, copied to and from the agent's
// streams.
//
//   ASSIGN_OR_RETURN(auto io, ProcessIo::Open(uris, {.container_id = id, .namespace_name = ns}));
//   io->StartOutput(StreamKind::kStdout, reader);   // ReadOutput from the agent
//   io->StartStdin(write, close);                   // WriteStdin / CloseStdin
//   ... process exits ...
//   io->WaitOutput(absl::Now() + kIoDrainTimeout);  // before the exit event
//   io->Close();
//
// Output is held until the client has a reader (docs/shim.md, "No output
// lost"): each output copier first opens its fifo O_WRONLY|O_NONBLOCK,
// retrying while Linux answers ENXIO (no reader yet), and only then reads
// the agent's stream, as runc's shim blocks on an O_WRONLY open before it
// copies. The wait runs on the copier's thread, never on a ttrpc thread,
// and ends when the copier is cancelled (WaitOutput's deadline, Close).
// Once a reader came the shim also keeps a read end of its own, so a
// client that goes away never makes a write fail with EPIPE. Writes poll
// for room and stop when cancelled. A path that is not a fifo is appended
// to as a file.
// stdin is opened O_RDONLY|O_NONBLOCK and polled: Linux reports POLLHUP on
// a fifo only after a writer came and went, so EOF is never seen before
// the client opened its end.
#ifndef CLOAK_SHIM_STDIO_H_
#define CLOAK_SHIM_STDIO_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/fd.h"
#include "common/process.h"
#include "shim/cancellation.h"

namespace cloak::shim {

// How long output may keep flowing after a process exited before the exit
// event is published anyway (a daemonised child may hold stdout open).
inline constexpr absl::Duration kIoDrainTimeout = absl::Seconds(10);
// binary:// loggers: time to signal readiness, and to finish after EOF.
inline constexpr absl::Duration kLoggerReadyTimeout = absl::Seconds(10);
inline constexpr absl::Duration kLoggerExitTimeout = absl::Seconds(12);

enum class StreamKind { kStdout, kStderr };

struct StdioUris {
  std::string stdin_uri;
  std::string stdout_uri;
  std::string stderr_uri;
  bool terminal = false;
};

// A parsed stdio URI.
struct StdioTarget {
  enum class Kind { kNone, kFifo, kFile, kBinary };
  Kind kind = Kind::kNone;
  std::string path;
  // binary://: logger arguments (each query key then its first value).
  std::vector<std::string> args;
};
// Pure. "" → kNone; no scheme or fifo:// → kFifo; file:// and binary://
// need an absolute path. InvalidArgument for any other scheme.
absl::StatusOr<StdioTarget> ParseStdioUri(absl::string_view uri);

// Reads one agent output stream, handing each chunk to `sink` until the
// stream ends (OK), fails, or `cancel` fires. `sink` returns false to stop.
using OutputReader = std::function<absl::Status(
    const std::function<bool(absl::string_view)>& sink, Cancellation& cancel)>;
using StdinWriter = std::function<absl::Status(absl::string_view data)>;
using StdinCloser = std::function<absl::Status()>;

class ProcessIo {
 public:
  struct Context {
    std::string container_id;
    std::string namespace_name;
  };

  // Opens every destination (and starts a binary:// logger). With no URIs
  // at all (CRI's null IO) nothing is opened.
  static absl::StatusOr<std::unique_ptr<ProcessIo>> Open(const StdioUris& uris,
                                                         const Context& context);
  ~ProcessIo();
  ProcessIo(const ProcessIo&) = delete;
  ProcessIo& operator=(const ProcessIo&) = delete;

  const StdioUris& uris() const { return uris_; }
  bool has_stdin() const { return stdin_fd_.valid(); }

  // Copies `reader`'s chunks to the stream's destination on a new thread.
  void StartOutput(StreamKind stream, OutputReader reader);
  // Copies the stdin fifo to `write` on a new thread; `close` runs once, at
  // EOF or CloseStdin().
  void StartStdin(StdinWriter write, StdinCloser close);

  // Waits until every output copier finished (its stream ended) or
  // `deadline` passes; then cancels what is left and closes the output
  // destinations, so the client's readers see EOF (containerd's client waits
  // for that before it deletes the task). True if all ended.
  bool WaitOutput(absl::Time deadline);
  // CloseIO(stdin): stop copying stdin and close the process's stdin.
  void CloseStdin();
  // Stops all copying, joins the threads, closes the fds and waits for a
  // logger to exit. Idempotent.
  void Close();

 private:
  // A client's output fifo, opened by the first copier that writes to it.
  class FifoOutput;
  struct Destination {
    int fd = -1;                          // file, logger pipe
    std::shared_ptr<FifoOutput> fifo;     // or a fifo opened once a reader exists
    bool valid() const { return fd >= 0 || fifo != nullptr; }
  };
  struct Copier {
    std::thread thread;
    std::shared_ptr<Cancellation> cancel;
    std::shared_ptr<absl::Notification> done;
  };

  explicit ProcessIo(StdioUris uris) : uris_(std::move(uris)) {}
  absl::Status OpenOutputs(const Context& context) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StartLogger(const StdioTarget& target, const Context& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cancels and joins the copiers, then closes the output fds and waits for
  // the logger.
  void FinishOutputs();
  void StdinLoop(StdinWriter write, StdinCloser close);
  // Writes all of `data` to a non-blocking fd, polling for room.
  static absl::Status WriteOutput(int fd, absl::string_view data, const Cancellation& cancel);

  const StdioUris uris_;
  // Serialises FinishOutputs: fds close only after their copiers joined.
  absl::Mutex finish_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex mu_;
  // Output destinations (a shared fd appears once); closed by WaitOutput.
  std::vector<UniqueFd> owned_fds_ ABSL_GUARDED_BY(mu_);
  Destination stdout_ ABSL_GUARDED_BY(mu_);
  Destination stderr_ ABSL_GUARDED_BY(mu_);
  UniqueFd stdin_fd_;
  std::optional<Subprocess> logger_;

  std::vector<Copier> copiers_ ABSL_GUARDED_BY(mu_);
  std::thread stdin_thread_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // CloseStdin: forward what is already in the fifo, then close.
  std::atomic<bool> stdin_close_requested_{false};
  // Close: stop at once.
  std::atomic<bool> stdin_abort_{false};
};

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_STDIO_H_
