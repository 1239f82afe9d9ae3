#!/usr/bin/env bash
# One fault scenario of e2e/local/faults/ (kbs-down, snapshotter-killed)
# against a fresh e2e/local/up, driven with this build's cloak-cri;
# e2e/local/down stops the world even when the scenario fails.
# Usage: local_faults_test.sh BUILD_DIR SCENARIO. Exit 77 (ctest: skipped;
# under CI=true, a failure) when not root or a prerequisite is missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:?usage: $0 BUILD_DIR SCENARIO}
scenario=${2:?usage: $0 BUILD_DIR SCENARIO}
[[ -x $repo/e2e/local/faults/$scenario ]] || { echo "no scenario e2e/local/faults/$scenario" >&2; exit 2; }
# shellcheck source=tests/cli/cri/local_world_prereqs.sh
source "$repo/tests/cli/cri/local_world_prereqs.sh"
local_world_prereqs "$build"
command -v jq >/dev/null || gt_skip "jq is not installed"

dir=$(mktemp -d /tmp/ckfault-XXXXXX)
finish() {
  local rc=$?
  "$repo/e2e/local/down" "$dir" >/dev/null 2>&1 || true
  if [[ $rc -ne 0 ]]; then
    tail -n 40 "$dir/containerd.log" "$dir/snapshotter.log" "$dir/kbs.log" 2>/dev/null || true
  fi
  rm -rf "$dir"
  exit "$rc"
}
trap finish EXIT
start=$(date +%s)
BUILD_DIR=$build "$repo/e2e/local/up" "$dir" >/dev/null
echo "e2e/local/up: $(( $(date +%s) - start ))s"
start=$(date +%s)
CRI_CLIENT=cloak-cri "$repo/e2e/local/faults/$scenario" "$dir"
echo "$scenario: $(( $(date +%s) - start ))s"
