// ThreadSanitizer builds only (CLOAK_SANITIZE=thread; tests/util/CMakeLists.txt
// links this object into every test binary of such a build).
//
// Debian's Abseil is not built with ThreadSanitizer, so absl::Mutex's lock and
// unlock are invisible to it: they spin on atomics and sleep in futex calls
// inside an uninstrumented library. Every access guarded by an absl::Mutex
// would then be reported as a data race. This file defines the out-of-line
// entry points of absl::Mutex and absl::CondVar in the test binary. The
// executable's definitions take precedence over the shared library's (ELF
// symbol interposition), also for the calls gRPC and Abseil make themselves.
// Each one tells ThreadSanitizer about the acquire or release with the
// __tsan_mutex_* annotations, exactly where an instrumented Abseil would, and
// calls the library's own function, found with dlsym(RTLD_NEXT).
//
// Between a pre_ and a post_ annotation ThreadSanitizer ignores the thread's
// memory accesses; that covers the Condition functions Abseil evaluates on
// whichever thread releases or acquires the mutex.

#include <dlfcn.h>
#include <link.h>
#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>
#include <type_traits>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#if !defined(__SANITIZE_THREAD__)
#error "tests/util/tsan_absl_mutex.cc belongs in ThreadSanitizer builds only"
#endif
#if !ABSL_OPTION_USE_INLINE_NAMESPACE
#error "the mangled names below assume Abseil's inline namespace"
#endif

namespace {

#define CLOAK_TSAN_STR2(x) #x
#define CLOAK_TSAN_STR(x) CLOAK_TSAN_STR2(x)

// The library's own definition of `_ZN[K]4absl<inline namespace><rest>`
// (K for a const member function).
template <typename Fn>
Fn Real(const char* rest, bool const_member = false) {
  const char* ns = CLOAK_TSAN_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(const_member ? "_ZNK4absl" : "_ZN4absl") +
                           std::to_string(std::strlen(ns)) + ns + std::string(rest);
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found in the Abseil libraries: %s\n",
                 name.c_str(), dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

// Abseil keeps the whole mutex state in one word; bit 3 (kMuWriter) is set
// while it is held exclusively. A wait on a mutex held shared must be
// annotated as a read unlock and lock.
unsigned HeldFlags(const absl::Mutex* mu) {
  static_assert(sizeof(absl::Mutex) == sizeof(std::atomic<intptr_t>));
  intptr_t word = 0;
  std::memcpy(&word, static_cast<const void*>(mu), sizeof(word));
  return (word & 0x0008) != 0 ? 0u : __tsan_mutex_read_lock;
}

// Whether `pc` is in the test binary itself (Cloak's code and the test's).
// gRPC's own mutexes are annotated as plain acquire and release instead: they
// guard gRPC's uninstrumented state, and gRPC hands objects between its
// threads through atomics ThreadSanitizer cannot see, so a lock annotation's
// access to such a mutex would be reported as racing with its allocation.
bool InMainProgram(const void* pc) {
  // Never destroyed: gRPC's threads still lock mutexes while exit runs.
  static const auto* ranges = [] {
    auto* out = new std::vector<std::pair<uintptr_t, uintptr_t>>;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* data) {
          auto* r = static_cast<std::vector<std::pair<uintptr_t, uintptr_t>>*>(data);
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
            const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
            r->emplace_back(start, start + ph.p_memsz);
          }
          return 1;  // the first object is the main program
        },
        out);
    return out;
  }();
  const auto a = reinterpret_cast<uintptr_t>(pc);
  for (const auto& [start, end] : *ranges) {
    if (a >= start && a < end) return true;
  }
  return false;
}

// Abseil's entry points call one another (WaitWithTimeout calls
// WaitWithDeadline, Notification::Notify calls Lock, ...), and those inner
// calls reach the definitions below too. Only the outermost call of a thread
// is annotated; inner ones go straight to the library.
thread_local int depth = 0;

class Outer {
 public:
  Outer() : outer_(depth++ == 0) {}
  ~Outer() { --depth; }
  Outer(const Outer&) = delete;
  Outer& operator=(const Outer&) = delete;
  bool outer() const { return outer_; }

 private:
  const bool outer_;
};

// call() acquires `mu`; flags say read or try lock, and a try lock's call()
// returns whether it got the mutex.
template <typename Call>
auto AroundLock(const void* caller, absl::Mutex* mu, unsigned flags, Call call) {
  Outer scope;
  if (!scope.outer()) return call();
  if (!InMainProgram(caller)) {
    auto result = call();
    bool got = true;
    if constexpr (std::is_same_v<decltype(result), bool>) {
      got = (flags & __tsan_mutex_try_lock) == 0 || result;
    }
    if (got) __tsan_acquire(mu);
    return result;
  }
  __tsan_mutex_pre_lock(mu, flags);
  auto result = call();
  unsigned post = flags;
  if constexpr (std::is_same_v<decltype(result), bool>) {
    if ((flags & __tsan_mutex_try_lock) != 0 && !result) post |= __tsan_mutex_try_lock_failed;
  }
  __tsan_mutex_post_lock(mu, post, 0);
  return result;
}

template <typename Call>
void AroundUnlock(const void* caller, absl::Mutex* mu, unsigned flags, Call call) {
  Outer scope;
  if (!scope.outer()) return call();
  if (!InMainProgram(caller)) {
    __tsan_release(mu);
    return call();
  }
  __tsan_mutex_pre_unlock(mu, flags);
  call();
  __tsan_mutex_post_unlock(mu, flags);
}

