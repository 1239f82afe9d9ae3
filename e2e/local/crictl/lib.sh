# shellcheck shell=bash
# Sourced by the scenarios in e2e/local/crictl/. Each scenario takes the DIR
# of a running e2e/local/up and drives its CRI with crictl, or with cloak-cri
# when CRI_CLIENT=cloak-cri: the same invocations (crictl's), the same JSON
# configs. crictl is $CRICTL, else crictl on PATH, else the one in the tools
# directory beside the checkout (scripts/lib/crictl.sh); with none found a
# scenario prints "skipped: crictl not found" and exits 77.
#
# Sets: $dir, $endpoint, $image, $registry, $work (a scratch dir under DIR,
# removed at exit) and the function cri; fail and pass report the result.

[[ $# -ge 1 ]] || { echo "usage: $0 DIR (of a running e2e/local/up)" >&2; exit 2; }
[[ -f $1/env ]] || { echo "$0: $1/env missing: is $1 from e2e/local/up?" >&2; exit 2; }
dir=$(cd "$1" && pwd)
scenario=$(basename "$0")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)

# shellcheck disable=SC2034  # used by the scenarios
endpoint=$(sed -n 's/^CLOAK_CRI_ENDPOINT=//p' "$dir/env")
image=$(sed -n 's/^CLOAK_IMAGE=//p' "$dir/env")
# shellcheck disable=SC2034  # used by the scenarios
registry=$(sed -n 's/^CLOAK_REGISTRY=//p' "$dir/env")
client=${CRI_CLIENT:-crictl}
case $client in
  crictl)
    # shellcheck source=scripts/lib/crictl.sh
    source "$repo/scripts/lib/crictl.sh"
    rc=0
    crictl=$(find_crictl "$repo") || rc=$?
    if [[ $rc -eq 2 ]]; then exit 2; fi
    if [[ $rc -ne 0 ]]; then
      echo "$scenario: skipped: crictl not found (looked at $(crictl_search_path "$repo"))"
      exit 77
    fi
    # -t: crictl's deadline for connecting and for each RPC (its default,
    # 2s, is too short for RunPodSandbox, which boots a VM).
    cri() { "$crictl" -r "$endpoint" -i "$endpoint" -t 240s "$@"; }
    ;;
  cloak-cri)
    cloak_cri=${CLOAK_CRI:-$(sed -n 's/^CLOAK_CRI=//p' "$dir/env")}
    cri() { "$cloak_cri" -r "$endpoint" -i "$endpoint" -t 240s "$@"; }
    ;;
  *)
    echo "$scenario: CRI_CLIENT must be crictl or cloak-cri, not $client" >&2
    exit 2
    ;;
esac

work=$(mktemp -d "$dir/scenario-$scenario-XXXXXX")
pods=()
# Pods still around at exit (a failed step) are stopped and removed.
cleanup() {
  local p
  for p in "${pods[@]}"; do
    cri stopp "$p" >/dev/null 2>&1 || true
    cri rmp "$p" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "$scenario: FAIL ($client): $*" >&2; exit 1; }
pass() { echo "$scenario: ok ($client)"; }

# config NAME.json POD_NAME: a config of configs/ with its placeholders
# filled in (@IMAGE@ $image, @INITDATA@ $initdata_b64, @VOLUMES@ $volumes and
# @HOSTDIR@ $hostdir if set), written under $work; prints its path.
config() {
  local out=$work/$2-$1
  sed -e "s|@IMAGE@|$image|g" -e "s|@NAME@|$2|g" -e "s|@LOGDIR@|$dir/logs/$2|g" \
    -e "s|@INITDATA@|${initdata_b64:-}|g" -e "s|@VOLUMES@|${volumes:-}|g" \
    -e "s|@HOSTDIR@|${hostdir:-}|g" "$here/configs/$1" >"$out"
  echo "$out"
}

# run_pod NAME: pulls the image, runs pod NAME with cloak-dev; prints its id.
run_pod() {
  local pod
  cri pull "$image" >/dev/null || fail "pull $image"
  pod=$(cri runp --runtime cloak-dev "$(config pod.json "$1")") || fail "runp $1"
  echo "$pod"
}

# start_ctr POD POD_NAME CONFIG.json: creates and starts a container; prints its id.
start_ctr() {
  local ctr
  ctr=$(cri create "$1" "$(config "$3" "$2")" "$(config pod.json "$2")") || fail "create $3 in $2"
  cri start "$ctr" >/dev/null || fail "start $ctr"
  echo "$ctr"
}

# exec_sync CTR CMD...: ExecSync; prints the command's stdout and stderr
# and returns its exit code. No "--" before CMD: crictl passes one on as the
# command's first word (so does cloak-cri, docs/cri.md).
exec_sync() { cri exec -s "$@"; }

# remove_pod POD: StopPodSandbox + RemovePodSandbox.
remove_pod() {
  cri stopp "$1" >/dev/null || fail "stopp $1"
  cri rmp "$1" >/dev/null || fail "rmp $1"
}

# wait_for_log PATH TEXT: waits up to 10 s for TEXT in the CRI log at PATH.
wait_for_log() {
  for _ in $(seq 100); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "no \"$2\" in $1"
}

# qemu_pids NEEDLE: QEMU processes whose command line names NEEDLE.
qemu_pids() {
  local p
  for p in $(pgrep -f qemu-system || true); do
    tr '\0' '\n' 2>/dev/null <"/proc/$p/cmdline" | grep -qF -- "$1" && echo "$p"
  done
  return 0
}
