// Test skips that CI cannot miss (docs/development.md, "Skipped tests").
//
//   if (::geteuid() != 0) CLOAK_SKIP() << "needs root";
//   if (no_vsock) CLOAK_SKIP_ALLOWED_ON_CI() << why;   // listed in docs/development.md
//
// CLOAK_SKIP() is GTEST_SKIP() on a developer's machine; under CI=true it
// fails the test instead, because what it skips for (root, QEMU, containerd,
// a tool scripts/install-deps installs, a built guest image) must be there
// on the CI machine. CLOAK_SKIP_ALLOWED_ON_CI() skips under CI too, but only
// for the tests named in kSkipsAllowedOnCi (and docs/development.md), whose
// reason is a property of the CI machine itself (no /dev/kvm, no vsock
// device, a runc that cannot run there); any other test that uses it fails
// under CI, so the list stays exact.
#ifndef CLOAK_TESTS_UTIL_SKIP_H_
#define CLOAK_TESTS_UTIL_SKIP_H_

#include <cstdlib>
#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace cloak::testutil {

// "<Suite>.<Test>" of the skips docs/development.md lists, nothing else.
inline constexpr const char* kSkipsAllowedOnCi[] = {
    "VsockTransportTest.LoopbackRoundTrip",
    "HostCapabilitiesTest.KvmNotOpenable",
    "SnapshotterCriE2eTest.RuncPodWithAnOrdinaryImageRuns",
};

inline bool OnCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::strcmp(ci, "true") == 0;
}

inline std::string CurrentTestName() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return "";
  return std::string(info->test_suite_name()) + "." + info->name();
}

inline bool SkipAllowedOnCi() {
  const std::string name = CurrentTestName();
  for (const char* allowed : kSkipsAllowedOnCi) {
    if (name == allowed) return true;
  }
  return false;
}

// How a skip is reported: a skip, or under CI=true (unless `allowed`) a
// fatal failure.
inline ::testing::TestPartResult::Type SkipResult(bool allowed) {
  return OnCi() && !allowed ? ::testing::TestPartResult::kFatalFailure
                            : ::testing::TestPartResult::kSkip;
}
inline const char* SkipPrefix(bool allowed) {
  return OnCi() && !allowed
             ? "CI=true: this test skipped, which must not happen on the CI machine (see "
               "docs/development.md, \"Skipped tests\"); skip reason"
             : "";
}

}  // namespace cloak::testutil

// Streams the reason like GTEST_SKIP(); returns from the current function.
#define CLOAK_SKIP_IMPL_(allowed)                                                          \
  return ::testing::internal::AssertHelper(::cloak::testutil::SkipResult(allowed), __FILE__, \
                                           __LINE__, ::cloak::testutil::SkipPrefix(allowed)) = \
             ::testing::Message()

#define CLOAK_SKIP() CLOAK_SKIP_IMPL_(false)
#define CLOAK_SKIP_ALLOWED_ON_CI() CLOAK_SKIP_IMPL_(::cloak::testutil::SkipAllowedOnCi())

#endif  // CLOAK_TESTS_UTIL_SKIP_H_
