// cloak-cri reads a command line as crictl v1.26 does (cli/cri/args.h):
// flags stop at the first argument, "--" after it is an argument (crictl
// passes it on as the command's first word), "--" before it is dropped,
// short flags combine, values come as "-p X" or "--pod=X".
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/cri/args.h"
#include "cli/cri/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloak::cri {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<FlagSpec> kExecFlags = {
    {"interactive", 'i', false, "", ""},
    {"sync", 's', false, "", ""},
    {"timeout", 0, true, "value", ""},
    {"tty", 't', false, "", ""},
};

TEST(ParseFlags, DashDashAfterTheContainerIsTheCommandsFirstWord) {
  auto p = ParseFlags(kExecFlags, {"-s", "ctr", "--", "cat", "/marker"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->Bool("sync"));
  EXPECT_THAT(p->args, ElementsAre("ctr", "--", "cat", "/marker"));
}

TEST(ParseFlags, DashDashBeforeTheContainerEndsTheFlagsAndIsDropped) {
  auto p = ParseFlags(kExecFlags, {"-s", "--", "ctr", "cat", "/marker"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->args, ElementsAre("ctr", "cat", "/marker"));
  // After "--" even a word that looks like a flag is an argument.
  p = ParseFlags(kExecFlags, {"--", "-i", "ls"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->Bool("interactive"));
  EXPECT_THAT(p->args, ElementsAre("-i", "ls"));
}

TEST(ParseFlags, FlagsAfterTheFirstArgumentAreArguments) {
  auto p = ParseFlags(kExecFlags, {"ctr", "-i", "sh", "-c", "echo hi"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->Bool("interactive"));
  EXPECT_THAT(p->args, ElementsAre("ctr", "-i", "sh", "-c", "echo hi"));
}

TEST(ParseFlags, ShortFlagsCombine) {
  auto p = ParseFlags(kExecFlags, {"-it", "ctr", "sh"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->Bool("interactive"));
  EXPECT_TRUE(p->Bool("tty"));
  EXPECT_FALSE(p->Bool("sync"));
  EXPECT_THAT(p->args, ElementsAre("ctr", "sh"));
}

TEST(ParseFlags, ValuesSeparateOrWithEquals) {
  const std::vector<FlagSpec> ps = {{"pod", 'p', true, "value", ""}, {"all", 'a', false, "", ""}};
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"-p", "abc"}, {"--pod", "abc"}, {"--pod=abc"}, {"-pod=abc"}, {"-ap", "abc"}}) {
    auto p = ParseFlags(ps, argv);
    ASSERT_TRUE(p.ok()) << p.status() << " for " << argv[0];
    EXPECT_EQ(p->Get("pod"), "abc") << argv[0];
    EXPECT_TRUE(p->args.empty()) << argv[0];
  }
  // A value may start with a dash.
  auto p = ParseFlags(ps, {"-p", "-x"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->Get("pod"), "-x");
}

TEST(ParseFlags, BoolFlagsTakeAnExplicitValue) {
  auto p = ParseFlags(kExecFlags, {"-i", "--interactive=false", "ctr"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->Bool("interactive"));
  auto bad = ParseFlags(kExecFlags, {"--tty=maybe", "ctr"});
  EXPECT_THAT(bad.status().message(), HasSubstr("invalid boolean value \"maybe\" for -tty"));
}

TEST(ParseFlags, ErrorsAreCrictls) {
  EXPECT_EQ(ParseFlags(kExecFlags, {"--bogus"}).status().message(),
            "flag provided but not defined: -bogus");
  EXPECT_EQ(ParseFlags(kExecFlags, {"-ix"}).status().message(),
            "flag provided but not defined: -ix");
  EXPECT_EQ(ParseFlags(kExecFlags, {"--timeout"}).status().message(),
            "flag needs an argument: -timeout");
  EXPECT_THAT(ParseFlags(kExecFlags, {"---x"}).status().message(), HasSubstr("bad flag syntax"));
}

TEST(ParseFlags, HelpAndLoneDash) {
  auto p = ParseFlags(kExecFlags, {"-h"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->help);
  p = ParseFlags(kExecFlags, {"-", "x"});  // "-" is an argument, as in Go
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(p->args, ElementsAre("-", "x"));
}

TEST(ParseTimeout, GoDurationsAndBareSeconds) {
  EXPECT_EQ(*ParseTimeout("2s"), absl::Seconds(2));
  EXPECT_EQ(*ParseTimeout("1m30s"), absl::Seconds(90));
  EXPECT_EQ(*ParseTimeout("240"), absl::Seconds(240));
  EXPECT_FALSE(ParseTimeout("soon").ok());
  EXPECT_FALSE(ParseTimeout("-1s").ok());
  EXPECT_FALSE(ParseTimeout("").ok());
}

class ParseCommandLineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("CONTAINER_RUNTIME_ENDPOINT");
    ::unsetenv("IMAGE_SERVICE_ENDPOINT");
  }
};

TEST_F(ParseCommandLineTest, GlobalsThenCommandThenItsFlags) {
  auto l = ParseCommandLine({"-r", "unix:///x.sock", "-i", "unix:///y.sock", "-t", "240s", "exec",
                             "-s", "ctr", "--", "cat", "/marker"});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->options.endpoint, "unix:///x.sock");
  EXPECT_EQ(l->image_endpoint, "unix:///y.sock");
  EXPECT_EQ(l->options.timeout, absl::Seconds(240));
  EXPECT_EQ(l->command, "exec");
  EXPECT_TRUE(l->flags.Bool("sync"));
  EXPECT_THAT(l->flags.args, ElementsAre("ctr", "--", "cat", "/marker"));
}

TEST_F(ParseCommandLineTest, RunpsDashRIsTheRuntimeHandler) {
  auto l = ParseCommandLine({"-r", "/x.sock", "runp", "-r", "cloak-dev", "pod.json"});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->options.endpoint, "/x.sock");
  EXPECT_EQ(l->flags.Get("runtime"), "cloak-dev");
  EXPECT_THAT(l->flags.args, ElementsAre("pod.json"));
}

TEST_F(ParseCommandLineTest, EndpointFromTheEnvironmentAsCrictl) {
  ::setenv("CONTAINER_RUNTIME_ENDPOINT", "unix:///env.sock", 1);
  auto l = ParseCommandLine({"version"});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->options.endpoint, "unix:///env.sock");
  l = ParseCommandLine({"-r", "unix:///flag.sock", "version"});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->options.endpoint, "unix:///flag.sock");
}

