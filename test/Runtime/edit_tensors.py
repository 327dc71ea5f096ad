#!/usr/bin/env python3
"""Rewrites a safetensors file for the --check-outputs tests:
  edit_tensors.py IN OUT reverse            the tensors in reverse order (header and data)
  edit_tensors.py IN OUT drop NAME          without tensor NAME
  edit_tensors.py IN OUT reshape NAME SHAPE NAME's header claims SHAPE ("2,8"), data unchanged"""
import json
import struct
import sys

src, out, action, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
data = open(src, "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
meta = header.pop("__metadata__", None)
names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
blobs = {k: data[8 + n + header[k]["data_offsets"][0]:8 + n + header[k]["data_offsets"][1]] for k in names}
if action == "reverse":
    names.reverse()
elif action == "drop":
    names.remove(rest[0])
elif action == "reshape":
    header[rest[0]]["shape"] = [int(s) for s in rest[1].split(",")]
else:
    sys.exit("unknown action " + action)
new, body, offset = {}, b"", 0
if meta is not None:
    new["__metadata__"] = meta
for k in names:
    e = dict(header[k])
    e["data_offsets"] = [offset, offset + len(blobs[k])]
    new[k] = e
    body += blobs[k]
    offset += len(blobs[k])
text = json.dumps(new).encode()
text += b" " * (-len(text) % 8)
open(out, "wb").write(struct.pack("<Q", len(text)) + text + body)
