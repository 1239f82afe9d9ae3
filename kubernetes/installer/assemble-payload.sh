#!/usr/bin/env bash
# Assembles the installer payload from a build directory: the directory that
# cloak-deploy.sh installs from, and that the installer image carries at
# /opt/cloak-payload.
#
#   assemble-payload.sh BUILD_DIR OUT_DIR [--bundle PREFIX]
#
# OUT_DIR/bin/                containerd-shim-cloak-v2, cloak, and where built:
#                             cloak-snapshotter, cloak-kbs, cloak-simsp
# OUT_DIR/share/              guest vmlinuz, initrd.img, manifest.json; doc/
# OUT_DIR/kubernetes/installer/  cloak-deploy.sh, cloak-snapshotter.service
#
# --bundle PREFIX makes the payload run on nodes that lack Debian 12's
# libraries and QEMU (kind nodes, other distributions): every shared library
# the binaries and QEMU need goes to OUT_DIR/lib, the ELF files get
# PREFIX/lib/ld-linux-x86-64.so.2 as interpreter and PREFIX/lib as RUNPATH
# (patchelf), and QEMU comes with its firmware (share/qemu) behind a wrapper
# that passes -L. PREFIX must be the --prefix the installer is run with.
set -euo pipefail

die() {
  echo "assemble-payload: error: $*" >&2
  exit 1
}

(($# >= 2)) || die "usage: assemble-payload.sh BUILD_DIR OUT_DIR [--bundle PREFIX]"
build=$(cd "$1" && pwd)
out=$2
shift 2
bundle_prefix=""
while (($#)); do
  case "$1" in
    --bundle) bundle_prefix=${2:?--bundle needs the install prefix}; shift ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

mkdir -p "$out/bin" "$out/share/doc" "$out/kubernetes/installer"
out=$(cd "$out" && pwd)

copy_bin() {
  local from=$1 required=$2
  if [[ -x "$from" ]]; then
    install -m 0755 "$from" "$out/bin/$(basename "$from")"
  elif ((required)); then
    die "$from is not built (build it: scripts/build)"
  else
    echo "assemble-payload: $(basename "$from") is not built; the payload goes without it" >&2
  fi
}

copy_bin "$build/shim/containerd-shim-cloak-v2" 1
copy_bin "$build/cli/cloak/cloak" 1
copy_bin "$build/snapshotter/cloak-snapshotter" 0
copy_bin "$build/kbs/cloak-kbs" 0
copy_bin "$build/shim/simsp/cloak-simsp" 0

for f in vmlinuz initrd.img manifest.json; do
  [[ -f "$build/guest-image/$f" ]] || die "$build/guest-image/$f is missing (build the guest image: ninja -C $build guest-image)"
  install -m 0644 "$build/guest-image/$f" "$out/share/$f"
done
install -m 0644 "$src/docs/kubernetes.md" "$out/share/doc/kubernetes.md"
install -m 0755 "$src/kubernetes/installer/cloak-deploy.sh" "$out/kubernetes/installer/cloak-deploy.sh"
install -m 0644 "$src/kubernetes/installer/cloak-snapshotter.service" \
  "$out/kubernetes/installer/cloak-snapshotter.service"

if [[ -n "$bundle_prefix" ]]; then
  command -v patchelf >/dev/null || die "--bundle needs patchelf (apt-get install patchelf)"
  qemu=$(command -v qemu-system-x86_64) || die "--bundle needs qemu-system-x86_64 here"
  mkdir -p "$out/lib" "$out/libexec" "$out/share/qemu"
  install -m 0755 "$qemu" "$out/libexec/qemu-system-x86_64"
  # The firmware QEMU loads for a q35 direct-kernel boot, and the rest of
  # its data directory (small).
  cp -aL /usr/share/qemu/. "$out/share/qemu/"
  [[ -d /usr/share/seabios ]] && cp -aL /usr/share/seabios/. "$out/share/qemu/"
  # Debian's QEMU loads TCG as a module (the only one a Cloak VM needs).
  mkdir -p "$out/lib/qemu"
  tcg=/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so
  if [[ -e "$tcg" ]]; then install -m 0644 "$tcg" "$out/lib/qemu/"; fi
  cat >"$out/bin/qemu-system-x86_64" <<WRAP
#!/bin/sh
QEMU_MODULE_DIR=$bundle_prefix/lib/qemu exec $bundle_prefix/libexec/qemu-system-x86_64 -L $bundle_prefix/share/qemu "\$@"
WRAP
  chmod 0755 "$out/bin/qemu-system-x86_64"
  elves=()
  for f in "$out"/bin/* "$out"/libexec/*; do
    if head -c 4 "$f" | grep -q 'ELF'; then elves+=("$f"); fi
  done
  modules=("$out"/lib/qemu/*.so)
  for f in "${elves[@]}" "${modules[@]}"; do
    [[ -e "$f" ]] || continue
    ldd "$f" | awk '/=> \// { print $3 } /^\s*\/lib64\/ld-linux/ { print $1 }' |
      while read -r lib; do
        cp -nL "$lib" "$out/lib/"
      done
  done
  interp=$(basename "$(patchelf --print-interpreter "${elves[0]}")")
  [[ -e "$out/lib/$interp" ]] || cp -L "$(patchelf --print-interpreter "${elves[0]}")" "$out/lib/"
  for f in "${elves[@]}"; do
    patchelf --set-interpreter "$bundle_prefix/lib/$interp" --set-rpath "$bundle_prefix/lib" "$f"
  done
  for f in "${modules[@]}"; do
    if [[ -e "$f" ]]; then patchelf --set-rpath "$bundle_prefix/lib" "$f"; fi
  done
  echo "assemble-payload: bundled $(find "$out/lib" -type f | wc -l) libraries for prefix $bundle_prefix" >&2
fi
echo "assemble-payload: $out ($(du -sh "$out" | cut -f1))" >&2
