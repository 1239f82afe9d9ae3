#!/usr/bin/env bash
# scripts/soak in CI (docs/reliability.md, "Soak"). Usage:
#   soak_test.sh BUILD_DIR cycles   scripts/soak 3 passes: 3 pod lifecycles
#                                   through CRI, nothing leaked after warm-up,
#                                   RSS within its limit
#   soak_test.sh BUILD_DIR leak     the accounting sees a real leak: with
#                                   SOAK_LEAK_ON_PURPOSE=1 the last of 2 cycles
#                                   leaves its pod running, and scripts/soak
#                                   must fail naming the QEMU, the shim, the
#                                   netns, the tap and the sandbox it left
# Exit 77 (ctest: skipped; under CI=true, a failure) when not root or a
# prerequisite is missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:?usage: $0 BUILD_DIR cycles|leak}
mode=${2:?usage: $0 BUILD_DIR cycles|leak}
# shellcheck source=tests/cli/cri/local_world_prereqs.sh
source "$repo/tests/cli/cri/local_world_prereqs.sh"
local_world_prereqs "$build"
export BUILD_DIR=$build
case $mode in
  # 3 cycles judge the counts exactly; their RSS is within Go's GC noise
  # (docs/reliability.md, "Soak"), so its slack is twice the default here.
  cycles) SOAK_RSS_SLACK_KIB=${SOAK_RSS_SLACK_KIB:-4096} exec "$repo/scripts/soak" 3 ;;
  leak)
    rc=0
    out=$(SOAK_LEAK_ON_PURPOSE=1 SOAK_SETTLE=3 "$repo/scripts/soak" 2 2>&1) || rc=$?
    echo "$out"
    [[ $rc -eq 1 ]] || gt_fail "scripts/soak exited $rc with a pod left on purpose, want 1"
    for what in "qemu: 0 after warm-up, 1 now" "shims: 0 after warm-up, 1 now" \
        "netns: 0 after warm-up, 1 now" "taps: 0 after warm-up, 1 now" \
        "cri-pods: 0 after warm-up, 1 now" "soak: FAIL: a cycle leaked"; do
      [[ $out == *"$what"* ]] || gt_fail "scripts/soak did not report \"$what\""
    done
    echo "ok: the pod left on purpose was reported as a leak"
    ;;
  *) echo "usage: $0 BUILD_DIR cycles|leak" >&2; exit 2 ;;
esac
