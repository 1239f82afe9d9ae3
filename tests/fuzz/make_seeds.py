#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into corpus/<target>/.

Run from anywhere: python3 tests/fuzz/make_seeds.py. The seeds are valid
inputs (and a few near misses) so the fuzzer starts from the formats'
interesting paths; the files are checked in, this script documents how they
were made. The SEV-SNP and TDX seeds come from tests/testdata/.
"""
import binascii
import hashlib
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def frame(stream, mtype, flags, payload):
    return struct.pack(">IIBB", len(payload), stream, mtype, flags) + payload


def ttrpc():
    req = b"\x0a\x1bcontainerd.task.v2.Task\x12\x05State\x1a\x04\x0a\x02id"
    write("ttrpc_frame_fuzz", "request", b"\x09" + frame(1, 1, 0, req))
    write("ttrpc_frame_fuzz", "two_frames_split", b"\x03" + frame(1, 1, 0, req) + frame(3, 2, 0, b"\x12\x00"))
    write("ttrpc_frame_fuzz", "data_flags", b"\x3f" + frame(5, 3, 1, b"abc") + frame(5, 3, 4, b""))
    write("ttrpc_frame_fuzz", "oversized", b"\x10" + struct.pack(">IIBB", (4 << 20) + 1, 7, 1, 0) + b"x" * 64)
    write("ttrpc_frame_fuzz", "unknown_type", b"\x01" + frame(1, 9, 0, b""))


def sha(s):
    return "sha256:" + hashlib.sha256(s.encode()).hexdigest()


def image():
    refs = ["busybox", "docker.io/library/busybox:1.36", "127.0.0.1:5000/cloak/test:v1",
            "quay.io/a/b/c@" + sha("x"), "localhost/x:y@" + sha("y"), "[::1]:5000/a:b",
            "Upper/case", "a//b", "a:" + "t" * 200]
    for i, r in enumerate(refs):
        write("image_reference_fuzz", f"ref{i}", r)
    auths = ['Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
             'scope="repository:library/busybox:pull"',
             '  bearer Realm = "http://x/t?a=1" , service=plain,  scope="a\\"b,c", error="insufficient_scope"',
             'Basic realm="Registry Realm"', 'Bearer realm="unterminated']
    for i, a in enumerate(auths):
        write("image_manifest_fuzz", f"auth{i}", b"\x00" + a.encode())
    cfg = sha("config")
    manifest = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":12},'
                '"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":34},'
                '{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd+encrypted","digest":"%s","size":5,'
                '"annotations":{"org.opencontainers.image.enc.keys.provider.attestation-agent":"e30="}}]}'
                % (cfg, sha("l1"), sha("l2")))
    write("image_manifest_fuzz", "manifest", b"\x01" + manifest.encode())
    docker = ('{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
              '"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"%s","size":1},'
              '"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"%s","size":2}]}'
              % (cfg, sha("d1")))
    write("image_manifest_fuzz", "docker_manifest", b"\x01" + docker.encode())
    index = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
             '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":100,'
             '"platform":{"os":"linux","architecture":"amd64"}},'
             '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":100,'
             '"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}' % (sha("m1"), sha("m2")))
    write("image_manifest_fuzz", "index", b"\x02" + index.encode())
    write("image_manifest_fuzz", "schema1", b"\x02" + b'{"schemaVersion":1,"fsLayers":[]}')
    write("image_manifest_fuzz", "media_type", b"\x03application/vnd.oci.image.layer.v1.tar+zstd")


def tee():
    hexdump = (ROOT / "tests/testdata/snp/report_milan.hex").read_text()
    report = binascii.unhexlify("".join(hexdump.split()))
    write("tee_evidence_fuzz", "snp_milan", b"\x00" + report)
    quote = (ROOT / "tests/testdata/tdx/tdx_quote_5.dat").read_bytes()
    write("tee_evidence_fuzz", "tdx_v5", b"\x01" + quote)
    write("tee_evidence_fuzz", "tdx_short", b"\x01" + quote[:100])


def config():
    write("config_toml_fuzz", "default.toml", (ROOT / "config/config.toml").read_bytes())
    write("config_toml_fuzz", "small_with_annotations",
          '[runtime]\nlog_level = "debug"\nannotation_allowlist = ["io.cloak.hypervisor.memory_mib",'
          ' "io.cloak.agent.boot_timeout"]\n[hypervisor]\nmemory_mib = 512\n\0'
          'io.cloak.hypervisor.memory_mib=1024\nio.cloak.agent.boot_timeout=1m30s\nio.cloak.image.x=1\n')
    write("config_toml_fuzz", "bad_type", '[hypervisor]\nvcpus = "two"\n')


def policy():
    for p in sorted((ROOT / "policy/examples").iterdir()):
        write("policy_fuzz", p.name, p.read_bytes())


def layers():
    import gzip
    import io
    import tarfile

    def tar(entries, compress=False):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for name, kind, extra in entries:
                info = tarfile.TarInfo(name)
                info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
                info.type = kind
                body = None
                if kind == tarfile.REGTYPE:
                    body = extra.encode()
                    info.size = len(body)
                elif kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                    info.linkname = extra
                elif kind == tarfile.CHRTYPE:
                    info.devmajor, info.devminor = extra
                if name.endswith("setuid"):
                    info.mode = 0o4755
                t.addfile(info, io.BytesIO(body) if body is not None else None)
        data = buf.getvalue()
        return gzip.compress(data, mtime=0) if compress else data

    t = "layer_unpack_fuzz"
    base = [("etc", tarfile.DIRTYPE, None), ("etc/passwd", tarfile.REGTYPE, "root:x:0:0::/root:/bin/sh\n"),
            ("bin", tarfile.DIRTYPE, None), ("bin/sh", tarfile.REGTYPE, "#!"),
            ("bin/ash", tarfile.LNKTYPE, "bin/sh"), ("bin/link", tarfile.SYMTYPE, "sh"),
            ("bin/setuid", tarfile.REGTYPE, "x"), ("dev", tarfile.DIRTYPE, None),
            ("dev/null", tarfile.CHRTYPE, (1, 3)), ("dev/console", tarfile.CHRTYPE, (5, 1))]
    write(t, "base.tar", tar(base))
    write(t, "base.tar.gz", tar(base, compress=True))
    write(t, "whiteouts.tar", tar([("etc", tarfile.DIRTYPE, None), ("etc/.wh.passwd", tarfile.REGTYPE, ""),
                                   ("bin", tarfile.DIRTYPE, None), ("bin/.wh..wh..opq", tarfile.REGTYPE, ""),
                                   ("bin/new", tarfile.REGTYPE, "n")]))
    write(t, "escapes.tar", tar([("up", tarfile.SYMTYPE, "/"), ("up/etc/x", tarfile.REGTYPE, "x"),
                                 ("dots", tarfile.SYMTYPE, "../../.."), ("dots/y", tarfile.REGTYPE, "y"),
                                 ("../z", tarfile.REGTYPE, "z"), ("h", tarfile.LNKTYPE, "../sentinel")]))


def kbs():
    # Selector: bits 0-1 the request (auth, attest, resource, other), bits
    # 2-3 the session's TEE (sample, snp, tdx).
    t = "kbs_request_fuzz"
    write(t, "auth", b"\x00" + b'{"version":"0.4.0","tee":"sample","extra-params":""}')
    jwk = '{"kty":"EC","crv":"P-256","alg":"ES256","x":"' + "A" * 43 + '","y":"' + "B" * 43 + '"}'
    attest = ('{"init-data":null,"runtime-data":{"nonce":"%s","tee-pubkey":%s},'
              '"tee-evidence":{"primary_evidence":{"svn":"1","report_data":"%s"},'
              '"additional_evidence":""}}' % ("n" * 44, jwk, "r" * 64))
    write(t, "attest_sample", b"\x01" + attest.encode())
    hexdump = (ROOT / "tests/testdata/snp/report_milan.hex").read_text()
    report = binascii.unhexlify("".join(hexdump.split()))
    snp = ('{"runtime-data":{"nonce":"x","tee-pubkey":%s},"tee-evidence":{"attestation_report":"%s",'
           '"cert_chain":[]}}' % (jwk, __import__("base64").b64encode(report).decode()))
    write(t, "attest_snp", b"\x05" + snp.encode())
    write(t, "resource", b"\x02default/key/k1\nBearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
    write(t, "other", b"\x83/kbs/v0/resource/../../etc\nkbs-session-id=0123")


if __name__ == "__main__":
    ttrpc()
    image()
    tee()
    config()
    policy()
    kbs()
    layers()
