# shellcheck shell=bash
# Sourced by the tests that run an e2e/local/up world (local_scenarios_test.sh,
# soak_test.sh). local_world_prereqs BUILD_DIR: skips (exit 77; under
# CI=true, fails: gt_skip) when not root or a tool or a built file that
# e2e/local/up needs is missing.
# shellcheck source=tests/guest-image/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../guest-image/common.sh"

local_world_prereqs() {
  local build=$1 tool f
  if [[ $(id -u) -ne 0 ]]; then gt_skip "needs root"; fi
  for tool in containerd ctr qemu-system-x86_64 docker-registry skopeo busybox openssl; do
    command -v "$tool" >/dev/null || gt_skip "$tool is not installed"
  done
  [[ -x /usr/lib/cni/bridge ]] || gt_skip "containernetworking-plugins not installed"
  for f in guest-image/initrd.img shim/containerd-shim-cloak-v2 kbs/cloak-kbs cli/cri/cloak-cri \
      cli/cloak/cloak snapshotter/cloak-snapshotter; do
    [[ -e $build/$f ]] || gt_skip "$build/$f not built"
  done
}
