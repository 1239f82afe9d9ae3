// Wire compatibility of our hand-written proto/containerd/**.proto with the
// definitions containerd itself is built from, as Debian ships them
// (golang-github-containerd-containerd-dev). Both sides are compiled to
// FileDescriptorSets at build time (see CMakeLists.txt); this test compares
// every message, enum and service of our containerd.* packages with the one
// of the same full name: field numbers, types, labels and type names, enum
// values, RPC input/output types. A renumbered field fails here.
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "tests/util/skip.h"

#ifndef CLOAK_PROTOS_DESC
#error "CLOAK_PROTOS_DESC must name the descriptor set of proto/"
#endif
#ifndef DEBIAN_PROTOS_DESC
#error "DEBIAN_PROTOS_DESC must name the descriptor set of Debian's containerd protos"
#endif
#ifndef DEBIAN_PROTOS_MISSING
#error "DEBIAN_PROTOS_MISSING must list the Debian packages missing at configure time"
#endif

namespace cloak {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::DescriptorPool;
using ::google::protobuf::EnumDescriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::FileDescriptor;
using ::google::protobuf::FileDescriptorProto;
using ::google::protobuf::FileDescriptorSet;
using ::google::protobuf::ServiceDescriptor;
using ::testing::HasSubstr;

constexpr char kPackagePrefix[] = "containerd.";
// Services of which we declare only the RPCs we call (as a client).
const std::set<std::string> kPartialServices = {"containerd.services.content.v1.Content",
                                                "containerd.services.containers.v1.Containers",
                                                "containerd.services.images.v1.Images"};

bool LoadSet(const std::string& path, FileDescriptorSet* set) {
  std::ifstream in(path, std::ios::binary);
  return in && set->ParseFromIstream(&in);
}

// Builds a pool from a set made with --include_imports (dependencies first).
// Returns the files that failed to build, empty on success.
std::vector<std::string> BuildPool(const FileDescriptorSet& set, DescriptorPool* pool) {
  std::vector<std::string> failed;
  for (const FileDescriptorProto& file : set.file()) {
    if (pool->BuildFile(file) == nullptr) failed.push_back(file.name());
  }
  return failed;
}

std::string TypeName(const FieldDescriptor* f) {
  if (f->message_type() != nullptr) return f->message_type()->full_name();
  if (f->enum_type() != nullptr) return f->enum_type()->full_name();
  return "";
}

// What was compared, so a test can tell "all equal" from "nothing compared".
struct Counts {
  int messages = 0;
  int fields = 0;
  int enums = 0;
  int services = 0;
  int methods = 0;
};

class Comparer {
 public:
  Comparer(const DescriptorPool& ours, const DescriptorPool& theirs)
      : ours_(ours), theirs_(theirs) {}

  // Compares every top-level type of each of `files` (in `ours_`).
  void CompareFiles(const std::vector<const FileDescriptor*>& files) {
    for (const FileDescriptor* file : files) {
      for (int i = 0; i < file->message_type_count(); ++i) CompareMessage(file->message_type(i));
      for (int i = 0; i < file->enum_type_count(); ++i) CompareEnum(file->enum_type(i));
      for (int i = 0; i < file->service_count(); ++i) CompareService(file->service(i));
    }
  }

  const std::vector<std::string>& problems() const { return problems_; }
  const Counts& counts() const { return counts_; }

 private:
  void Problem(std::string p) { problems_.push_back(std::move(p)); }

  void CompareMessage(const Descriptor* ours) {
    ++counts_.messages;
    const Descriptor* theirs = theirs_.FindMessageTypeByName(ours->full_name());
    if (theirs == nullptr) {
      Problem(absl::StrCat("message ", ours->full_name(), " (", ours->file()->name(),
                           "): containerd has no message of that name"));
      return;
    }
    for (int i = 0; i < ours->field_count(); ++i) {
      ++counts_.fields;
      const FieldDescriptor* f = ours->field(i);
      const FieldDescriptor* g = theirs->FindFieldByName(f->name());
      const std::string where =
          absl::StrCat("field ", f->full_name(), " (", ours->file()->name(), ")");
      if (g == nullptr) {
        const FieldDescriptor* by_number = theirs->FindFieldByNumber(f->number());
        Problem(absl::StrCat(
            where, ": containerd has no field of that name",
            by_number ? absl::StrCat("; its field ", f->number(), " is \"", by_number->name(), "\"")
                      : std::string()));
        continue;
      }
      if (f->number() != g->number()) {
        Problem(absl::StrCat(where, ": number ", f->number(), ", containerd has ", g->number()));
      }
      if (f->type() != g->type()) {
        Problem(
            absl::StrCat(where, ": type ", f->type_name(), ", containerd has ", g->type_name()));
      }
      if (f->label() != g->label()) {
        Problem(absl::StrCat(where, ": label ", f->label(), ", containerd has ", g->label(),
                             " (1 optional, 2 required, 3 repeated)"));
      }
      if (TypeName(f) != TypeName(g)) {
        Problem(absl::StrCat(where, ": type name \"", TypeName(f), "\", containerd has \"",
                             TypeName(g), "\""));
      }
      if (f->is_packed() != g->is_packed()) {
        Problem(
            absl::StrCat(where, ": packed=", f->is_packed(), ", containerd has ", g->is_packed()));
      }
    }
    // A field containerd sends that we do not declare would be kept only as
    // an unknown field, invisible to the shim.
    for (int i = 0; i < theirs->field_count(); ++i) {
      const FieldDescriptor* g = theirs->field(i);
      if (ours->FindFieldByName(g->name()) == nullptr) {
        Problem(absl::StrCat("field ", g->full_name(), " = ", g->number(),
                             " of containerd is missing in ", ours->file()->name()));
      }
    }
    for (int i = 0; i < ours->nested_type_count(); ++i) CompareMessage(ours->nested_type(i));
    for (int i = 0; i < ours->enum_type_count(); ++i) CompareEnum(ours->enum_type(i));
  }

