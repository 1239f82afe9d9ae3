#!/usr/bin/env bash
# cloak-deploy.sh: installs Cloak on a Kubernetes node, or takes it off again.
# Run by the cloak-deploy DaemonSet (host / mounted at /host, hostPID), or by
# hand on a node. docs/kubernetes.md.
#
#   cloak-deploy.sh install   [options]
#   cloak-deploy.sh uninstall [options]
#
# install: copies the binaries and the guest image from the payload to
# <prefix> (default /opt/cloak), writes the shim configs /etc/cloak/*.toml,
# installs and starts cloak-snapshotter (systemd), backs up containerd's
# config once and adds Cloak to it with `cloak containerd-config`, restarts
# containerd and waits for it, and labels the node from `cloak check --json`.
# uninstall: undoes every step; containerd's config is restored byte for byte.
# Both are idempotent.
#
# Options:
#   --root DIR             the host's / as this process sees it (default /)
#   --scratch              DIR is a scratch root on this machine: written
#                          configs name files by their path under DIR (tests)
#   --payload DIR          payload (bin/, share/, kubernetes/installer/)
#                          (default: two levels above this script)
#   --prefix PATH          host path of binaries and guest image (/opt/cloak)
#   --config-dir PATH      host path of the shim configs (/etc/cloak)
#   --containerd-config P  host path of containerd's config
#                          (/etc/containerd/config.toml)
#   --containerd-version V auto, 1.6, 1.7 or 2.0 (default auto)
#   --handlers LIST        RuntimeClass handlers (cloak-dev,cloak-snp,cloak-tdx)
#   --snapshotter          install and configure cloak-snapshotter (default:
#                          when the payload has it)
#   --no-snapshotter       neither install cloak-snapshotter nor configure it
#   --purge                uninstall also removes cloak-snapshotter's state
#                          (/var/lib/cloak-snapshotter)
#   --state-dir PATH       the shim's runtime state dir (/run/cloak)
#   --memory-mib N         guest memory (512; the RuntimeClass overhead is
#                          measured for 512)
#   --kbs-url URL          kbs.url: the key broker of pods without their own
#                          init-data (measured as init-data; "" = none)
#   --insecure-registry R  a plain-HTTP registry the guests may use (repeat)
#   --snp-firmware PATH    OVMF (AmdSev) for cloak-snp (<prefix>/share/OVMF-AmdSev.fd)
#   --tdx-firmware PATH    TDVF for cloak-tdx (<prefix>/share/TDVF.fd)
#   --host-exec            run systemctl, ctr and `cloak check` in the host's
#                          namespaces (nsenter into PID 1; the DaemonSet sets it)
#   --no-restart           do not touch systemd units or restart containerd
#   --no-label             do not label the node
#   --node NAME            node to label (default $NODE_NAME)
#   --containerd-socket P  containerd's socket, to wait for after a restart
#                          and for cloak-snapshotter to read images from
#                          (/run/containerd/containerd.sock)
#   --containerd-wait S    seconds to wait for it to answer (120)
set -euo pipefail

readonly LABEL_PREFIX="cloak.io/runtime-"

