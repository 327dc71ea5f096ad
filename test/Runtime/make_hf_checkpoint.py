#!/usr/bin/env python3
"""Writes a small random Hugging Face-style checkpoint of one MoE layer, in two
shards with HF's model.safetensors.index.json, for the import tests (moec
import, hf_to_moec.py), and moec's weights for the same layer as they should
come out:
  make_hf_checkpoint.py ARCH DIR D F E [FS]   (FS: DeepSeek-V3's shared expert width)
HF's convention, stated here on its own: an nn.Linear holds [out, in]; each
expert is its own module; DeepSeek-V3's correction bias is an f32 [E].
  make_hf_checkpoint.py --compare A B   exits 1 unless both files hold the same tensors, bit for bit"""
import json
import struct
import sys

import numpy as np


def write(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, a) in tensors.items():
        blob = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (e["dtype"], e["shape"], data[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]])
            for k, e in header.items()}


if sys.argv[1] == "--compare":
    a, b = read(sys.argv[2]), read(sys.argv[3])
    if a.keys() != b.keys():
        sys.exit(f"names differ: {sorted(a.keys() ^ b.keys())}")
    bad = [k for k in a if a[k] != b[k]]
    if bad:
        sys.exit(f"tensors differ: {bad}")
    print(f"identical: {len(a)} tensors")
    sys.exit(0)

arch, out, d, f, e = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
fs = int(sys.argv[6]) if len(sys.argv) > 6 else f
rng = np.random.default_rng(7)
bf16 = arch == "mixtral"  # one architecture in bf16 (raw 16-bit words), the others in f32
dt = "BF16" if bf16 else "F32"


def rand(*shape):
    a = rng.standard_normal(shape).astype(np.float32)
    return a.view(np.uint32).__rshift__(16).astype(np.uint16) if bf16 else a


ours = {"router.weight": rand(d, e), "experts.w_gate": rand(e, d, f), "experts.w_up": rand(e, d, f),
        "experts.w_down": rand(e, f, d)}
hf = {}
L = "model.layers.3."
if arch == "mixtral":
    hf[L + "block_sparse_moe.gate.weight"] = ours["router.weight"].T
    for i in range(e):
        for theirs, mine in (("w1", "w_gate"), ("w3", "w_up"), ("w2", "w_down")):
            hf[f"{L}block_sparse_moe.experts.{i}.{theirs}.weight"] = ours["experts." + mine][i].T
else:
    hf[L + "mlp.gate.weight"] = ours["router.weight"].T
    for i in range(e):
        for theirs, mine in (("gate_proj", "w_gate"), ("up_proj", "w_up"), ("down_proj", "w_down")):
            hf[f"{L}mlp.experts.{i}.{theirs}.weight"] = ours["experts." + mine][i].T
    if arch == "deepseek_v3":
        ours["bias"] = rng.standard_normal(e).astype(np.float32) * 0.1
        hf[L + "mlp.gate.e_score_correction_bias"] = ours["bias"]
        ours.update({"shared.w_gate": rand(d, fs), "shared.w_up": rand(d, fs), "shared.w_down": rand(fs, d)})
        for theirs, mine in (("gate_proj", "w_gate"), ("up_proj", "w_up"), ("down_proj", "w_down")):
            hf[f"{L}mlp.shared_experts.{theirs}.weight"] = ours["shared." + mine].T
# Another layer's tensor in the checkpoint, which the converter must leave out.
hf["model.layers.4.mlp.gate.weight"] = rand(e, d)
names = sorted(hf)
half = len(names) // 2
kind = lambda k: "F32" if k.endswith("e_score_correction_bias") else dt
shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
for file, keys in shards.items():
    write(f"{out}/{file}", {k: (kind(k), hf[k]) for k in keys})
# HF's index of a sharded checkpoint: which shard holds each tensor.
total = sum(np.asarray(hf[k]).nbytes for k in names)
json.dump({"metadata": {"total_size": total}, "weight_map": {k: f for f, keys in shards.items() for k in keys}},
          open(f"{out}/model.safetensors.index.json", "w"), indent=2)
write(f"{out}/expected.safetensors", {k: ("F32" if k == "bias" else dt, v) for k, v in sorted(ours.items())})
