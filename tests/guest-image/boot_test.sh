#!/usr/bin/env bash
# Builds the guest image with a test /init, boots it under QEMU (TCG, never
# KVM: /dev/kvm here is kvm_pvm) with a virtio-serial port named cloak.agent,
# and checks the markers the test init prints on the serial console:
# modprobe through the regenerated modules.dep, configfs-tsm, an overlay
# mount, the virtio port, crun --version and a crun container.
# Prints the initrd size and the boot-to-marker times.
# Usage: boot_test.sh GUEST_IMAGE_BUILD TEST_INIT
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"

build=${1:?usage: $0 BUILD TEST_INIT}
init=${2:?usage: $0 BUILD TEST_INIT}
timeout_s=${CLOAK_BOOT_TIMEOUT:-120}
qemu=$(command -v qemu-system-x86_64 || true)
[[ -n $qemu ]] || gt_skip "qemu-system-x86_64 not installed"
command -v apt-get >/dev/null || gt_skip "not a Debian host (no apt-get)"

tmp=$(mktemp -d)
qemu_pid=""
cleanup() {
  if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill "$qemu_pid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

TMPDIR=$tmp "$build" --out "$tmp/img" --init "$init"
manifest=$tmp/img/manifest.json
cmdline=$(gt_manifest_field "$manifest" cmdline)
[[ -n $cmdline ]] || gt_fail "no cmdline in manifest"
initrd_size=$(stat -c %s "$tmp/img/initrd.img")

log=$tmp/serial.log
: >"$log"
start=$(date +%s%N)
"$qemu" -accel tcg -machine q35 -nodefaults -cpu max -m 512 -smp 1 \
  -nographic -no-reboot -monitor none \
  -serial "file:$log" \
  -kernel "$tmp/img/vmlinuz" -initrd "$tmp/img/initrd.img" -append "$cmdline" \
  -device virtio-serial-pci,id=vser0 \
  -chardev "socket,id=agent,path=$tmp/agent.sock,server=on,wait=off" \
  -device virtserialport,bus=vser0.0,chardev=agent,name=cloak.agent \
  </dev/null >"$tmp/qemu.out" 2>&1 &
qemu_pid=$!

ms_since_start() { echo $((($(date +%s%N) - start) / 1000000)); }
t_init="" t_done=""
deadline=$((SECONDS + timeout_s))
while ((SECONDS < deadline)); do
  if [[ -z $t_init ]] && grep -q '^CLOAK-TEST: init-started' "$log"; then t_init=$(ms_since_start); fi
  if grep -q '^CLOAK-TEST: done' "$log"; then t_done=$(ms_since_start); break; fi
  kill -0 "$qemu_pid" 2>/dev/null || break
  sleep 0.05
done

# QEMU must exit by itself after poweroff -f.
exited=0
for _ in $(seq 1 200); do
  if ! kill -0 "$qemu_pid" 2>/dev/null; then exited=1; break; fi
  sleep 0.1
done
t_exit=$(ms_since_start)
if ((exited)); then
  wait "$qemu_pid" 2>/dev/null || true
  qemu_pid=""
fi

echo "----- serial console -----"
tr -d '\r' <"$log" | grep -v $'^\e' || true
echo "--------------------------"
[[ -s $tmp/qemu.out ]] && { echo "qemu said:"; cat "$tmp/qemu.out"; }

[[ -n $t_done ]] || gt_fail "no 'CLOAK-TEST: done' marker within ${timeout_s}s"
((exited)) || gt_fail "QEMU did not exit after the guest powered off"
! grep -q '^CLOAK-TEST: FAIL' "$log" || gt_fail "guest checks failed: $(grep '^CLOAK-TEST: FAIL' "$log" | tr '\n' ';')"
for want in "modprobe configfs" "modprobe tsm" "modprobe overlay" "modprobe vsock" \
  "modprobe vmw_vsock_virtio_transport" "modprobe virtio_net" "present sev-guest" "present tdx-guest" \
  "configfs-tsm" "overlay-mount" "virtio-port cloak.agent" "crun-version crun version" "crun-run"; do
  grep -q "^CLOAK-TEST: ok $want" "$log" || gt_fail "missing marker: ok $want"
done

uptime_done=$(sed -n 's/^CLOAK-TEST: done uptime=\([0-9.]*\).*/\1/p' "$log")
uptime_init=$(sed -n 's/^CLOAK-TEST: init-started uptime=\([0-9.]*\).*/\1/p' "$log")
echo "initrd.img size: $initrd_size bytes ($(gt_manifest_obj_field "$manifest" initrd cpio_size) bytes uncompressed)"
echo "boot to init marker: ${t_init} ms wall (guest uptime ${uptime_init} s)"
echo "boot to done marker: ${t_done} ms wall (guest uptime ${uptime_done} s); QEMU exited at ${t_exit} ms"
echo "PASS"
