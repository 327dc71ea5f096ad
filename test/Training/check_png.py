#!/usr/bin/env python3
"""Decodes a PNG the way a viewer must (the signature, every chunk's CRC, the zlib stream, a filter byte and
3 bytes a pixel per row of an 8-bit RGB image) and prints its size: for moe-run --plot (train.test)."""
import struct
import sys
import zlib

data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
at, idat, size = 8, b"", None
while at < len(data):
    n, kind = struct.unpack(">I4s", data[at:at + 8])
    body = data[at + 8:at + 8 + n]
    assert zlib.crc32(kind + body) == struct.unpack(">I", data[at + 8 + n:at + 12 + n])[0], "bad CRC in " + str(kind)
    if kind == b"IHDR":
        size = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    at += 12 + n
width, height, depth, color = size
assert depth == 8 and color == 2, "not 8-bit RGB"
assert len(zlib.decompress(idat)) == height * (1 + 3 * width), "wrong pixel data size"
print("png", width, "x", height)