// A wait that releases the mutex and holds it again on return.
template <typename Call>
auto AroundWait(const void* caller, absl::Mutex* mu, Call call) {
  Outer scope;
  if (!scope.outer()) return call();
  if (!InMainProgram(caller)) {
    __tsan_release(mu);
    auto result = call();
    __tsan_acquire(mu);
    return result;
  }
  const unsigned flags = HeldFlags(mu);
  __tsan_mutex_pre_unlock(mu, flags);
  auto result = call();
  __tsan_mutex_post_unlock(mu, flags);
  __tsan_mutex_pre_lock(mu, flags);
  __tsan_mutex_post_lock(mu, flags, 0);
  return result;
}

// Abseil's own deadlock detection keeps a graph of mutexes under a spin lock
// ThreadSanitizer cannot see either; ThreadSanitizer finds lock-order
// inversions itself, so the graph is turned off.
const bool kDeadlockGraphOff = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

using Cond = const Condition&;

// Where the wrapped function was called from (see InMainProgram).
#define CLOAK_TSAN_CALLER __builtin_return_address(0)

Mutex::~Mutex() {
  static auto real = Real<void (*)(Mutex*)>("5MutexD2Ev");
  __tsan_mutex_destroy(this, __tsan_mutex_not_static);
  real(this);
}

void Mutex::Lock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex4LockEv");
  AroundLock(CLOAK_TSAN_CALLER, this, 0, [&] {
    real(this);
    return 0;
  });
}

void Mutex::ReaderLock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  AroundLock(CLOAK_TSAN_CALLER, this, __tsan_mutex_read_lock, [&] {
    real(this);
    return 0;
  });
}

bool Mutex::TryLock() {
  static auto real = Real<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  return AroundLock(CLOAK_TSAN_CALLER, this, __tsan_mutex_try_lock, [&] { return real(this); });
}

bool Mutex::ReaderTryLock() {
  static auto real = Real<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  return AroundLock(CLOAK_TSAN_CALLER, this, __tsan_mutex_try_read_lock, [&] { return real(this); });
}

void Mutex::Unlock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex6UnlockEv");
  AroundUnlock(CLOAK_TSAN_CALLER, this, 0, [&] { real(this); });
}

void Mutex::ReaderUnlock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  AroundUnlock(CLOAK_TSAN_CALLER, this, __tsan_mutex_read_lock, [&] { real(this); });
}

void Mutex::LockWhen(Cond cond) {
  static auto real = Real<void (*)(Mutex*, Cond)>("5Mutex8LockWhenERKNS0_9ConditionE");
  AroundLock(CLOAK_TSAN_CALLER, this, 0, [&] {
    real(this, cond);
    return 0;
  });
}

void Mutex::ReaderLockWhen(Cond cond) {
  static auto real =
      Real<void (*)(Mutex*, Cond)>("5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  AroundLock(CLOAK_TSAN_CALLER, this, __tsan_mutex_read_lock, [&] {
    real(this, cond);
    return 0;
  });
}

// The timed LockWhen variants hold the mutex on return whatever they return,
// so their bool is not a try lock's.
bool Mutex::LockWhenWithTimeout(Cond cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, Cond, Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return AroundLock(CLOAK_TSAN_CALLER, this, 0, [&] { return real(this, cond, timeout); });
}

bool Mutex::ReaderLockWhenWithTimeout(Cond cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, Cond, Duration)>(
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return AroundLock(CLOAK_TSAN_CALLER, this, __tsan_mutex_read_lock, [&] { return real(this, cond, timeout); });
}

bool Mutex::LockWhenWithDeadline(Cond cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, Cond, Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return AroundLock(CLOAK_TSAN_CALLER, this, 0, [&] { return real(this, cond, deadline); });
}

bool Mutex::ReaderLockWhenWithDeadline(Cond cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, Cond, Time)>(
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return AroundLock(CLOAK_TSAN_CALLER, this, __tsan_mutex_read_lock, [&] { return real(this, cond, deadline); });
}

void Mutex::Await(Cond cond) {
  static auto real = Real<void (*)(Mutex*, Cond)>("5Mutex5AwaitERKNS0_9ConditionE");
  AroundWait(CLOAK_TSAN_CALLER, this, [&] {
    real(this, cond);
    return 0;
  });
}

bool Mutex::AwaitWithTimeout(Cond cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, Cond, Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return AroundWait(CLOAK_TSAN_CALLER, this, [&] { return real(this, cond, timeout); });
}

bool Mutex::AwaitWithDeadline(Cond cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, Cond, Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return AroundWait(CLOAK_TSAN_CALLER, this, [&] { return real(this, cond, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  static auto real = Real<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  AroundWait(CLOAK_TSAN_CALLER, mu, [&] {
    real(this, mu);
    return 0;
  });
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  return AroundWait(CLOAK_TSAN_CALLER, mu, [&] { return real(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return AroundWait(CLOAK_TSAN_CALLER, mu, [&] { return real(this, mu, deadline); });
}

// Notification: a waiter that finds it notified without taking the mutex
// (an atomic flag inside the library) must still see what the notifier did
// before Notify(). HasBeenNotified() is inline and cannot be wrapped; Cloak
// uses it as a flag only.
void Notification::Notify() {
  static auto real = Real<void (*)(Notification*)>("12Notification6NotifyEv");
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  static auto real =
      Real<void (*)(const Notification*)>("12Notification19WaitForNotificationEv", true);
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static auto real = Real<bool (*)(const Notification*, Duration)>(
      "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE", true);
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static auto real = Real<bool (*)(const Notification*, Time)>(
      "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE", true);
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
