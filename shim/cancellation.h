// Cancellation: a one-shot signal that interrupts a blocking call in
// another thread (a gRPC stream, a poll loop). Thread-safe.
#ifndef CLOAK_SHIM_CANCELLATION_H_
#define CLOAK_SHIM_CANCELLATION_H_

#include <functional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace cloak::shim {

class Cancellation {
 public:
  // Marks the token cancelled and runs the hook (once), under the lock so
  // ClearHook never returns while the hook runs. Hooks must be quick and
  // must not call back into this object.
  void Cancel() {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    cancelled_ = true;
    if (hook_) hook_();
    hook_ = nullptr;
  }
  bool cancelled() const {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  // Installs the hook that interrupts the current blocking call; runs it at
  // once if already cancelled. Call ClearHook before the hook's captures die.
  void SetHook(std::function<void()> hook) {
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        hook_ = std::move(hook);
        return;
      }
    }
    hook();
  }
  void ClearHook() {
    absl::MutexLock lock(&mu_);
    hook_ = nullptr;
  }

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> hook_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cloak::shim

#endif  // CLOAK_SHIM_CANCELLATION_H_
