// CriEnvFixture: a GoogleTest fixture giving each test a fresh CriEnv
// (cri_env.h), skipped with the reason when a prerequisite is missing, and
// the tail of containerd's log and the VMs' consoles printed when the test
// failed.
#ifndef CLOAK_TESTS_CRI_CRI_FIXTURE_H_
#define CLOAK_TESTS_CRI_CRI_FIXTURE_H_

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/cli/cri/cri_env.h"
#include "tests/util/host.h"
#include "tests/util/skip.h"

namespace cloak::cri {

class CriEnvFixture : public ::testing::Test {
 protected:
  // Overridden by fixtures that want CNI or another guest size.
  virtual CriEnvOptions Options() const { return CriEnvOptions::ForThisBuild(); }

  void SetUp() override {
    const CriEnvOptions options = Options();
    if (std::string missing = CriEnv::MissingPrerequisite(options); !missing.empty()) {
      CLOAK_SKIP() << missing;
    }
    auto env = CriEnv::Start(options);
    ASSERT_TRUE(env.ok()) << env.status();
    env_ = std::move(*env);
    client_ = &env_->client();
  }

  void TearDown() override {
    if (env_ && HasFailure()) {
      std::cerr << "---- containerd log (tail) ----\n" << env_->ContainerdLogTail() << "\n";
      std::error_code ec;
      const auto skip = std::filesystem::directory_options::skip_permission_denied;
      std::filesystem::recursive_directory_iterator it(env_->dir() + "/run", skip, ec), end;
      for (; !ec && it != end; it.increment(ec)) {
        if (it->path().filename() == "console.log") {
          std::cerr << "---- " << it->path().string() << " ----\n"
                    << testutil::Slurp(it->path().string()) << "\n";
        }
      }
    }
    env_.reset();
  }

  std::unique_ptr<CriEnv> env_;
  Client* client_ = nullptr;
};

}  // namespace cloak::cri

#endif  // CLOAK_TESTS_CRI_CRI_FIXTURE_H_
