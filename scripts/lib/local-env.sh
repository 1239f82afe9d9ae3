# shellcheck shell=bash disable=SC2154  # $work and $ns come from the sourcing script
# Sourced by scripts/demo and scripts/bench-start: a private containerd and a
# registry on 127.0.0.1 under one work dir, with a cleanup that stops only
# what was started here. Needs: $work (a fresh directory), $ns (containerd
# namespace). Sets $port, $image, and fills the array $pids.

say() { printf '\n==> %s\n' "$*"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
fmt_ms() { printf '%d.%03ds' $(( $1 / 1000 )) $(( $1 % 1000 )); }
ctr_() { ctr --address "$work/containerd.sock" --namespace "$ns" "$@"; }

pids=()
# Containers to remove on cleanup (ids).
containers=()

free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 40000 ))
    ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}

local_env_cleanup() {
  local c p
  for c in "${containers[@]}"; do
    ctr_ task kill -s KILL "$c" >/dev/null 2>&1 || true
    ctr_ task delete "$c" >/dev/null 2>&1 || true
    ctr_ container rm "$c" >/dev/null 2>&1 || true
  done
  # A shim exits by itself once its containers are deleted and removes its
  # socket in /run/containerd/s; give it that time before anything is killed
  # (a killed shim leaves its socket behind).
  for _ in $(seq 50); do
    pgrep -f "containerd-shim-cloak-v2.*$work" >/dev/null || break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  # Shims and VMs started for this run mention $work in their arguments.
  for p in $(pgrep -f "$work" || true); do kill -9 "$p" 2>/dev/null || true; done
  umount -R "$work/root" 2>/dev/null || true
  rm -rf "$work"
}

# start_registry: Debian's docker-registry on 127.0.0.1:$port.
start_registry() {
  port=$(free_port)
  mkdir -p "$work/registry"
  cat >"$work/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YML
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  pids+=($!)
}

# push_busybox_image TAG: builds the busybox image and pushes it; sets $image.
push_busybox_image() {
  local tag=$1
  scripts/make-busybox-image "$work/oci" "$tag"
  image=127.0.0.1:$port/busybox:$tag
  for _ in $(seq 50); do
    if skopeo copy -q --dest-tls-verify=false "oci:$work/oci:$tag" "docker://$image" \
        2>"$work/skopeo.err"; then
      return 0
    fi
    sleep 0.2
  done
  cat "$work/skopeo.err" >&2
  return 1
}

# start_containerd: a private containerd (CRI off) on $work/containerd.sock.
start_containerd() {
  cat >"$work/containerd.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
TOML
  containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [[ -S $work/containerd.sock ]] && return 0; sleep 0.1; done
  cat "$work/containerd.log" >&2
  return 1
}

# write_cloak_config: $work/cloak.toml over the installed defaults.
write_cloak_config() {
  cat >"$work/cloak.toml" <<TOML
# Overrides of the installed defaults (see config/config.toml).
[runtime]
state_dir = "$work/run"
TOML
}

# pss_kib PID: proportional set size of a process, in KiB.
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
