// cloak-cri prints what crictl v1.26 prints for the same answers
// (cli/cri/format.h): tables laid out by Go's tabwriter with crictl's
// settings, IDs cut to 13 characters, go-units ages, protobuf JSON with
// every field and inspect's {"status", <info>...} shape.
#include "cli/cri/format.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cloak::cri {
namespace {

namespace v1 = ::runtime::v1;
using ::testing::HasSubstr;

const std::string kCtrId = "4c2b1a0f9e8d7c6b5a4938271605f4e3d2c1b0a99887766554433221100ffeed";
const std::string kPodId = "9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddccbbaa99887766554433221100";
const std::string kImageId =
    "sha256:7cfbbec8963d8f13e6c70416d6592e1cc10f47a348131290a55d43c3acab3fb9";

TEST(TruncateId, ThirteenCharactersWithoutThePrefix) {
  EXPECT_EQ(TruncateId(kCtrId), "4c2b1a0f9e8d7");
  EXPECT_EQ(TruncateId(kImageId, "sha256:"), "7cfbbec8963d8");
  EXPECT_EQ(TruncateId("short"), "short");
}

TEST(HumanDuration, GoUnitsWords) {
  EXPECT_EQ(HumanDuration(absl::Milliseconds(300)), "Less than a second");
  EXPECT_EQ(HumanDuration(absl::Seconds(1)), "1 second");
  EXPECT_EQ(HumanDuration(absl::Seconds(59)), "59 seconds");
  EXPECT_EQ(HumanDuration(absl::Seconds(119)), "About a minute");
  EXPECT_EQ(HumanDuration(absl::Minutes(59)), "59 minutes");
  EXPECT_EQ(HumanDuration(absl::Minutes(89)), "About an hour");
  EXPECT_EQ(HumanDuration(absl::Minutes(90)), "2 hours");
  EXPECT_EQ(HumanDuration(absl::Hours(47)), "47 hours");
  EXPECT_EQ(HumanDuration(absl::Hours(48)), "2 days");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 14)), "2 weeks");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 60)), "2 months");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 365 * 2)), "2 years");
}

TEST(FormatTable, MinWidthTwentyPaddingThreeLastCellUnpadded) {
  // Column 1: 22 characters + 3 = 25; column 2: the minimum, 20.
  EXPECT_EQ(FormatTable({{"A", "B", "C"}, {"twenty-two-characters!", "b", "last"}}),
            "A" + std::string(24, ' ') + "B" + std::string(19, ' ') + "C\n" +
                "twenty-two-characters!   b" + std::string(19, ' ') + "last\n");
}

v1::Container RunningContainer(absl::Time now) {
  v1::Container c;
  c.set_id(kCtrId);
  c.set_pod_sandbox_id(kPodId);
  c.mutable_metadata()->set_name("sleeper");
  c.mutable_image()->set_image(kImageId);
  c.set_image_ref(kImageId);
  c.set_state(v1::CONTAINER_RUNNING);
  c.set_created_at(absl::ToUnixNanos(now - absl::Seconds(42)));
  return c;
}

TEST(ContainersTable, CrictlColumnsCutIdsAndAges) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  v1::Container older = RunningContainer(now);
  older.set_id("0123456789abcdef0123");
  older.set_created_at(absl::ToUnixNanos(now - absl::Minutes(5)));
  older.set_state(v1::CONTAINER_EXITED);
  older.mutable_image()->set_image("10.88.77.1:5000/busybox:local");  // not a digest: kept whole
  (*older.mutable_labels())["io.kubernetes.pod.name"] = "lifecycle";
  EXPECT_EQ(ContainersTable({older, RunningContainer(now)}, now, /*no_trunc=*/false),
            "CONTAINER           IMAGE                           CREATED             STATE     "
            "          NAME                ATTEMPT             POD ID              POD\n"
            "4c2b1a0f9e8d7       7cfbbec8963d8                   42 seconds ago      Running   "
            "          sleeper             0                   9f8e7d6c5b4a3       unknown\n"
            "0123456789abc       10.88.77.1:5000/busybox:local   5 minutes ago       Exited    "
            "          sleeper             0                   9f8e7d6c5b4a3       lifecycle\n");
  const std::string whole = ContainersTable({RunningContainer(now)}, now, /*no_trunc=*/true);
  EXPECT_THAT(whole, HasSubstr(kCtrId + "   " + kImageId + "   42 seconds ago"));
  EXPECT_THAT(whole, HasSubstr(kPodId + "   unknown\n"));
}