die() {
  echo "cloak-deploy: error: $*" >&2
  exit 1
}
say() { echo "cloak-deploy: $*" >&2; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

action=${1:-}
[[ "$action" == install || "$action" == uninstall ]] || usage
shift

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=/
scratch=0
payload=$(cd "$script_dir/../.." && pwd)
prefix=/opt/cloak
config_dir=/etc/cloak
containerd_config=/etc/containerd/config.toml
containerd_version=auto
containerd_socket=/run/containerd/containerd.sock
containerd_wait=120
handlers=cloak-dev,cloak-snp,cloak-tdx
snapshotter=auto
purge=0
state_dir=/run/cloak
memory_mib=512
kbs_url=""
insecure_registries=()
snp_firmware=""
tdx_firmware=""
host_exec=0
restart=1
label=1
node=${NODE_NAME:-}

while (($#)); do
  case "$1" in
    --root) root=${2:?--root needs a directory}; shift ;;
    --scratch) scratch=1 ;;
    --payload) payload=${2:?}; shift ;;
    --prefix) prefix=${2:?}; shift ;;
    --config-dir) config_dir=${2:?}; shift ;;
    --containerd-config) containerd_config=${2:?}; shift ;;
    --containerd-version) containerd_version=${2:?}; shift ;;
    --containerd-socket) containerd_socket=${2:?}; shift ;;
    --containerd-wait) containerd_wait=${2:?}; shift ;;
    --handlers) handlers=${2:?}; shift ;;
    --snapshotter) snapshotter=1 ;;
    --no-snapshotter) snapshotter=0 ;;
    --purge) purge=1 ;;
    --state-dir) state_dir=${2:?}; shift ;;
    --memory-mib) memory_mib=${2:?}; shift ;;
    --kbs-url) kbs_url=${2?}; shift ;;
    --insecure-registry) insecure_registries+=("${2:?}"); shift ;;
    --snp-firmware) snp_firmware=${2:?}; shift ;;
    --tdx-firmware) tdx_firmware=${2:?}; shift ;;
    --host-exec) host_exec=1 ;;
    --no-restart) restart=0 ;;
    --no-label) label=0 ;;
    --node) node=${2:?}; shift ;;
    -h|--help) usage ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

