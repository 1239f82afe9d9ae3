#!/bin/bash
# Builds a one-layer OCI image layout whose layer tries to get out of the
# rootfs, for the guest pull tests (tests/guest/guest_agent_test.cc):
#
#   make_hostile_image.sh OUT_DIR TAG KIND
#
# KIND (the offending entry is named in brackets; the guest must name it):
#   dotdot           [../escape]  a regular file whose path climbs out
#   abs-symlink      [escape/pwned]  escape -> /etc, then a file written through it
#   rel-symlink      [up/pwned]   up -> ../../../../../tmp, then a file through it
#   hardlink         [pw]         a hardlink to ../../../../etc/passwd
#   hardlink-symlink [pw]         etcdir -> /etc, then a hardlink to etcdir/passwd
#   deep             [max_path_depth]  a file 200 directories deep (over the
#                                 applier's cap of 128 path components)
#   plain            (none)       a harmless layer with a unique file; the
#                                 test corrupts or truncates its blob in the
#                                 registry's storage (digest / size mismatch)
#
# Same layout shape as scripts/make-busybox-image (gzip -n, sha256 digests,
# index.json with org.opencontainers.image.ref.name). The tar is written with
# Python's tarfile so that no root is needed and no tar
# implementation "fixes" the names.
set -euo pipefail
out=$1 tag=$2 kind=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work/layer.tar" "$kind" "$tag" <<'EOF'
import io, sys, tarfile
path, kind, tag = sys.argv[1], sys.argv[2], sys.argv[3]

def entry(name, type=tarfile.REGTYPE, data=b"", linkname="", mode=0o644, devmajor=0, devminor=0):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = type, linkname, mode, 0
    ti.uid = ti.gid = 0
    ti.devmajor, ti.devminor = devmajor, devminor
    ti.size = len(data) if type == tarfile.REGTYPE else 0
    return ti, (io.BytesIO(data) if type == tarfile.REGTYPE else None)

entries = [entry("ok", tarfile.DIRTYPE, mode=0o755), entry("ok/first", data=b"harmless\n")]
if kind == "dotdot":
    entries.append(entry("../escape", data=b"escaped\n"))
elif kind == "abs-symlink":
    entries += [entry("escape", tarfile.SYMTYPE, linkname="/etc"),
                entry("escape/pwned", data=b"pwned\n")]
elif kind == "rel-symlink":
    entries += [entry("up", tarfile.SYMTYPE, linkname="../../../../../tmp"),
                entry("up/pwned", data=b"pwned\n")]
elif kind == "hardlink":
    entries.append(entry("pw", tarfile.LNKTYPE, linkname="../../../../etc/passwd"))
elif kind == "hardlink-symlink":
    entries += [entry("etcdir", tarfile.SYMTYPE, linkname="/etc"),
                entry("pw", tarfile.LNKTYPE, linkname="etcdir/passwd")]
elif kind == "deep":
    entries.append(entry("d/" * 200 + "deep", data=b"deep\n"))
elif kind == "plain":
    entries.append(entry("ok/" + tag, data=("unique layer for " + tag + "\n").encode()))
else:
    sys.exit("unknown kind " + kind)

with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
    for ti, data in entries:
        tar.addfile(ti, data)
EOF

diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -9 -c "$work/layer.tar" > "$work/layer.tar.gz"
mkdir -p "$out/blobs/sha256"
layer=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
cp "$work/layer.tar.gz" "$out/blobs/sha256/$layer"
layer_size=$(stat -c %s "$work/layer.tar.gz")
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$diff_id" > "$work/config.json"
config=$(sha256sum "$work/config.json" | cut -d' ' -f1)
cp "$work/config.json" "$out/blobs/sha256/$config"
config_size=$(stat -c %s "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$config" "$config_size" "$layer" "$layer_size" > "$work/manifest.json"
manifest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
cp "$work/manifest.json" "$out/blobs/sha256/$manifest"
manifest_size=$(stat -c %s "$work/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest" "$manifest_size" "$tag" > "$out/index.json"
# The layer digest, for the test that corrupts the blob in the registry.
echo "sha256:$layer"
