#!/bin/sh
# Test /init for the guest image boot test: checks what the agent will rely
# on and prints one "CLOAK-TEST: ..." marker per check, then powers off.
export PATH=/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs tmpfs /run
echo; echo "CLOAK-TEST: init-started uptime=$(cut -d' ' -f1 /proc/uptime)"

ok() { echo "CLOAK-TEST: ok $*"; }
fail() { echo "CLOAK-TEST: FAIL $*"; }

# modprobe resolves dependencies from the regenerated modules.dep.
for m in configfs tsm overlay vsock vmw_vsock_virtio_transport virtio_net virtio_blk; do
  if modprobe "$m"; then ok "modprobe $m"; else fail "modprobe $m"; fi
done
# The TEE guest drivers refuse to load without their hardware (ENODEV);
# check that they and their dependencies are in modules.dep.
for m in sev-guest tdx-guest; do
  if grep -q "/$m.ko:" "/lib/modules/$(uname -r)/modules.dep"; then ok "present $m"; else fail "present $m"; fi
done
grep -q vmw_vsock_virtio_transport /proc/modules && ok "lsmod vmw_vsock_virtio_transport" || fail "lsmod vmw_vsock_virtio_transport"

mount -t configfs configfs /sys/kernel/config
[ -d /sys/kernel/config/tsm/report ] && ok "configfs-tsm" || fail "configfs-tsm"

mkdir -p /run/ov/lower /run/ov/upper /run/ov/work /run/ov/merged
echo lower > /run/ov/lower/f
if mount -t overlay overlay -o lowerdir=/run/ov/lower,upperdir=/run/ov/upper,workdir=/run/ov/work /run/ov/merged &&
   [ "$(cat /run/ov/merged/f)" = lower ]; then ok "overlay-mount"; else fail "overlay-mount"; fi

port=""
for p in /sys/class/virtio-ports/*; do
  [ -f "$p/name" ] && [ "$(cat "$p/name")" = cloak.agent ] && port=${p##*/}
done
[ -n "$port" ] && [ -c "/dev/$port" ] && ok "virtio-port cloak.agent /dev/$port" || fail "virtio-port cloak.agent"

if v=$(crun --version 2>&1); then ok "crun-version $(echo "$v" | head -n 1)"; else fail "crun-version $v"; fi

# A container through crun: rootfs is a copy of busybox, no pivot_root in an
# initramfs root.
b=/run/bundle
mkdir -p $b/rootfs/bin $b/rootfs/proc $b/rootfs/dev $b/rootfs/sys
cp /usr/bin/busybox $b/rootfs/bin/busybox
ln -s busybox $b/rootfs/bin/sh
ln -s busybox $b/rootfs/bin/echo
(cd $b && crun spec)
cd $b || exit 1
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"$/"sh", "-c", "echo hello-from-container"/' config.json
if out=$(crun --cgroup-manager=cgroupfs run --no-pivot t1 2>&1) && echo "$out" | grep -q hello-from-container; then
  ok "crun-run"
else
  fail "crun-run $out"
fi
cd /

echo "CLOAK-TEST: done uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
