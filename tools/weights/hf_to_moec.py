#!/usr/bin/env python3
"""Converts one MoE layer of a Hugging Face checkpoint (safetensors) to moec's
weights file (`moec run --weights`, `moe-run --weights`).

    python3 tools/weights/hf_to_moec.py --arch mixtral --layer 0 -o layer0.safetensors \\
        model-00001-of-00019.safetensors [model-00002-of-00019.safetensors ...]

Layouts: a Hugging Face nn.Linear stores its weight as [out, in] and computes
x @ W.T; moec stores [in, out] and computes x * W. Experts are stacked on a
leading expert dimension. The mapping (prefix model.layers.L.):

  mixtral      block_sparse_moe.gate.weight [E, d]            -> router.weight [d, E]
               block_sparse_moe.experts.N.w1 / w3 / w2        -> experts.w_gate / w_up [E, d, f], w_down [E, f, d]
  qwen3_moe    mlp.gate.weight [E, d]                         -> router.weight [d, E]
               mlp.experts.N.gate_proj / up_proj / down_proj  -> experts.w_gate / w_up / w_down
  deepseek_v3  mlp.gate.weight, mlp.experts.N.*               -> as qwen3_moe
               mlp.gate.e_score_correction_bias [E] (f32)     -> bias [E]
               mlp.shared_experts.gate_proj / up_proj / down_proj -> shared.w_gate / w_up [d, f], w_down [f, d]

Element types are kept bit for bit (BF16 stays BF16). The names are those of
examples/mixtral.moe, examples/qwen3_30b_a3b.moe and examples/deepseek_v3.moe.
Needs only NumPy.
"""
import argparse
import json
import struct
import sys

import numpy as np

# safetensors dtype -> the NumPy type its bytes are moved as (BF16 as raw 16-bit words).
STORAGE = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I32": np.int32, "F64": np.float64}


def read_index(path):
    """{name: (dtype, shape, file, offset, nbytes)} of one safetensors file."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        if size > 100 * 2**20:
            sys.exit(f"{path}: header of {size} bytes: not a safetensors file")
        header = json.loads(f.read(size))
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        out[name] = (e["dtype"], e["shape"], path, 8 + size + begin, end - begin)
    return out


class Checkpoint:
    def __init__(self, paths):
        self.tensors = {}
        for p in paths:
            self.tensors.update(read_index(p))

    def has(self, name):
        return name in self.tensors

    def get(self, name):
        if name not in self.tensors:
            near = [n for n in self.tensors if n.rsplit(".", 2)[0] == name.rsplit(".", 2)[0]][:5]
            sys.exit(f"the checkpoint has no tensor '{name}'" + (f" (near: {', '.join(near)})" if near else ""))
        dtype, shape, path, offset, nbytes = self.tensors[name]
        if dtype not in STORAGE:
            sys.exit(f"'{name}' is {dtype}; this converter reads {', '.join(STORAGE)}")
        with open(path, "rb") as f:
            f.seek(offset)
            data = np.frombuffer(f.read(nbytes), dtype=STORAGE[dtype])
        if data.size != int(np.prod(shape)):
            sys.exit(f"'{name}': {nbytes} bytes do not hold a {dtype} tensor of shape {shape}")
        return dtype, data.reshape(shape)


def linear(ck, name):
    """An nn.Linear weight [out, in] as moec's [in, out]."""
    dtype, w = ck.get(name)
    return dtype, np.ascontiguousarray(w.T)


def stacked(ck, names):
    parts = [linear(ck, n) for n in names]
    dtypes = {d for d, _ in parts}
    if len(dtypes) != 1:
        sys.exit(f"the experts' weights mix element types {sorted(dtypes)}")
    return dtypes.pop(), np.ascontiguousarray(np.stack([w for _, w in parts]))


def count_experts(ck, pattern):
    n = 0
    while ck.has(pattern.format(n)):
        n += 1
    if n == 0:
        sys.exit(f"the checkpoint has no '{pattern.format(0)}': wrong --arch or --layer?")
    return n


def convert(ck, arch, layer):
    p = f"model.layers.{layer}."
    out = {}
    if arch == "mixtral":
        moe = p + "block_sparse_moe."
        n = count_experts(ck, moe + "experts.{}.w1.weight")
        out["router.weight"] = linear(ck, moe + "gate.weight")
        for ours, theirs in (("w_gate", "w1"), ("w_up", "w3"), ("w_down", "w2")):
            out["experts." + ours] = stacked(ck, [f"{moe}experts.{e}.{theirs}.weight" for e in range(n)])
    elif arch in ("qwen3_moe", "deepseek_v3"):
        mlp = p + "mlp."
        n = count_experts(ck, mlp + "experts.{}.gate_proj.weight")
        out["router.weight"] = linear(ck, mlp + "gate.weight")
        for ours, theirs in (("w_gate", "gate_proj"), ("w_up", "up_proj"), ("w_down", "down_proj")):
            out["experts." + ours] = stacked(ck, [f"{mlp}experts.{e}.{theirs}.weight" for e in range(n)])
        if arch == "deepseek_v3":
            out["bias"] = ck.get(mlp + "gate.e_score_correction_bias")
            for ours, theirs in (("w_gate", "gate_proj"), ("w_up", "up_proj"), ("w_down", "down_proj")):
                out["shared." + ours] = linear(ck, f"{mlp}shared_experts.{theirs}.weight")
    else:
        sys.exit(f"unknown --arch {arch}")
    return out


def write(path, tensors):
    header, blobs, offset = {"__metadata__": {"format": "pt", "converted_by": "moec hf_to_moec.py"}}, [], 0
    for name in sorted(tensors):
        dtype, a = tensors[name]
        blob = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", required=True, choices=["mixtral", "qwen3_moe", "deepseek_v3"])
    ap.add_argument("--layer", type=int, default=0, help="the decoder layer whose MoE block to take")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("inputs", nargs="+", help="the checkpoint's safetensors files (every shard that holds the layer)")
    args = ap.parse_args()
    tensors = convert(Checkpoint(args.inputs), args.arch, args.layer)
    write(args.output, tensors)
    for name in sorted(tensors):
        print(f"{name} {tensors[name][0]} {list(tensors[name][1].shape)}")


if __name__ == "__main__":
    main()
