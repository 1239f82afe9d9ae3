#!/usr/bin/env bash
# Builds the guest image twice from the same inputs into two fresh
# directories and checks that vmlinuz, initrd.img and manifest.json are
# byte-identical, and that the manifest's digests describe the files.
# Usage: reproducible_test.sh GUEST_IMAGE_BUILD TEST_INIT [AGENT]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"

build=${1:?usage: $0 BUILD TEST_INIT [AGENT]}
init=${2:?usage: $0 BUILD TEST_INIT [AGENT]}
# Any fixed dynamic binary stands in for cloak-agent, so that the host
# library path (ldd, dpkg -S) is exercised too.
agent=${3:-$(command -v zstd || true)}
command -v apt-get >/dev/null || gt_skip "not a Debian host (no apt-get)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(--init "$init")
[[ -n $agent ]] && args+=(--agent "$agent")

# Different temp dirs, umasks and working directories must not matter.
(cd / && umask 022 && TMPDIR=$tmp "$build" --out "$tmp/a" "${args[@]}")
(cd "$tmp" && umask 077 && mkdir t2 && TMPDIR=$tmp/t2 "$build" --out "$tmp/b" "${args[@]}")

for f in vmlinuz initrd.img manifest.json; do
  sa=$(sha256sum <"$tmp/a/$f" | cut -d' ' -f1)
  sb=$(sha256sum <"$tmp/b/$f" | cut -d' ' -f1)
  [[ $sa == "$sb" ]] || gt_fail "$f differs between two builds: $sa vs $sb"
  echo "identical $f $sa"
done

m=$tmp/a/manifest.json
for pair in vmlinuz:vmlinuz initrd:initrd.img; do
  obj=${pair%%:*} file=${pair#*:}
  want=$(gt_manifest_obj_field "$m" "$obj" sha256)
  size=$(gt_manifest_obj_field "$m" "$obj" size)
  [[ $want == "$(sha256sum <"$tmp/a/$file" | cut -d' ' -f1)" ]] || gt_fail "manifest sha256 of $file is wrong"
  [[ $size == "$(stat -c %s "$tmp/a/$file")" ]] || gt_fail "manifest size of $file is wrong"
done
cmdline=$(gt_manifest_field "$m" cmdline)
[[ -n $cmdline ]] || gt_fail "manifest has no cmdline"
[[ $(gt_manifest_field "$m" cmdline_sha256) == "$(printf '%s' "$cmdline" | sha256sum | cut -d' ' -f1)" ]] ||
  gt_fail "manifest cmdline_sha256 does not match its cmdline"
[[ $(gt_manifest_field "$m" cmdline_nul_sha256) == "$({ printf '%s' "$cmdline"; head -c1 /dev/zero; } | sha256sum | cut -d' ' -f1)" ]] ||
  gt_fail "manifest cmdline_nul_sha256 does not match its cmdline"
! grep -qF "$tmp" "$m" || gt_fail "manifest leaks a build path"
! grep -qF "$init" "$m" || gt_fail "manifest leaks the init path"

# Every pinned package appears in the manifest with its lock version.
lock=$(dirname "$build")/packages.lock
while read -r role name version sum; do
  case $role in kernel|busybox|certs|crun|lib) ;; *) continue ;; esac
  grep -qF "{\"name\":\"$name\",\"version\":\"$version\",\"role\":\"$role\",\"deb_sha256\":\"$sum\"" "$m" ||
    gt_fail "manifest lacks $name=$version"
done <"$lock"

echo "initrd.img size: $(stat -c %s "$tmp/a/initrd.img") bytes (agent stand-in: ${agent:-none})"
echo "PASS"