TEST_F(ParseCommandLineTest, ZeroTimeoutIsTheDefault) {
  auto l = ParseCommandLine({"-t", "0s", "version"});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->options.timeout, kDefaultTimeout);
}

TEST_F(ParseCommandLineTest, UnknownCommandIsNotFound) {
  auto l = ParseCommandLine({"exec-sync", "ctr", "ls"});
  EXPECT_EQ(l.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(l.status().message(), HasSubstr("No help topic for 'exec-sync'"));
}

TEST_F(ParseCommandLineTest, WrongNumberOfArgumentsSaysTheUsage) {
  auto l = ParseCommandLine({"create", "pod-id", "ctr.json"});
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(l.status().message(),
              HasSubstr("usage: cloak-cri create [command options] POD container-config.json "
                        "pod-config.json; got 2 arguments"));
  // crictl would read "--runtime" as an argument here (flags go first); cloak-cri says so.
  l = ParseCommandLine({"runp", "pod.json", "--runtime", "cloak-dev"});
  EXPECT_THAT(l.status().message(), HasSubstr("flags go before the arguments"));
  l = ParseCommandLine({"exec", "ctr"});
  EXPECT_THAT(l.status().message(), HasSubstr("CONTAINER-ID COMMAND [ARG...]; got 1 argument "));
}

TEST_F(ParseCommandLineTest, BadFlagNamesTheCommand) {
  auto l = ParseCommandLine({"ps", "--bogus"});
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(l.status().message(), HasSubstr("flag provided but not defined: -bogus"));
  EXPECT_THAT(l.status().message(), HasSubstr("cloak-cri ps --help"));
}

TEST_F(ParseCommandLineTest, HelpWithoutCommandOrFlag) {
  EXPECT_TRUE(ParseCommandLine({})->help);
  EXPECT_TRUE(ParseCommandLine({"--help"})->help);
  auto l = ParseCommandLine({"ps", "-h"});
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->flags.help);
}

}  // namespace
}  // namespace cloak::cri
