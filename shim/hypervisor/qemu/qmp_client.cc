#include "shim/hypervisor/qemu/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace cloak::shim::hypervisor {
namespace {

using json = nlohmann::json;

constexpr absl::Duration kConnectRetryInterval = absl::Milliseconds(10);

// Quoted excerpt of untrusted text for an error message.
std::string Excerpt(absl::string_view text) {
  constexpr size_t kMax = 120;
  std::string out;
  for (char ch : text.substr(0, kMax)) {
    out.push_back(static_cast<unsigned char>(ch) < 0x20 ? '?' : ch);
  }
  if (text.size() > kMax) out += "...";
  return absl::StrCat("\"", out, "\"");
}

absl::Status StatusFromQmpError(absl::string_view name, absl::string_view command,
                                const json& error) {
  std::string cls = "?";
  std::string desc;
  if (error.is_object()) {
    if (auto it = error.find("class"); it != error.end() && it->is_string()) cls = *it;
    if (auto it = error.find("desc"); it != error.end() && it->is_string()) desc = *it;
  }
  std::string message =
      absl::StrCat("QMP ", command, " on ", name, " failed: ", cls, ": ", desc);
  if (cls == "CommandNotFound") return absl::UnimplementedError(message);
  if (cls == "GenericError") return absl::FailedPreconditionError(message);
  if (cls == "DeviceNotFound") return absl::NotFoundError(message);
  return absl::InternalError(message);
}

absl::Time EventTime(const json& message) {
  auto it = message.find("timestamp");
  if (it == message.end() || !it->is_object()) return absl::Now();
  int64_t seconds = it->value("seconds", int64_t{0});
  int64_t micros = it->value("microseconds", int64_t{0});
  return absl::FromUnixSeconds(seconds) + absl::Microseconds(micros);
}

}  // namespace

absl::StatusOr<std::unique_ptr<QmpClient>> QmpClient::Connect(
    const std::string& socket_path, absl::Time deadline, QmpEventCallback on_event,
    std::function<absl::Status()> keep_trying) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("QMP socket path ", socket_path, " is ",
                                                   socket_path.size(),
                                                   " bytes; the limit is 107"));
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  int last_errno = 0;
  while (true) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return ErrnoError(errno, "socket for QMP ", socket_path);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      return FromFd(std::move(fd), socket_path, deadline, std::move(on_event));
    }
    last_errno = errno;
    if (last_errno != ENOENT && last_errno != ECONNREFUSED && last_errno != EINTR &&
        last_errno != EAGAIN) {
      return ErrnoError(last_errno, "connect to QMP socket ", socket_path);
    }
    if (keep_trying) RETURN_IF_ERROR(keep_trying());
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("QMP socket ", socket_path, " accepted no connection before the deadline (",
                       std::strerror(last_errno), "): QEMU did not come up in time"));
    }
    absl::SleepFor(kConnectRetryInterval);
  }
}

absl::StatusOr<std::unique_ptr<QmpClient>> QmpClient::FromFd(UniqueFd fd, std::string name,
                                                             absl::Time deadline,
                                                             QmpEventCallback on_event) {
  std::unique_ptr<QmpClient> client(
      new QmpClient(std::move(fd), std::move(name), std::move(on_event)));
  RETURN_IF_ERROR(client->Handshake(deadline));
  client->reader_ = std::thread([c = client.get()] { c->ReaderLoop(); });
  return client;
}

QmpClient::~QmpClient() {
  if (fd_) ::shutdown(fd_.get(), SHUT_RDWR);
  if (reader_.joinable()) reader_.join();
  CloseWith(absl::CancelledError(absl::StrCat("QMP client for ", name_, " closed")));
}