for p in "$prefix" "$config_dir" "$containerd_config" "$state_dir"; do
  [[ "$p" == /* ]] || die "$p must be an absolute path"
done
[[ "$memory_mib" =~ ^[0-9]+$ ]] || die "--memory-mib must be a number of MiB, not $memory_mib"
[[ "$containerd_wait" =~ ^[0-9]+$ ]] || die "--containerd-wait must be a number of seconds, not $containerd_wait"
root=${root%/}
[[ -d "${root:-/}" ]] || die "--root ${root:-/} is not a directory"
if ((label)) && [[ -z "$node" ]]; then
  die "no node name to label: set NODE_NAME (the DaemonSet passes spec.nodeName) or --node, or pass --no-label"
fi

if [[ "$snapshotter" == auto ]]; then
  if [[ -x "$payload/bin/cloak-snapshotter" ]]; then snapshotter=1; else snapshotter=0; fi
fi

# Paths as this process reaches them, and as the host's programs name them.
on_host() { echo "$root$1"; }
if ((scratch)); then
  named() { echo "$root$1"; }
else
  named() { echo "$1"; }
fi
snp_firmware=${snp_firmware:-$prefix/share/OVMF-AmdSev.fd}
tdx_firmware=${tdx_firmware:-$prefix/share/TDVF.fd}

readonly backup_dir="$config_dir/backup"
readonly unit=/etc/systemd/system/cloak-snapshotter.service
readonly snapshotter_root=/var/lib/cloak-snapshotter
readonly snapshotter_socket=/run/cloak-snapshotter/snapshotter.sock
readonly bin_link_dir=/usr/local/bin

# Runs a command among the host's programs: through nsenter into PID 1's
# namespaces in the DaemonSet, else here.
host() {
  if ((host_exec)); then
    nsenter --target 1 --mount --uts --ipc --net --pid -- "$@"
  else
    "$@"
  fi
}

# The cloak binary: the host's copy when running in the host's namespaces.
cloak() {
  if ((host_exec)); then
    host "$(named "$prefix")/bin/cloak" "$@"
  else
    "$(on_host "$prefix")/bin/cloak" "$@"
  fi
}

# Copies src to dst only when the contents differ (keeps timestamps stable).
put() {
  local src=$1 dst=$2 mode=$3
  mkdir -p "$(dirname "$dst")"
  if [[ -f "$dst" ]] && cmp -s "$src" "$dst"; then
    chmod "$mode" "$dst"
    return 0
  fi
  install -m "$mode" "$src" "$dst.cloak-new"
  mv -f "$dst.cloak-new" "$dst"
}

# Writes stdin to dst only when it differs.
put_text() {
  local dst=$1 mode=$2 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  put "$tmp" "$dst" "$mode"
  rm -f "$tmp"
}

# The backup's name for a host path: /etc/containerd/config.toml ->
# etc_containerd_config.toml.
backup_name() {
  local p=${1#/}
  echo "${p//\//_}"
}

# Keeps the first version of a host file we are about to change: a copy
# (cp -p: bytes, mode, times), or a marker that it did not exist.
backup_once() {
  local file=$1 name
  name=$(backup_name "$file")
  local b
  b=$(on_host "$backup_dir")
  mkdir -p "$b"
  chmod 0700 "$b"
  if [[ -e "$b/$name.orig" || -e "$b/$name.absent" ]]; then
    return 0
  fi
  if [[ -e "$(on_host "$file")" ]]; then
    cp -p "$(on_host "$file")" "$b/$name.orig"
  else
    : >"$b/$name.absent"
  fi
}

# Puts a backed-up file back exactly as it was (or removes it if it did not
# exist), then drops the backup.
restore() {
  local file=$1 name b
  name=$(backup_name "$file")
  b=$(on_host "$backup_dir")
  if [[ -e "$b/$name.orig" ]]; then
    cp -p "$b/$name.orig" "$(on_host "$file")"
    rm -f "$b/$name.orig"
  elif [[ -e "$b/$name.absent" ]]; then
    rm -f "$(on_host "$file")" "$b/$name.absent"
  fi
}

handler_tee() {
  case "$1" in
    cloak-snp) echo snp ;;
    cloak-tdx) echo tdx ;;
    *) echo none ;;
  esac
}

toml_string_list() {
  local out="" r
  for r in "$@"; do
    out+="${out:+, }\"$r\""
  done
  echo "[$out]"
}

# The shim config of one handler (docs/kubernetes.md; every key is in
# config/config.toml).
shim_config() {
  local tee=$1 qemu firmware=""
  qemu=/usr/bin/qemu-system-x86_64
  if [[ -x "$payload/bin/qemu-system-x86_64" ]]; then
    qemu="$(named "$prefix")/bin/qemu-system-x86_64"
  fi
  case "$tee" in
    snp) firmware=$snp_firmware ;;
    tdx) firmware=$tdx_firmware ;;
  esac
  cat <<TOML
# Written by cloak-deploy.sh (tee.type = "$tee"); reinstalling rewrites it.
[runtime]
state_dir = "$(named "$state_dir")"

[hypervisor]
qemu_path = "$qemu"
kernel = "$(named "$prefix")/share/vmlinuz"
initrd = "$(named "$prefix")/share/initrd.img"
memory_mib = $memory_mib
firmware = "$firmware"

[tee]
type = "$tee"

[kbs]
url = "$kbs_url"

[image]
insecure_registries = $(toml_string_list "${insecure_registries[@]}")
TOML
}

payload_has() { [[ -e "$payload/$1" ]]; }

install_files() {
  local p b
  p=$(on_host "$prefix")
  for b in containerd-shim-cloak-v2 cloak; do
    payload_has "bin/$b" || die "the payload $payload has no bin/$b"
  done
  for b in "$payload"/bin/*; do
    put "$b" "$p/bin/$(basename "$b")" 0755
  done
  # A bundled payload's libraries, the real QEMU behind its wrapper, and
  # QEMU's firmware (assemble-payload.sh --bundle).
  local d
  for d in lib libexec share/qemu; do
    if [[ -d "$payload/$d" ]]; then
      mkdir -p "$p/$d"
      cp -a "$payload/$d/." "$p/$d/"
    fi
  done
  for f in vmlinuz initrd.img manifest.json; do
    payload_has "share/$f" || die "the payload $payload has no guest image file share/$f"
    put "$payload/share/$f" "$p/share/$f" 0644
  done
  if payload_has share/doc/kubernetes.md; then
    put "$payload/share/doc/kubernetes.md" "$p/share/doc/kubernetes.md" 0644
  fi
  # containerd finds io.containerd.cloak.v2 as containerd-shim-cloak-v2 on its PATH.
  mkdir -p "$(on_host "$bin_link_dir")"
  for b in containerd-shim-cloak-v2 cloak; do
    ln -sfn "$(named "$prefix")/bin/$b" "$(on_host "$bin_link_dir")/$b"
  done

  local c h
  c=$(on_host "$config_dir")
  mkdir -p "$c"
  backup_once "$config_dir/config.toml"
  shim_config none | put_text "$c/config.toml" 0644
  IFS=, read -r -a hs <<<"$handlers"
  for h in "${hs[@]}"; do
    shim_config "$(handler_tee "$h")" | put_text "$c/$h.toml" 0644
  done
}

install_snapshotter() {
  if ! ((snapshotter)); then
    say "no cloak-snapshotter: containerd unpacks images on the host (encrypted images cannot be pulled through CRI)"
    return 0
  fi
  if ! payload_has bin/cloak-snapshotter; then
    die "the payload has no bin/cloak-snapshotter: build it, or pass --no-snapshotter"
  fi
  # Its state and socket as the host names them (under a scratch root, its
  # paths there); containerd's socket as given (the snapshotter reads image
  # manifests from containerd's content store).
  sed -e "s|@PREFIX@|$(named "$prefix")|g" \
      -e "s|@ROOT@|$(named "$snapshotter_root")|g" \
      -e "s|@ADDRESS@|$(named "$snapshotter_socket")|g" \
      -e "s|@CONTAINERD_ADDRESS@|$containerd_socket|g" \
      "$payload/kubernetes/installer/cloak-snapshotter.service" |
    put_text "$(on_host "$unit")" 0644
  if ((restart)); then
    host systemctl daemon-reload
    host systemctl enable --now cloak-snapshotter.service
  fi
}

wait_for_containerd() {
  local i
  for ((i = 0; i < containerd_wait; i++)); do
    if host ctr --address "$containerd_socket" version >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  return 1
}

restart_containerd() {
  ((restart)) || { say "not restarting containerd (--no-restart)"; return 0; }
  say "restarting containerd"
  host systemctl restart containerd.service || true
  if wait_for_containerd; then
    say "containerd answers on $containerd_socket"
    return 0
  fi
  return 1
}

configure_containerd() {
  # The host's cloak (host-exec) names host paths; a local one reaches the
  # file under --root.
  local config_arg
  config_arg=$(on_host "$containerd_config")
  ((host_exec)) && config_arg=$containerd_config
  local args=(containerd-config --config "$config_arg"
              --handlers "$handlers" --shim-config-dir "$(named "$config_dir")"
              --containerd-version "$containerd_version")
  if ((snapshotter)); then
    args+=(--snapshotter-address "$(named "$snapshotter_socket")")
  else
    args+=(--no-snapshotter)
  fi
  backup_once "$containerd_config"
  local before existed=0
  before=$(mktemp)
  if [[ -e "$(on_host "$containerd_config")" ]]; then
    cp -p "$(on_host "$containerd_config")" "$before"
    existed=1
  fi
  mkdir -p "$(dirname "$(on_host "$containerd_config")")"
  cloak "${args[@]}"
  if cmp -s "$before" "$(on_host "$containerd_config")"; then
    say "containerd's config already has Cloak"
    rm -f "$before"
    return 0
  fi
  # containerd itself must be able to read the result before it is
  # restarted on it (where the host's containerd can reach the file).
  if { ((host_exec)) || ((scratch)) || [[ -z "$root" ]]; } && host sh -c 'command -v containerd' >/dev/null 2>&1; then
    if ! host containerd --config "$(named "$containerd_config")" config dump >/dev/null 2>"$before.err"; then
      if ((existed)); then cp -p "$before" "$(on_host "$containerd_config")"; else rm -f "$(on_host "$containerd_config")"; fi
      say "containerd cannot read the new config: $(cat "$before.err")"
      rm -f "$before" "$before.err"
      die "left containerd's config as it was"
    fi
    rm -f "$before.err"
  fi
  if ! restart_containerd; then
    say "containerd did not come back with the new config; putting the previous one back"
    if ((existed)); then
      cp -p "$before" "$(on_host "$containerd_config")"
    else
      rm -f "$(on_host "$containerd_config")"
    fi
    rm -f "$before"
    restart_containerd || true
    die "containerd failed to restart with Cloak's config (see: journalctl -u containerd)"
  fi
  rm -f "$before"
}

label_node() {
  ((label)) || return 0
  local labels
  labels=$(cloak check --json --root "$( ((host_exec)) && echo / || echo "$root")" \
             --containerd-config "$containerd_config" | jq -r '.node_labels | to_entries[] | "\(.key)=\(.value)"') ||
    die "cloak check --json failed"
  # shellcheck disable=SC2086 # one argument per label
  kubectl label node "$node" --overwrite $labels >/dev/null
  say "labelled node $node: $(echo "$labels" | tr '\n' ' ')"
}

unlabel_node() {
  ((label)) || return 0
  local keys=() h
  declare -A seen=()
  IFS=, read -r -a hs <<<"cloak-dev,cloak-snp,cloak-tdx,$handlers"
  for h in "${hs[@]}"; do
    [[ -n "${seen[$h]:-}" ]] && continue
    seen[$h]=1
    keys+=("$LABEL_PREFIX$h-")
  done
  kubectl label node "$node" "${keys[@]}" >/dev/null 2>&1 || true
  say "removed the cloak.io labels of node $node"
}

do_install() {
  say "installing into ${root:-/} (prefix $prefix, handlers $handlers)"
  install_files
  install_snapshotter
  configure_containerd
  label_node
  say "installed"
}

do_uninstall() {
  say "uninstalling from ${root:-/}"
  unlabel_node
  local changed=0
  local b
  b=$(on_host "$backup_dir")
  local cname
  cname=$(backup_name "$containerd_config")
  if [[ -e "$b/$cname.orig" || -e "$b/$cname.absent" ]]; then
    local current
    current=$(mktemp)
    [[ -e "$(on_host "$containerd_config")" ]] && cp -p "$(on_host "$containerd_config")" "$current"
    restore "$containerd_config"
    cmp -s "$current" "$(on_host "$containerd_config")" 2>/dev/null || changed=1
    rm -f "$current"
  fi
  if ((changed)); then
    restart_containerd || say "warning: containerd did not answer after the restart"
  fi
  if [[ -e "$(on_host "$unit")" ]]; then
    if ((restart)); then
      host systemctl disable --now cloak-snapshotter.service || true
    fi
    rm -f "$(on_host "$unit")"
    if ((restart)); then
      host systemctl daemon-reload || true
    fi
  fi
  if ((purge)); then
    rm -rf "$(on_host "$snapshotter_root")"
  fi
  local c h
  c=$(on_host "$config_dir")
  IFS=, read -r -a hs <<<"cloak-dev,cloak-snp,cloak-tdx,$handlers"
  for h in "${hs[@]}"; do
    rm -f "$c/$h.toml"
  done
  rm -f "$c/config.toml"
  restore "$config_dir/config.toml"
  rmdir "$b" 2>/dev/null || true
  rmdir "$c" 2>/dev/null || true
  for h in containerd-shim-cloak-v2 cloak; do
    local link
    link=$(on_host "$bin_link_dir/$h")
    if [[ -L "$link" && "$(readlink "$link")" == "$(named "$prefix")/bin/$h" ]]; then
      rm -f "$link"
    fi
  done
  rm -rf "$(on_host "$prefix")"
  say "uninstalled"
}

case "$action" in
  install) do_install ;;
  uninstall) do_uninstall ;;
esac
