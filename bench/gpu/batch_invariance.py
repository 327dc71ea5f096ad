#!/usr/bin/env python3
"""Batch invariance: a layer's output for a token does not depend on how many
tokens share the call. moe-run's random inputs are one stream (by --seed), so
the first SMALL rows of a LARGE-token run are the SMALL-token run's inputs;
their output rows must be byte-identical. (Layers that drop tokens by capacity
are not batch invariant by design and are not compared.)
  batch_invariance.py SMALL.safetensors LARGE.safetensors SMALL"""
import json
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: (v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def main():
    small, large, rows = tensors(sys.argv[1]), tensors(sys.argv[2]), int(sys.argv[3])
    if sorted(small) != sorted(large):
        sys.exit(f"outputs differ in names: {sorted(small)} vs {sorted(large)}")
    bad = 0
    for name, (shape, data) in small.items():
        big_shape, big = large[name]
        if shape[0] != rows or shape[1:] != big_shape[1:]:
            print(f"{name}: {shape} vs {big_shape}: not per-token, skipped")
            continue
        same = big[:len(data)] == data
        print(f"{name}: first {rows} rows {'bitwise identical' if same else 'DIFFER'}")
        bad += not same
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