TEST(PodsTable, CrictlColumnsAndDefaultRuntime) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  v1::PodSandbox p;
  p.set_id(kPodId);
  p.mutable_metadata()->set_name("lifecycle");
  p.mutable_metadata()->set_namespace_("default");
  p.set_state(v1::SANDBOX_READY);
  p.set_created_at(absl::ToUnixNanos(now - absl::Seconds(1)));
  p.set_runtime_handler("cloak-dev");
  v1::PodSandbox q = p;
  q.set_runtime_handler("");
  q.set_state(v1::SANDBOX_NOTREADY);
  q.set_created_at(absl::ToUnixNanos(now - absl::Hours(3)));
  EXPECT_EQ(PodsTable({q, p}, now, false),
            "POD ID              CREATED             STATE               NAME                "
            "NAMESPACE           ATTEMPT             RUNTIME\n"
            "9f8e7d6c5b4a3       1 second ago        Ready               lifecycle           "
            "default             0                   cloak-dev\n"
            "9f8e7d6c5b4a3       3 hours ago         NotReady            lifecycle           "
            "default             0                   (default)\n");
}

TEST(MessageJson, LowerCamelEveryFieldTwoSpaces) {
  v1::ContainerStatus st;
  st.set_id("abc");
  st.set_state(v1::CONTAINER_EXITED);
  st.set_exit_code(3);
  st.set_finished_at(12);
  (*st.mutable_labels())["b"] = "2";
  (*st.mutable_labels())["a"] = "1";
  const std::string json = MessageJson(st);
  EXPECT_THAT(json, HasSubstr("\n  \"exitCode\": 3,\n"));
  EXPECT_THAT(json, HasSubstr("\"finishedAt\": \"12\""));  // int64 as a string
  EXPECT_THAT(json, HasSubstr("\"startedAt\": \"0\""));    // defaults shown
  EXPECT_THAT(json, HasSubstr("\"state\": \"CONTAINER_EXITED\""));
  EXPECT_THAT(json, HasSubstr("\"metadata\": null"));      // an unset message
  EXPECT_THAT(json, HasSubstr("\"mounts\": []"));
  EXPECT_THAT(json, HasSubstr("\"labels\": {\n    \"a\": \"1\",\n    \"b\": \"2\"\n  }"));
  // Fields in proto order.
  EXPECT_LT(json.find("\"id\""), json.find("\"metadata\""));
  EXPECT_LT(json.find("\"metadata\""), json.find("\"exitCode\""));
}

TEST(StatusJson, StatusFirstThenInfoKeysParsedWhereJson) {
  v1::ContainerStatus st;
  st.set_id("abc");
  st.mutable_metadata()->set_name("hello");
  st.set_created_at(1796664840495713696);  // as containerd answered in e2e/local
  st.set_exit_code(3);
  const std::string json = StatusJson(
      st, {{"info", R"({"sandboxID": "p", "pid": 42})"}, {"note", "plain text"}});
  auto parsed = nlohmann::json::parse(json);
  EXPECT_EQ(parsed["status"]["id"], "abc");
  EXPECT_EQ(parsed["status"]["exitCode"], 3);
  EXPECT_EQ(parsed["info"]["pid"], 42);
  EXPECT_EQ(parsed["note"], "plain text");
  EXPECT_EQ(json.rfind("{\n  \"status\": {\n    \"id\": \"abc\",\n", 0), 0u) << json;
  // Times as crictl prints them; nested keys sorted; info keys in the runtime's order.
  EXPECT_THAT(json, HasSubstr("\"createdAt\": \"2026-12-07T17:34:00.495713696Z\""));
  EXPECT_THAT(json, HasSubstr("\"finishedAt\": \"0001-01-01T00:00:00Z\""));
  EXPECT_THAT(json, HasSubstr("\"metadata\": {\n      \"attempt\": 0,\n      \"name\": \"hello\"\n"));
  EXPECT_LT(json.find("\"sandboxID\""), json.find("\"pid\""));
}

TEST(Rfc3339Nano, GoFormat) {
  EXPECT_EQ(Rfc3339Nano(0), "0001-01-01T00:00:00Z");
  EXPECT_EQ(Rfc3339Nano(1700000000000000000), "2023-11-14T22:13:20Z");
  EXPECT_EQ(Rfc3339Nano(1700000000500000000), "2023-11-14T22:13:20.5Z");
}

TEST(ExecExitMessages, CrictlsWords) {
  EXPECT_EQ(ExecSyncExitMessage({"sh", "-c", "exit 7"}, 7, ""),
            "execing command in container synchronously: command 'sh -c exit 7' exited with 7: ");
  EXPECT_EQ(ExecStreamExitMessage(4),
            "execing command in container: command terminated with exit code 4");
}

}  // namespace
}  // namespace cloak::cri
