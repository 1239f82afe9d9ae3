#include "agent/image/image_config.h"

#include <filesystem>

#include "common/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/image/test_util.h"

namespace cloak::agent::image {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Strings = std::vector<std::string>;

TEST(ParseImageConfig, Fields) {
  auto c = ParseImageConfig(R"({"architecture":"amd64","os":"linux","config":{
      "Entrypoint":["/bin/entry"],"Cmd":["--flag"],"Env":["A=1"],"WorkingDir":"/w","User":"app"},
      "rootfs":{"type":"layers","diff_ids":["sha256:x"]}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->os, "linux");
  ASSERT_TRUE(c->entrypoint.has_value());
  EXPECT_THAT(*c->entrypoint, ElementsAre("/bin/entry"));
  EXPECT_THAT(c->cmd, ElementsAre("--flag"));
  EXPECT_THAT(c->env, ElementsAre("A=1"));
  EXPECT_EQ(c->working_dir, "/w");
  EXPECT_EQ(c->user, "app");
  EXPECT_THAT(c->diff_ids, ElementsAre("sha256:x"));

  auto empty = ParseImageConfig(R"({"config":{"Entrypoint":null}})");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->entrypoint.has_value());

  auto bad = ParseImageConfig(R"({"config":{"Cmd":"sh"}})");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("config.Cmd"));
  EXPECT_FALSE(ParseImageConfig("[").ok());
}

TEST(ApplyImageConfig, ArgsTable) {
  struct Case {
    const char* name;
    std::optional<Strings> entrypoint;
    Strings cmd;
    Strings command;
    Strings args;
    Strings want;
  };
  const Case cases[] = {
      {"image entrypoint+cmd", Strings{"/entry"}, {"a", "b"}, {}, {}, {"/entry", "a", "b"}},
      {"image cmd only", std::nullopt, {"sh", "-c", "x"}, {}, {}, {"sh", "-c", "x"}},
      {"args replace cmd", Strings{"/entry"}, {"a"}, {}, {"z"}, {"/entry", "z"}},
      {"ctr run args, no entrypoint", std::nullopt, {"sh"}, {}, {"echo", "hi"}, {"echo", "hi"}},
      {"command replaces entrypoint and drops cmd", Strings{"/entry"}, {"a"}, {"/bin/x"}, {},
       {"/bin/x"}},
      {"command + args", Strings{"/entry"}, {"a"}, {"/bin/x"}, {"y"}, {"/bin/x", "y"}},
      {"entrypoint [\"\"] is reset", Strings{""}, {"sh"}, {}, {}, {"sh"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ImageConfig config;
    config.entrypoint = c.entrypoint;
    config.cmd = c.cmd;
    ProcessRequest req;
    req.command = c.command;
    req.args = c.args;
    auto p = ApplyImageConfig(config, req);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->args, c.want);
  }
  auto none = ApplyImageConfig(ImageConfig{}, ProcessRequest{});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("no command specified"));
}

TEST(ApplyImageConfig, EnvCwdUser) {
  ImageConfig config;
  config.cmd = {"sh"};
  config.env = {"PATH=/image/bin", "A=1", "B=2"};
  config.working_dir = "/srv";
  config.user = "app";
  ProcessRequest req;
  req.env = {"B=from-spec", "C=3", "A"};
  auto p = ApplyImageConfig(config, req);
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(p->env, ElementsAre("PATH=/image/bin", "B=from-spec", "C=3"));
  EXPECT_EQ(p->cwd, "/srv");
  EXPECT_EQ(p->user, "app");

  ImageConfig bare;
  bare.cmd = {"sh"};
  ProcessRequest req2;
  req2.cwd = "/override";
  req2.user = "1000:1000";
  auto q = ApplyImageConfig(bare, req2);
  ASSERT_TRUE(q.ok());
  EXPECT_THAT(q->env, ElementsAre(kDefaultPathEnv));
  EXPECT_EQ(q->cwd, "/override");
  EXPECT_EQ(q->user, "1000:1000");

  auto r = ApplyImageConfig(bare, ProcessRequest{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cwd, "/");
  EXPECT_EQ(r->user, "");
}

constexpr char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1::/:/bin/false\n"
    "app:x:1000:1001:App:/home/app:/bin/sh\n"
    "broken line\n";
constexpr char kGroup[] =
    "root:x:0:\n"
    "wheel:x:10:app,other\n"
    "appgrp:x:1001:\n"
    "staff:x:50:app\n";

TEST(ResolveUser, Table) {
  struct Case {
    const char* user;
    uint32_t uid;
    uint32_t gid;
    std::vector<uint32_t> extra;
  };
  const Case cases[] = {
      {"", 0, 0, {}},
      {"0", 0, 0, {}},
      {"app", 1000, 1001, {10, 50}},
      {"1000", 1000, 1001, {10, 50}},
      {"4242", 4242, 0, {}},
      {"4242:7", 4242, 7, {}},
      {"app:wheel", 1000, 10, {50}},
      {"1000:staff", 1000, 50, {10}},
      {"daemon:0", 1, 0, {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.user);
    auto r = ResolveUser(c.user, kPasswd, kGroup);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->uid, c.uid);
    EXPECT_EQ(r->gid, c.gid);
    EXPECT_EQ(r->additional_gids, c.extra);
  }
  auto nouser = ResolveUser("nobody", kPasswd, kGroup);
  EXPECT_EQ(nouser.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(nouser.status().message(), HasSubstr("\"nobody\""));
  auto nogroup = ResolveUser("app:nogroup", kPasswd, kGroup);
  EXPECT_EQ(nogroup.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(nogroup.status().message(), HasSubstr("\"nogroup\""));
  EXPECT_EQ(ResolveUser("app:", kPasswd, kGroup).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ResolveUserInRootfs, ReadsInsideTheRootfsOnly) {
  auto dir = TempDir::Create("cloak-user-");
  ASSERT_TRUE(dir.ok());
  std::string rootfs = dir->Join("rootfs");
  std::filesystem::create_directories(rootfs + "/etc");
  ASSERT_TRUE(testing::WriteFile(rootfs + "/etc/passwd", kPasswd).ok());
  // /etc/group is an absolute symlink: resolved inside the rootfs, not to
  // the host's /etc/group.
  std::filesystem::create_directories(rootfs + "/data");
  ASSERT_TRUE(testing::WriteFile(rootfs + "/data/group", kGroup).ok());
  std::filesystem::create_symlink("/data/group", rootfs + "/etc/group");
  auto r = ResolveUserInRootfs("app:staff", rootfs);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->uid, 1000u);
  EXPECT_EQ(r->gid, 50u);

  auto missing = ResolveUserInRootfs("1234", dir->Join("empty-rootfs-that-exists-not"));
  EXPECT_FALSE(missing.ok());
}

}  // namespace
}  // namespace cloak::agent::image
