#!/usr/bin/env python3
"""Writes f32 tensors given on the command line to a safetensors file, or
prints a safetensors file's tensors (--print): for hand-computed tests.
  write_tensors.py OUT NAME SHAPE VALUES [NAME SHAPE VALUES ...]   (SHAPE "2,2", VALUES "1,2,3,4")
  (NAME:BF16 stores bf16: each value's f32 bits truncated, so give values bf16 holds exactly)
  write_tensors.py --print FILE"""
import json
import struct
import sys

if sys.argv[1] == "--print":
    data = open(sys.argv[2], "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    for name in sorted(k for k in header if k != "__metadata__"):
        e = header[name]
        raw = data[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]]
        fmt = {"F32": "f", "I32": "i"}[e["dtype"]]
        values = struct.unpack("<%d%s" % (len(raw) // 4, fmt), raw)
        print(name, e["dtype"], json.dumps(e["shape"]).replace(" ", "").replace(",", ", "),
              " ".join("%g" % v for v in values))
    sys.exit(0)

out, args = sys.argv[1], sys.argv[2:]
header, blobs, offset = {}, [], 0
for i in range(0, len(args), 3):
    name, shape, values = args[i], [int(s) for s in args[i + 1].split(",")], [float(v) for v in args[i + 2].split(",")]
    dtype = "F32"
    if name.endswith(":BF16"):
        name, dtype = name[:-5], "BF16"
        words = struct.unpack("<%dI" % len(values), struct.pack("<%df" % len(values), *values))
        blob = struct.pack("<%dH" % len(values), *[w >> 16 for w in words])
    else:
        blob = struct.pack("<%df" % len(values), *values)
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
    blobs.append(blob)
    offset += len(blob)
text = json.dumps(header).encode()
open(out, "wb").write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
