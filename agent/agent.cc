#include "agent/agent.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/agent_service.h"
#include "agent/container_manager.h"
#include "agent/crun.h"
#include "agent/init.h"
#include "agent/policy.h"
#include "agent/reaper.h"
#include "agent/rootfs.h"
#include "agent/image_rootfs.h"
#include "common/logging.h"
#include "common/status_macros.h"

#ifdef CLOAK_HAVE_AGENT_ATTEST
#include "agent/attest/initdata.h"
#include "agent/attest/ocicrypt.h"
#include "agent/attest/session.h"
#endif
#ifdef CLOAK_HAVE_TRANSPORT
#include <linux/vm_sockets.h>

#include "common/transport/agent_listener.h"
#endif

namespace cloak::agent {

namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("agent"); }

constexpr int kMaxMessageBytes = 16 << 20;
constexpr absl::Duration kShutdownGrace = absl::Seconds(2);

absl::StatusOr<std::string> FindInPath(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("empty binary name");
  if (name.front() == '/') {
    if (::access(name.c_str(), X_OK) != 0) return ErrnoError(errno, name);
    return name;
  }
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(name, " not found in PATH"));
}

#ifdef CLOAK_HAVE_TRANSPORT
bool VsockUsable() {
  int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ::close(fd);
  return ::access("/dev/vsock", F_OK) == 0;
}
#endif

}  // namespace