absl::Status QmpClient::Handshake(absl::Time deadline) {
  ASSIGN_OR_RETURN(std::string greeting_line, ReadLine(deadline));
  json greeting = json::parse(greeting_line, nullptr, /*allow_exceptions=*/false);
  if (greeting.is_discarded() || !greeting.is_object() || !greeting.contains("QMP")) {
    return absl::DataLossError(absl::StrCat("QMP greeting from ", name_,
                                            " is not a QMP greeting: ", Excerpt(greeting_line)));
  }
  const json* version = &greeting["QMP"];
  if (version->is_object() && version->contains("version") &&
      (*version)["version"].is_object() && (*version)["version"].contains("qemu")) {
    const json& q = (*version)["version"]["qemu"];
    if (q.is_object()) {
      qemu_version_ = absl::StrCat(q.value("major", 0), ".", q.value("minor", 0), ".",
                                   q.value("micro", 0));
    }
  }
  RETURN_IF_ERROR(SendLine(R"({"execute":"qmp_capabilities","id":0})", deadline));
  while (true) {
    ASSIGN_OR_RETURN(std::string line, ReadLine(deadline));
    json reply = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (reply.is_discarded() || !reply.is_object()) {
      return absl::DataLossError(absl::StrCat("malformed JSON from QEMU on ", name_,
                                              " during qmp_capabilities: ", Excerpt(line)));
    }
    if (reply.contains("error")) {
      return StatusFromQmpError(name_, "qmp_capabilities", reply["error"]);
    }
    if (reply.contains("return")) return absl::OkStatus();
    // Anything else (an early event) is ignored.
  }
}

absl::StatusOr<std::string> QmpClient::ReadLine(absl::Time deadline) {
  while (true) {
    size_t newline = read_buffer_.find('\n');
    if (newline != std::string::npos && newline > kMaxQmpMessageBytes) {
      return absl::DataLossError(absl::StrCat("QMP message from ", name_, " exceeds ",
                                              kMaxQmpMessageBytes, " bytes"));
    }
    if (newline != std::string::npos) {
      std::string line = read_buffer_.substr(0, newline);
      read_buffer_.erase(0, newline + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      return line;
    }
    if (read_buffer_.size() > kMaxQmpMessageBytes) {
      return absl::DataLossError(absl::StrCat("QMP message from ", name_, " exceeds ",
                                              kMaxQmpMessageBytes, " bytes without a newline"));
    }
    if (deadline != absl::InfiniteFuture()) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError(
            absl::StrCat("no complete QMP message from ", name_, " before the deadline"));
      }
      absl::Status ready = WaitReadable(fd_.get(), left);
      if (!ready.ok()) {
        return Annotate(ready, absl::StrCat("waiting for QMP message from ", name_));
      }
    }
    char buf[4096];
    ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return absl::UnavailableError(
          absl::StrCat("QMP connection to ", name_, " failed: ", std::strerror(errno)));
    }
    if (n == 0) {
      return absl::UnavailableError(absl::StrCat("QMP connection to ", name_,
                                                 " closed by QEMU (did the VM exit?)"));
    }
    read_buffer_.append(buf, static_cast<size_t>(n));
  }
}

