#include "shim/vm_sizing.h"

#include <algorithm>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace cloak::shim {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

absl::StatusOr<std::optional<int64_t>> AnnotationInt(const nlohmann::json& annotations,
                                                      absl::string_view key) {
  auto it = annotations.find(std::string(key));
  if (it == annotations.end()) return std::optional<int64_t>();
  int64_t v = 0;
  if (!it->is_string() || !absl::SimpleAtoi(it->get<std::string>(), &v) || v < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sandbox annotation ", key, " is ", it->dump(),
        ": expected a non-negative integer (containerd's CRI plugin writes it from the pod's "
        "limits)"));
  }
  if (v == 0) return std::optional<int64_t>();
  return std::optional<int64_t>(v);
}

std::optional<int64_t> JsonInt(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return std::nullopt;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_integer()) return std::nullopt;
  const int64_t v = it->get<int64_t>();
  if (v <= 0) return std::nullopt;
  return v;
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

absl::StatusOr<PodResources> PodResourcesFromSpec(absl::string_view config_json) {
  const nlohmann::json spec =
      nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded() || !spec.is_object()) {
    return absl::InvalidArgumentError("config.json is not a JSON object");
  }
  PodResources pod;
  if (auto a = spec.find("annotations"); a != spec.end() && a->is_object()) {
    auto mem = AnnotationInt(*a, kCriSandboxMemory);
    if (!mem.ok()) return mem.status();
    auto quota = AnnotationInt(*a, kCriSandboxCpuQuota);
    if (!quota.ok()) return quota.status();
    auto period = AnnotationInt(*a, kCriSandboxCpuPeriod);
    if (!period.ok()) return period.status();
    if (mem->has_value() || quota->has_value()) {
      pod.memory_limit_bytes = *mem;
      pod.cpu_quota_us = *quota;
      pod.cpu_period_us = *period;
      pod.source = "CRI sandbox annotations";
      return pod;
    }
  }
  const nlohmann::json* resources = nullptr;
  if (auto l = spec.find("linux"); l != spec.end() && l->is_object()) {
    if (auto r = l->find("resources"); r != l->end() && r->is_object()) resources = &*r;
  }
  if (resources != nullptr) {
    if (auto m = resources->find("memory"); m != resources->end()) {
      pod.memory_limit_bytes = JsonInt(*m, "limit");
    }
    if (auto c = resources->find("cpu"); c != resources->end()) {
      pod.cpu_quota_us = JsonInt(*c, "quota");
      pod.cpu_period_us = JsonInt(*c, "period");
    }
    if (pod.memory_limit_bytes || pod.cpu_quota_us) pod.source = "the spec's linux.resources";
  }
  return pod;
}

VmSize SizeVm(const PodResources& pod, const SizingRules& rules) {
  VmSize size;
  std::string mem_why;
  if (rules.memory_pinned) {
    size.memory_mib = rules.default_memory_mib;
    mem_why = "pinned by io.cloak.hypervisor.memory_mib";
  } else if (pod.memory_limit_bytes.has_value()) {
    const int64_t limit_mib = CeilDiv(*pod.memory_limit_bytes, kMiB);
    size.memory_mib = limit_mib + rules.memory_overhead_mib;
    mem_why = absl::StrCat("pod limit ", limit_mib, " MiB + overhead ", rules.memory_overhead_mib,
                           " MiB (", pod.source, ")");
  } else {
    size.memory_mib = rules.default_memory_mib;
    mem_why = "no pod memory limit: the class default";
  }
  const int64_t clamped = std::clamp(size.memory_mib, rules.min_memory_mib, rules.max_memory_mib);
  if (clamped != size.memory_mib) {
    absl::StrAppend(&mem_why, ", clamped to [", rules.min_memory_mib, ", ", rules.max_memory_mib,
                    "] MiB");
    size.memory_mib = clamped;
  }

  std::string cpu_why;
  const bool limited = pod.cpu_quota_us.has_value() && *pod.cpu_quota_us > 0;
  if (rules.vcpus_pinned) {
    size.vcpus = rules.default_vcpus;
    cpu_why = "pinned by io.cloak.hypervisor.vcpus";
  } else if (rules.vcpus_measured) {
    size.vcpus = rules.default_vcpus;
    cpu_why = limited ? "the class's count: it is part of the launch measurement (pod limit "
                        "not applied)"
                      : "the class's count: it is part of the launch measurement";
  } else if (limited) {
    const int64_t period = pod.cpu_period_us.value_or(100000);
    size.vcpus = std::clamp<int64_t>(CeilDiv(*pod.cpu_quota_us, period), 1,
                                     std::max<int64_t>(1, rules.max_vcpus));
    cpu_why = absl::StrCat("pod CPU limit ", *pod.cpu_quota_us, "/", period, " us, at most ",
                           std::max<int64_t>(1, rules.max_vcpus), " (host CPUs)");
  } else {
    size.vcpus = rules.default_vcpus;
    cpu_why = "no pod CPU limit: the class default";
  }
  size.explanation = absl::StrCat(size.memory_mib, " MiB (", mem_why, "), ", size.vcpus,
                                  " vCPU(s) (", cpu_why, ")");
  return size;
}

}  // namespace cloak::shim