  void CompareEnum(const EnumDescriptor* ours) {
    ++counts_.enums;
    const EnumDescriptor* theirs = theirs_.FindEnumTypeByName(ours->full_name());
    if (theirs == nullptr) {
      Problem(absl::StrCat("enum ", ours->full_name(), " (", ours->file()->name(),
                           "): containerd has no enum of that name"));
      return;
    }
    for (int i = 0; i < theirs->value_count(); ++i) {
      if (ours->FindValueByName(theirs->value(i)->name()) == nullptr) {
        Problem(absl::StrCat("enum value ", theirs->value(i)->full_name(), " = ",
                             theirs->value(i)->number(), " of containerd is missing"));
      }
    }
    for (int i = 0; i < ours->value_count(); ++i) {
      const auto* v = ours->value(i);
      const auto* w = theirs->FindValueByName(v->name());
      if (w == nullptr) {
        Problem(
            absl::StrCat("enum value ", v->full_name(), ": containerd has no value of that name"));
      } else if (v->number() != w->number()) {
        Problem(absl::StrCat("enum value ", v->full_name(), ": number ", v->number(),
                             ", containerd has ", w->number()));
      }
    }
  }

  void CompareService(const ServiceDescriptor* ours) {
    ++counts_.services;
    const ServiceDescriptor* theirs = theirs_.FindServiceByName(ours->full_name());
    if (theirs == nullptr) {
      Problem(absl::StrCat("service ", ours->full_name(), " (", ours->file()->name(),
                           "): containerd has no service of that name"));
      return;
    }
    // A client may declare only the RPCs it calls.
    const bool partial = kPartialServices.contains(ours->full_name());
    for (int i = 0; i < theirs->method_count() && !partial; ++i) {
      if (ours->FindMethodByName(theirs->method(i)->name()) == nullptr) {
        Problem(absl::StrCat("rpc ", theirs->method(i)->full_name(),
                             " of containerd is missing in ", ours->file()->name()));
      }
    }
    for (int i = 0; i < ours->method_count(); ++i) {
      ++counts_.methods;
      const auto* m = ours->method(i);
      const auto* n = theirs->FindMethodByName(m->name());
      const std::string where = absl::StrCat("rpc ", m->full_name());
      if (n == nullptr) {
        Problem(absl::StrCat(where, ": containerd has no rpc of that name"));
        continue;
      }
      if (m->input_type()->full_name() != n->input_type()->full_name()) {
        Problem(absl::StrCat(where, ": input ", m->input_type()->full_name(), ", containerd has ",
                             n->input_type()->full_name()));
      }
      if (m->output_type()->full_name() != n->output_type()->full_name()) {
        Problem(absl::StrCat(where, ": output ", m->output_type()->full_name(), ", containerd has ",
                             n->output_type()->full_name()));
      }
      if (m->client_streaming() != n->client_streaming() ||
          m->server_streaming() != n->server_streaming()) {
        Problem(absl::StrCat(where, ": streaming differs"));
      }
    }
  }

  const DescriptorPool& ours_;
  const DescriptorPool& theirs_;
  std::vector<std::string> problems_;
  Counts counts_;
};

std::vector<const FileDescriptor*> ContainerdFiles(const DescriptorPool& pool,
                                                   const FileDescriptorSet& set) {
  std::vector<const FileDescriptor*> files;
  for (const FileDescriptorProto& proto : set.file()) {
    if (!absl::StartsWith(proto.package(), kPackagePrefix)) continue;
    const FileDescriptor* file = pool.FindFileByName(proto.name());
    if (file != nullptr) files.push_back(file);
  }
  return files;
}

class WireCompat : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = DEBIAN_PROTOS_MISSING;
    if (!missing.empty()) {
      CLOAK_SKIP() << "containerd's own .proto files were not found when the build was "
                      "configured; install the Debian package(s) "
                   << missing << " and re-run cmake";
    }
    ASSERT_TRUE(LoadSet(CLOAK_PROTOS_DESC, &our_set_))
        << "cannot read " << CLOAK_PROTOS_DESC << " (built by target cloak_proto_descriptors)";
    ASSERT_TRUE(LoadSet(DEBIAN_PROTOS_DESC, &their_set_))
        << "cannot read " << DEBIAN_PROTOS_DESC << " (built from Debian's containerd protos)";
    std::vector<std::string> failed = BuildPool(our_set_, &ours_);
    ASSERT_TRUE(failed.empty()) << "our protos do not build: " << absl::StrJoin(failed, ", ");
    failed = BuildPool(their_set_, &theirs_);
    ASSERT_TRUE(failed.empty()) << "Debian's protos do not build: " << absl::StrJoin(failed, ", ");
  }

  FileDescriptorSet our_set_;
  FileDescriptorSet their_set_;
  DescriptorPool ours_;
  DescriptorPool theirs_;
};