absl::Status QmpClient::SendLine(const std::string& line, absl::Time deadline) {
  std::string data = line + "\n";
  absl::MutexLock lock(&write_mu_);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_.get(), data.data() + off, data.size() - off,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError(
            absl::StrCat("QMP socket ", name_, " not writable before the deadline"));
      }
      pollfd pfd{fd_.get(), POLLOUT, 0};
      int ms = static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 60000));
      ::poll(&pfd, 1, ms);
      continue;
    }
    return absl::UnavailableError(absl::StrCat("QMP connection to ", name_,
                                               " failed on send: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void QmpClient::ReaderLoop() {
  while (true) {
    absl::StatusOr<std::string> line = ReadLine(absl::InfiniteFuture());
    if (!line.ok()) {
      CloseWith(line.status());
      return;
    }
    json message = json::parse(*line, nullptr, /*allow_exceptions=*/false);
    if (message.is_discarded() || !message.is_object()) {
      Logger("qmp")->warn("malformed JSON from QEMU on {}: {}", name_, Excerpt(*line));
      CloseWith(absl::DataLossError(
          absl::StrCat("malformed JSON from QEMU on ", name_, ": ", Excerpt(*line),
                       "; the QMP connection was closed")));
      return;
    }
    Dispatch(message);
  }
}

void QmpClient::Dispatch(const json& message) {
  if (auto it = message.find("event"); it != message.end()) {
    QmpEvent event;
    event.name = it->is_string() ? it->get<std::string>() : "?";
    if (auto data = message.find("data"); data != message.end()) event.data = *data;
    event.timestamp = EventTime(message);
    Logger("qmp")->debug("{}: event {}", name_, event.name);
    // Callback first: whoever sees the event in the queue knows the
    // callback has run.
    if (on_event_) on_event_(event);
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
    while (events_.size() > kMaxQueuedQmpEvents) events_.pop_front();
    cv_.SignalAll();
    return;
  }
  auto id_it = message.find("id");
  if (id_it == message.end() || !id_it->is_number_unsigned()) {
    Logger("qmp")->debug("{}: reply without a known id ignored", name_);
    return;
  }
  const uint64_t id = id_it->get<uint64_t>();
  absl::MutexLock lock(&mu_);
  auto pending = pending_.find(id);
  if (pending == pending_.end()) return;  // its caller timed out
  if (auto ret = message.find("return"); ret != message.end()) {
    pending->second->result = *ret;
  } else if (auto err = message.find("error"); err != message.end()) {
    pending->second->result = StatusFromQmpError(name_, pending->second->command, *err);
  } else {
    pending->second->result = absl::DataLossError(
        absl::StrCat("QMP reply from ", name_, " has neither return nor error"));
  }
  pending_.erase(pending);
  cv_.SignalAll();
}

void QmpClient::CloseWith(absl::Status why) {
  absl::MutexLock lock(&mu_);
  if (closed_.ok()) closed_ = std::move(why);
  for (auto& [id, pending] : pending_) pending->result = closed_;
  pending_.clear();
  cv_.SignalAll();
}

absl::StatusOr<json> QmpClient::Execute(absl::string_view command, const json& arguments,
                                        absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  Pending pending;
  pending.command = std::string(command);
  uint64_t id;
  {
    absl::MutexLock lock(&mu_);
    if (!closed_.ok()) return closed_;
    id = next_id_++;
    pending_[id] = &pending;
  }
  json request = {{"execute", std::string(command)}, {"id", id}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  absl::Status sent = SendLine(request.dump(), deadline);
  absl::MutexLock lock(&mu_);
  if (!sent.ok()) {
    pending_.erase(id);
    return Annotate(sent, absl::StrCat("QMP ", command));
  }
  while (!pending.result.has_value()) {
    if (cv_.WaitWithDeadline(&mu_, deadline) && !pending.result.has_value()) {
      pending_.erase(id);
      return absl::DeadlineExceededError(
          absl::StrCat("QMP ", command, " on ", name_, " got no answer within ",
                       absl::FormatDuration(timeout), ": QEMU is unresponsive"));
    }
  }
  return std::move(*pending.result);
}

absl::StatusOr<QmpStatus> QmpClient::QueryStatus(absl::Duration timeout) {
  ASSIGN_OR_RETURN(json ret, Execute("query-status", nullptr, timeout));
  if (!ret.is_object() || !ret.contains("status") || !ret["status"].is_string()) {
    return absl::DataLossError(
        absl::StrCat("query-status on ", name_, " returned no status: ", Excerpt(ret.dump())));
  }
  QmpStatus status;
  status.status = ret["status"].get<std::string>();
  status.running = ret.value("running", false);
  return status;
}

absl::Status QmpClient::Stop(absl::Duration timeout) {
  return Execute("stop", nullptr, timeout).status();
}

absl::Status QmpClient::Cont(absl::Duration timeout) {
  return Execute("cont", nullptr, timeout).status();
}

absl::Status QmpClient::Quit(absl::Duration timeout) {
  absl::Status s = Execute("quit", nullptr, timeout).status();
  if (absl::IsUnavailable(s)) return absl::OkStatus();  // QEMU closed the socket first
  return s;
}

absl::Status QmpClient::SystemPowerdown(absl::Duration timeout) {
  return Execute("system_powerdown", nullptr, timeout).status();
}

std::deque<QmpEvent> QmpClient::TakeEvents() {
  absl::MutexLock lock(&mu_);
  return std::exchange(events_, {});
}

absl::StatusOr<QmpEvent> QmpClient::WaitForEvent(absl::string_view name, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (true) {
    auto it = std::find_if(events_.begin(), events_.end(),
                           [&](const QmpEvent& e) { return e.name == name; });
    if (it != events_.end()) {
      QmpEvent event = std::move(*it);
      events_.erase(it);
      return event;
    }
    if (!closed_.ok()) return closed_;
    if (cv_.WaitWithDeadline(&mu_, deadline)) {
      return absl::DeadlineExceededError(
          absl::StrCat("no ", name, " event from ", name_, " before the deadline"));
    }
  }
}

absl::Status QmpClient::Health() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

}  // namespace cloak::shim::hypervisor
