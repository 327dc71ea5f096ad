"""Weights for the all-tokens-on-one-expert check: the router is zero (every
score ties, so top-k picks experts 0..k-1 for every token); the experts are
random. Usage: one_expert_weights.py OUT.safetensors DTYPE D F E swiglu|mlp"""
import json, struct, sys
import numpy as np

path, dtype, d, f, e, kind = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6]), sys.argv[6]
rng = np.random.default_rng(7)

def encode(a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "f32":
        return "F32", a.tobytes()
    bits = a.view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
    return "BF16", rounded.tobytes()

tensors = {"router.weight": np.zeros((d, e), np.float32)}
if kind == "swiglu":
    tensors["experts.w_gate"] = rng.standard_normal((e, d, f)) / np.sqrt(d)
    tensors["experts.w_up"] = rng.standard_normal((e, d, f)) / np.sqrt(d)
    tensors["experts.w_down"] = rng.standard_normal((e, f, d)) / np.sqrt(f)
else:
    tensors["experts.w_in"] = rng.standard_normal((e, d, f)) / np.sqrt(d)
    tensors["experts.w_out"] = rng.standard_normal((e, f, d)) / np.sqrt(f)
header, blobs, offset = {}, [], 0
for name, a in tensors.items():
    code, raw = encode(a)
    header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(path, "wb") as out:
    out.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