TEST_F(WireCompat, EveryContainerdTypeMatchesContainerds) {
  std::vector<const FileDescriptor*> files = ContainerdFiles(ours_, our_set_);
  Comparer comparer(ours_, theirs_);
  comparer.CompareFiles(files);
  EXPECT_THAT(comparer.problems(), ::testing::IsEmpty())
      << "proto/containerd/ is no longer wire-compatible with containerd:\n  "
      << absl::StrJoin(comparer.problems(), "\n  ");

  // Guard against comparing nothing: the files and types we rely on are there.
  std::vector<std::string> names;
  for (const FileDescriptor* f : files) names.push_back(f->package());
  EXPECT_THAT(names, ::testing::IsSupersetOf({"containerd.task.v2", "containerd.types",
                                              "containerd.v1.types", "containerd.events",
                                              "containerd.services.events.ttrpc.v1",
                                              "containerd.services.snapshots.v1",
                                              "containerd.services.content.v1",
                                              "containerd.services.containers.v1",
                                              "containerd.services.images.v1"}));
  const Counts& c = comparer.counts();
  std::cout << "compared " << c.messages << " messages, " << c.fields << " fields, " << c.enums
            << " enums, " << c.services << " services, " << c.methods << " rpcs\n";
  EXPECT_GE(c.messages, 40);
  EXPECT_GE(c.fields, 100);
  EXPECT_GE(c.enums, 1);
  // containerd.task.v2.Task, ...events.ttrpc.v1.Events, ...snapshots.v1.Snapshots,
  // ...content.v1.Content (Read only), ...containers.v1.Containers and
  // ...images.v1.Images (Get only).
  EXPECT_EQ(c.services, 6);
  EXPECT_GE(c.methods, 17);
  ASSERT_NE(ours_.FindServiceByName("containerd.task.v2.Task"), nullptr);
  EXPECT_EQ(ours_.FindServiceByName("containerd.task.v2.Task")->method_count(),
            theirs_.FindServiceByName("containerd.task.v2.Task")->method_count())
      << "the Task service lists a different number of RPCs than containerd's";
}

// The comparison itself must notice a renumbered field, a retyped field and
// a changed RPC: run it on a doctored copy of our descriptors.
TEST_F(WireCompat, ComparerCatchesDeliberateMismatches) {
  FileDescriptorSet doctored = our_set_;
  bool renumbered = false;
  bool retyped = false;
  bool rerouted = false;
  for (FileDescriptorProto& file : *doctored.mutable_file()) {
    if (file.package() == "containerd.types") {
      for (auto& m : *file.mutable_message_type()) {
        if (m.name() != "Mount") continue;
        for (auto& f : *m.mutable_field()) {
          if (f.name() == "source") {
            f.set_number(20);
            renumbered = true;
          }
        }
      }
    }
    if (file.package() == "containerd.task.v2") {
      for (auto& m : *file.mutable_message_type()) {
        if (m.name() != "KillRequest") continue;
        for (auto& f : *m.mutable_field()) {
          if (f.name() == "signal") {
            f.set_type(google::protobuf::FieldDescriptorProto::TYPE_INT32);
            retyped = true;
          }
        }
      }
      for (auto& s : *file.mutable_service()) {
        for (auto& rpc : *s.mutable_method()) {
          if (rpc.name() == "Start") {
            rpc.set_output_type(".containerd.task.v2.CreateTaskResponse");
            rerouted = true;
          }
        }
      }
    }
  }
  ASSERT_TRUE(renumbered && retyped && rerouted) << "test fixtures moved; update this test";

  DescriptorPool pool;
  std::vector<std::string> failed = BuildPool(doctored, &pool);
  ASSERT_TRUE(failed.empty()) << absl::StrJoin(failed, ", ");
  Comparer comparer(pool, theirs_);
  comparer.CompareFiles(ContainerdFiles(pool, doctored));
  const std::string all = absl::StrJoin(comparer.problems(), "\n");
  EXPECT_THAT(all, HasSubstr("field containerd.types.Mount.source"));
  EXPECT_THAT(all, HasSubstr("number 20, containerd has 2"));
  EXPECT_THAT(all, HasSubstr("field containerd.task.v2.KillRequest.signal"));
  EXPECT_THAT(all, HasSubstr("type int32, containerd has uint32"));
  EXPECT_THAT(all, HasSubstr("rpc containerd.task.v2.Task.Start: output"));
  EXPECT_EQ(comparer.problems().size(), 3u) << all;
}

}  // namespace
}  // namespace cloak
