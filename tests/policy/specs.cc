#include "tests/policy/specs.h"

#include "absl/strings/str_cat.h"

namespace cloak::policy_test {

using nlohmann::json;

namespace {

json Caps() {
  json caps = {"CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
               "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
               "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
               "CAP_KILL",    "CAP_AUDIT_WRITE"};
  return {{"bounding", caps}, {"effective", caps}, {"permitted", caps}};
}

json Mount(const char* dest, const char* type, const std::string& source,
           std::vector<std::string> options) {
  return {{"destination", dest}, {"type", type}, {"source", source}, {"options", options}};
}

json Linux(json namespaces) {
  return {{"namespaces", std::move(namespaces)},
          {"maskedPaths",
           {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
            "/sys/firmware"}},
          {"readonlyPaths",
           {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
          {"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
          {"cgroupsPath", "/default/x"}};
}

json DefaultMounts() {
  return {Mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
          Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
          Mount("/dev/pts", "devpts", "devpts",
                {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
          Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
          Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
          Mount("/sys/fs/cgroup", "cgroup", "cgroup",
                {"nosuid", "noexec", "nodev", "relatime", "ro"})};
}

}  // namespace

json CtrSpec(const std::vector<std::string>& args) {
  json mounts = DefaultMounts();
  mounts.push_back(Mount("/dev/shm", "tmpfs", "shm",
                         {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
  mounts.push_back(Mount("/run", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  return {{"ociVersion", "1.1.0"},
          {"process",
           {{"user", {{"uid", 0}, {"gid", 0}}},
            {"args", args},
            {"env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
            {"cwd", "/"},
            {"capabilities", Caps()},
            {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
            {"noNewPrivileges", true}}},
          {"root", {{"path", "rootfs"}}},
          {"hostname", ""},
          {"mounts", mounts},
          {"linux", Linux({{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}},
                           {{"type", "mount"}}, {{"type", "network"}}})}};
}

json CriSpec(const std::string& name, const std::vector<std::string>& args,
             const std::vector<std::string>& env) {
  const std::string sb = absl::StrCat("/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/",
                                      kSandboxId);
  json mounts = DefaultMounts();
  mounts.push_back(Mount("/etc/hosts", "bind", sb + "/hosts", {"rbind", "rprivate", "rw"}));
  mounts.push_back(Mount("/dev/termination-log", "bind",
                         absl::StrCat("/var/lib/kubelet/pods/", kPodUid, "/containers/", name,
                                      "/1a2b3c4d"),
                         {"rbind", "rprivate", "rw"}));
  mounts.push_back(Mount("/etc/hostname", "bind",
                         absl::StrCat("/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/",
                                      kSandboxId, "/hostname"),
                         {"rbind", "rprivate", "rw"}));
  mounts.push_back(Mount("/etc/resolv.conf", "bind",
                         absl::StrCat("/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/",
                                      kSandboxId, "/resolv.conf"),
                         {"rbind", "rprivate", "rw"}));
  mounts.push_back(Mount("/dev/shm", "bind",
                         absl::StrCat("/run/containerd/io.containerd.grpc.v1.cri/sandboxes/",
                                      kSandboxId, "/shm"),
                         {"rbind", "rprivate", "rw"}));
  return {{"ociVersion", "1.1.0"},
          {"process",
           {{"user", {{"uid", 0}, {"gid", 0}, {"additionalGids", {0, 10}}}},
            {"args", args},
            {"env", env},
            {"cwd", "/"},
            {"capabilities", Caps()},
            {"oomScoreAdj", 1000}}},
          {"root", {{"path", "rootfs"}}},
          {"mounts", mounts},
          {"annotations",
           {{"io.kubernetes.cri.container-type", "container"},
            {"io.kubernetes.cri.container-name", name},
            {"io.kubernetes.cri.sandbox-id", kSandboxId},
            {"io.kubernetes.cri.sandbox-name", "web"},
            {"io.kubernetes.cri.sandbox-namespace", "default"},
            {"io.kubernetes.cri.image-name", "registry.example:5000/web/app:1.0"}}},
          {"linux", Linux({{{"type", "pid"}},
                           {{"type", "ipc"}, {"path", "/proc/4242/ns/ipc"}},
                           {{"type", "uts"}, {"path", "/proc/4242/ns/uts"}},
                           {{"type", "mount"}},
                           {{"type", "network"}, {"path", "/var/run/netns/cni-1234"}}})}};
}

json CriSandboxSpec() {
  json spec = CtrSpec({"/pause"});
  spec["annotations"] = {{"io.kubernetes.cri.container-type", "sandbox"},
                         {"io.kubernetes.cri.sandbox-id", kSandboxId},
                         {"io.kubernetes.cri.sandbox-name", "web"}};
  return spec;
}

agent::v1::CreateContainerRequest Create(const std::string& id, const std::string& image,
                                         const json& spec, bool sandbox) {
  agent::v1::CreateContainerRequest req;
  req.set_container_id(id);
  req.set_image(image);
  req.set_oci_spec_json(spec.dump());
  req.set_sandbox_container(sandbox);
  req.mutable_stdio()->set_stdout(true);
  return req;
}

agent::v1::ExecProcessRequest Exec(const std::string& id, const std::string& exec_id,
                                   const std::vector<std::string>& argv,
                                   const std::vector<std::string>& env) {
  agent::v1::ExecProcessRequest req;
  req.set_container_id(id);
  req.set_exec_id(exec_id);
  req.set_process_json(json{{"args", argv}, {"env", env}, {"cwd", "/"}}.dump());
  req.mutable_stdio()->set_stdout(true);
  return req;
}

const char* WebPodPolicy() {
  return R"json({
  "version": "1",
  "description": "pod web: setup, then app and its sidecar",
  "containers": [
    {"name": "*", "sandbox": true},
    {"name": "setup",
     "image": {"reference": "registry.example:5000/web/setup:1.0"},
     "args": ["/bin/setup", "--once"],
     "env": ["PATH=/usr/bin:/bin"],
     "stdio": {"read_output": true}},
    {"name": "app",
     "image": {"reference": {"regex": "registry\\.example:5000/web/app(:1\\.0|@sha256:[0-9a-f]{64})"},
               "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111"},
     "args": ["/app", "--listen", {"regex": ":[0-9]{2,5}"}],
     "env": ["PATH=/usr/bin:/bin", {"regex": "LOG_LEVEL=(debug|info|warn)"}],
     "working_dir": "/",
     "user": {"uid": 0, "gid": 0, "additional_gids": [0, 10]},
     "sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"},
     "masked_paths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
     "readonly_paths": ["/proc/sys", "/proc/sysrq-trigger"],
     "annotations": {"run.oci.keep_original_groups": "1"},
     "exec": [{"argv": ["/bin/check", "--ready"], "stdin": false},
              ["cat", {"regex": "/tmp/[a-z]+\\.log"}]],
     "after": ["setup"]},
    {"name": "sidecar",
     "image": "registry.example:5000/web/sidecar:1.0",
     "env": ["PATH=/usr/bin:/bin"],
     "stdio": {"read_output": false, "write_stdin": false},
     "after": ["setup"]}
  ],
  "copy_files": [{"path": {"regex": "/run/cloak/sandbox/volumes/kubernetes\\.io~(configmap|secret|projected)/[a-z0-9-]+(/.+)?"},
                  "max_bytes": 1048576}]
})json";
}

}  // namespace cloak::policy_test
