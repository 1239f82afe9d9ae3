#!/usr/bin/env python3
"""Independent MRTD of the synthetic TDVF image that
tests/common/tee/measure/tdx_test.cc builds (SyntheticTdvf), with hashlib:
prints the single-pass and two-pass values. Rebuilds the image from the same
description, parses nothing: the sections are written out here by hand."""
import hashlib
import struct
import uuid

img = bytearray(0x4000)
for i in range(0x2000):
    img[i] = (i * 7 + 3) % 251
desc = 0x3000
sections = [  # data offset, raw size, gpa, size, type, attributes
    (0, 0x2000, 0xFFFFC000, 0x2000, 0, 1),
    (0, 0, 0x809000, 0x2000, 2, 0),
    (0, 0, 0x80B000, 0x1000, 3, 0),
    (0, 0, 0x900000, 0x4000, 4, 2),
]
img[desc:desc + 16] = b"TDVF" + struct.pack("<III", 16 + 32 * len(sections), 1, len(sections))
for i, s in enumerate(sections):
    img[desc + 16 + 32 * i: desc + 48 + 32 * i] = struct.pack("<IIQQII", *s)
footer = len(img) - 32 - 18
entry = footer - 22
img[entry:entry + 22] = struct.pack("<IH", len(img) - desc, 22) + \
    uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2").bytes_le
img[footer:footer + 18] = struct.pack("<H", 40) + uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le


def record(op, gpa):
    return op.ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(104)


def mrtd(two_pass):
    h = hashlib.sha384()
    for off, raw, gpa, size, typ, attr in sections:
        pages = range(size // 0x1000)
        add = [] if attr & 2 else [record(b"MEM.PAGE.ADD", gpa + p * 0x1000) for p in pages]
        ext = []
        for p in pages:
            chunks = b""
            if attr & 1:
                for c in range(16):
                    a = p * 0x1000 + c * 0x100
                    chunks += record(b"MR.EXTEND", gpa + a) + bytes(img[off + a: off + a + 0x100])
            ext.append(chunks)
        if two_pass:
            h.update(b"".join(add) + b"".join(ext))
        else:
            for p in pages:
                h.update((add[p] if add else b"") + ext[p])
    return h.hexdigest()


print("single-pass", mrtd(False))
print("two-pass", mrtd(True))