absl::Status RunAgent(const AgentOptions& options) {
  const absl::Time started = absl::Now();
  // SIGTERM/SIGINT are taken by sigtimedwait below; every thread made from
  // here on inherits the mask (children get a clean mask in the Reaper).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<PolicyEngine> policy;
  if (options.policy == "allow-all") {
    policy = std::make_unique<AllowAllPolicy>();
    Log()->warn("policy: {}", policy->Describe());
  } else if (options.policy == "enforce") {
    policy = std::make_unique<MeasuredPolicy>();
    Log()->info("policy: {}", policy->Describe());
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown policy mode '", options.policy, "' (enforce or allow-all)"));
  }

  ASSIGN_OR_RETURN(std::unique_ptr<Reaper> reaper, Reaper::Start(/*subreaper=*/true));

  CrunOptions crun_options;
  ASSIGN_OR_RETURN(crun_options.binary, FindInPath(options.crun));
  crun_options.state_root = options.crun_root.empty() ? options.run_dir + "/crun" : options.crun_root;
  if (options.no_pivot == "auto") {
    crun_options.no_pivot = RootIsInitramfs();
  } else {
    crun_options.no_pivot = options.no_pivot == "true";
  }
  std::error_code ec;
  std::filesystem::create_directories(options.run_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir ", options.run_dir, ": ", ec.message()));
  Crun crun(crun_options, reaper.get());
  Log()->info("crun {} (root {}, no-pivot {})", crun_options.binary, crun_options.state_root,
              crun_options.no_pivot);

  ASSIGN_OR_RETURN(std::unique_ptr<BusyboxRootfsProvider> pause,
                   BusyboxRootfsProvider::Create(options.busybox));
  std::unique_ptr<RootfsProvider> images;
  std::vector<std::string> features;
  const bool dev_class = options.tee_class == "none";
  Log()->info("runtime class: {} (plain http to a KBS or registry on the host: {})",
              options.tee_class.empty() ? std::string("unknown, treated as a TEE class")
                                        : options.tee_class,
              dev_class ? "allowed (dev)" : "refused");
  // The pod's [data.agent] settings, from the init-data CreateSandbox stores.
  struct PodSettings {
    absl::Mutex mu;
    PodImageSettings image ABSL_GUARDED_BY(mu);
  };
  auto pod_settings = std::make_shared<PodSettings>();
#ifdef CLOAK_HAVE_AGENT_ATTEST
  // Attests (once, on the first encrypted layer) to the KBS the pod's
  // init-data names; CreateSandbox leaves it at <run_dir>/initdata.toml.
  attest::SessionOptions attest_options;
  attest_options.initdata_path = options.run_dir + "/initdata.toml";
  attest_options.dev_class = dev_class;
  auto attestation = std::make_shared<attest::AttestationSession>(attest_options);
#endif
  if (options.rootfs_provider == "busybox") {
    ASSIGN_OR_RETURN(images, BusyboxRootfsProvider::Create(options.busybox));
    Log()->warn("rootfs provider: busybox (test mode: images are not pulled)");
  } else if (options.rootfs_provider == "image") {
    ImageRootfsOptions image_options;
    image_options.insecure_registries = options.insecure_registries;
    image_options.max_concurrent_downloads = options.max_concurrent_downloads;
    image_options.work_dir = options.run_dir + "/pull";
    image_options.plain_http_to_host = dev_class;
    // The policy outlives the provider (declared first, destroyed last).
    image_options.signature_policy = [engine = policy.get()] { return engine->ImageSignatures(); };
    image_options.pod_settings = [pod_settings] {
      absl::MutexLock lock(&pod_settings->mu);
      return pod_settings->image;
    };
#ifdef CLOAK_HAVE_AGENT_ATTEST
    image_options.decryptor = std::make_shared<attest::OcicryptDecryptor>(attestation);
    features.push_back("encrypted-images");
#endif
    ASSIGN_OR_RETURN(images, MakeImageRootfsProvider(image_options));
    features.push_back("guest-pull");
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown rootfs provider '", options.rootfs_provider, "'"));
  }

  ManagerOptions manager_options;
  manager_options.run_dir = options.run_dir;
  manager_options.cgroup_root = options.cgroup_root;
  manager_options.manage_guest = options.guest;
  manager_options.policy_checks_runtime_annotations = options.policy == "enforce";
#ifdef CLOAK_HAVE_AGENT_ATTEST
  // The init-data's digest is what the TEE evidence carries (HOST_DATA /
  // MRCONFIGID): the agent attests only with the document it acts on, so
  // settings taken from another document never get a key.
  manager_options.on_initdata = [pod_settings](const std::string& doc) {
    absl::StatusOr<attest::InitData> parsed = attest::ParseInitData(doc);
    if (!parsed.ok()) {
      Log()->warn("init-data: {} (its [data.agent] settings are not applied)",
                  std::string(parsed.status().message()));
      return;
    }
    const attest::AgentSettings& a = parsed->agent;
    if (!a.log_level.empty()) {
      if (absl::Status s = SetLogLevel(a.log_level); !s.ok()) Log()->warn("{}", s.ToString());
    }
    absl::MutexLock lock(&pod_settings->mu);
    pod_settings->image.insecure_registries = a.insecure_registries;
    pod_settings->image.max_concurrent_downloads = a.max_downloads;
    pod_settings->image.pull_retries = a.pull_retries;
    pod_settings->image.pull_retry_backoff_ms = a.pull_retry_backoff_ms;
    Log()->info("init-data agent settings: log_level {}, max_downloads {}, {} insecure registries, "
                "pull_retries {}, pull_retry_backoff_ms {}",
                a.log_level.empty() ? "(class default)" : a.log_level,
                a.max_downloads == 0 ? std::string("(class default)")
                                     : std::to_string(a.max_downloads),
                a.insecure_registries.size(),
                a.pull_retries < 0 ? std::string("(default)") : std::to_string(a.pull_retries),
                a.pull_retry_backoff_ms == 0 ? std::string("(default)")
                                             : std::to_string(a.pull_retry_backoff_ms));
  };
  // Key broker files (docs/policy.md "kbs_files"): fetched after attesting,
  // straight into guest memory.
  manager_options.fetch_kbs_resources = [attestation](const std::vector<std::string>& resources) {
    return attestation->Resources(resources);
  };
  features.push_back("kbs-files");
#endif
  ContainerManager manager(manager_options, &crun, reaper.get(), images.get(), pause.get());

  std::atomic<bool> power_off{false};
  absl::Notification shutdown;
  AgentServiceImpl::Options service_options;
  if (options.policy == "allow-all") features.push_back("policy-allow-all");
  service_options.features = features;
  service_options.on_power_off = [&] {
    power_off = true;
    if (!shutdown.HasBeenNotified()) shutdown.Notify();
  };
#ifdef CLOAK_HAVE_AGENT_ATTEST
  service_options.attestation_status = [attestation](v1::GetAttestationStatusResponse* resp) {
    attest::AttestationStatus st = attestation->Status();
    using R = v1::GetAttestationStatusResponse;
    switch (st.state) {
      case attest::AttestationStatus::State::kNone:
        resp->set_state(R::STATE_UNSPECIFIED);
        break;
      case attest::AttestationStatus::State::kAttested:
        resp->set_state(R::STATE_ATTESTED);
        break;
      case attest::AttestationStatus::State::kRefused:
        resp->set_state(R::STATE_REFUSED);
        break;
      case attest::AttestationStatus::State::kUnreachable:
        resp->set_state(R::STATE_UNREACHABLE);
        break;
    }
    resp->set_evidence_type(st.tee);
    resp->set_kbs_url(st.kbs_url);
    resp->set_detail(st.state == attest::AttestationStatus::State::kNone
                         ? "no attestation yet (attests on the first encrypted image)"
                         : st.detail);
    resp->set_initdata_digest(st.initdata_digest);
  };
  // A TEE guest (SNP, TDX, simulated SNP) attests at CreateSandbox, so a
  // pod whose evidence the key broker refuses fails at once; the sample
  // fallback of a plain dev guest attests lazily (docs/attestation.md).
  // Decided at CreateSandbox, when every device of the guest is there.
  service_options.attest_at_create_sandbox = [attestation]() -> absl::Status {
    if (!attestation->AttestsEarly()) {
      Log()->info("attestation: lazy (first encrypted layer): no TEE evidence in this guest");
      return absl::OkStatus();
    }
    Log()->info("attestation: early (at CreateSandbox): this is a TEE guest");
    return attestation->AttestNow();
  };
#endif
  AgentServiceImpl service(service_options, policy.get(), &manager);

  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(&service);
  std::string endpoint;
  if (absl::StartsWith(options.listen, "unix://")) {
    std::string path = options.listen.substr(strlen("unix://"));
    ::unlink(path.c_str());
    builder.AddListeningPort(absl::StrCat("unix:", path), grpc::InsecureServerCredentials());
    endpoint = options.listen;
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return absl::UnavailableError(absl::StrCat("cannot serve on ", options.listen));

#ifdef CLOAK_HAVE_TRANSPORT
  std::unique_ptr<transport::AgentListener> listener;
  if (endpoint.empty()) {
    std::string channel = options.listen;
    if (channel == "auto") channel = VsockUsable() ? "vsock" : "serial";
    if (channel == "vsock") {
      transport::VsockListener::Config config;
      config.port = options.vsock_port;
      ASSIGN_OR_RETURN(listener, transport::VsockListener::Create(config));
    } else if (channel == "serial") {
      transport::SerialPortListener::Config config;
      config.port_name = options.serial_port;
      // The port may appear a little after boot.
      const absl::Time until = absl::Now() + absl::Seconds(10);
      absl::StatusOr<std::unique_ptr<transport::SerialPortListener>> serial;
      while (!(serial = transport::SerialPortListener::Create(config)).ok() &&
             absl::IsNotFound(serial.status()) && absl::Now() < until) {
        absl::SleepFor(absl::Milliseconds(100));
      }
      RETURN_IF_ERROR(serial.status());
      listener = std::move(*serial);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown listen address '", options.listen, "'"));
    }
    RETURN_IF_ERROR(listener->Start(server.get()));
    endpoint = listener->Endpoint();
  }
#else
  if (endpoint.empty()) {
    return absl::UnimplementedError(absl::StrCat(
        "listen '", options.listen, "' needs the transport library; only unix:// is built in"));
  }
#endif
  Log()->info("cloak-agent {} serving on {} ({} after start)", v1::AgentService::service_full_name(),
              endpoint, absl::FormatDuration(absl::Now() - started));

  std::thread signal_thread([&] {
    struct timespec slice = {0, 200 * 1000 * 1000};
    while (!shutdown.HasBeenNotified()) {
      int sig = ::sigtimedwait(&stop_signals, nullptr, &slice);
      if (sig > 0) {
        Log()->info("signal {}: shutting down", sig);
        if (!shutdown.HasBeenNotified()) shutdown.Notify();
      }
    }
  });
  shutdown.WaitForNotification();
  signal_thread.join();

  // Let the DestroySandbox answer go out before the channel goes.
  absl::SleepFor(absl::Milliseconds(100));
#ifdef CLOAK_HAVE_TRANSPORT
  if (listener) listener->Stop();
#endif
  server->Shutdown(absl::ToChronoTime(absl::Now() + kShutdownGrace));
  if (manager.sandbox_state() == SandboxState::kReady) {
    absl::Status s = manager.DestroySandbox();
    if (!s.ok()) Log()->warn("shutdown: {}", s.ToString());
  }
  if (power_off && options.guest && ::getpid() == 1) PowerOff();
  Log()->info("cloak-agent stopped");
  return absl::OkStatus();
}

}  // namespace cloak::agent
