#!/usr/bin/env python3
"""An independent float64 implementation of the example layers, written from
the language spec (not from the compiler's IR), in numpy. It writes random
weights and inputs as safetensors, runs `moec run` on them, reads the outputs
and compares: f32 layers within 1e-5 relative (max-norm), bf16 within 1e-2.

  spec_reference.py MOEC EXAMPLE.moe LAYER TOKENS SEED [NAME=VALUE ...]

LAYER is one of mixtral, deepseek_v3, switch, qwen3. The NAME=VALUE pairs are
passed to `moec --set` and used by the reference (d_model, d_ff, T, ...)."""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

# ---------------------------------------------------------------- safetensors


def bf16_round(a):
    """Round float values to the nearest bf16 (ties to even), as float64."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, array) in tensors.items():
        if dtype == "BF16":
            bits = (bf16_round(array).astype(np.float32).view(np.uint32) >> 16).astype("<u2")
            blob = bits.tobytes()
        else:
            blob = np.asarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        raw = data[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]]
        if e["dtype"] == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif e["dtype"] == "I32":
            a = np.frombuffer(raw, "<i4")
        else:
            a = np.frombuffer(raw, "<f4")
        out[name] = a.astype(np.float64).reshape(e["shape"])
    return out

# ---------------------------------------------------------------- the spec


def softmax(x):
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def silu(x):
    return x * sigmoid(x)


def topk(p, k):
    """Per row, the k largest descending; ties to the lower index. 0-based here."""
    idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(p, idx, axis=1), idx


def group_topk(s, k, groups, top_groups):
    t, n = s.shape
    size = n // groups
    out = np.zeros((t, k), dtype=np.int64)
    for r in range(t):
        g = s[r].reshape(groups, size)
        score = np.sort(g, axis=1)[:, ::-1][:, :min(2, size)].sum(axis=1)
        keep = np.argsort(-score, kind="stable")[:top_groups]
        masked = np.full(n, -np.inf)
        for j in keep:
            masked[j * size:(j + 1) * size] = s[r, j * size:(j + 1) * size]
        out[r] = np.argsort(-masked, kind="stable")[:k]
    return out


def experts_then_combine(x, idx, w, ffn, capacity=None, rnd=lambda a: a):
    """dispatch -> experts -> combine, per the spec: capacity keeps the first
    ceil(c*T*k/E) assignments per expert in (token, slot) order."""
    t, k = idx.shape
    n_experts = ffn["n"]
    limit = math.ceil(capacity * t * k / n_experts) if capacity else t * k
    load = np.zeros(n_experts, dtype=np.int64)
    out = np.zeros_like(x)
    for tok in range(t):
        for j in range(k):
            e = idx[tok, j]
            if load[e] >= limit:
                load[e] += 1
                continue
            load[e] += 1
            out[tok] += w[tok, j] * rnd(ffn["apply"](e, x[tok:tok + 1])[0])
    return out


def swiglu_experts(params, name, n):
    g, u, d = params[name + ".w_gate"], params[name + ".w_up"], params[name + ".w_down"]
    return {"n": n, "apply": lambda e, x: (silu(x @ g[e]) * (x @ u[e])) @ d[e]}


def mlp_experts(params, name, n, act):
    a, b = params[name + ".w_in"], params[name + ".w_out"]
    return {"n": n, "apply": lambda e, x: act(x @ a[e]) @ b[e]}


def reference(layer, x, p, s, rnd):
    """The example layers, as their .moe files say. rnd rounds to the layer's T."""
    n, k = s["n_experts"], s["top_k"]
    if layer in ("mixtral", "qwen3"):
        logits = x @ p["router.weight"]  # routing stays in f32 from the router on (spec, "Numerics")
        w, e = topk(softmax(logits), k)
        w = w / w.sum(axis=1, keepdims=True)
        return [rnd(experts_then_combine(x, e, w, swiglu_experts(p, "experts", n), rnd=rnd))]
    if layer == "deepseek_v3":
        sc = sigmoid(x @ p["router.weight"])  # f32 logits, as DeepSeek-V3's gate
        e = group_topk(sc + p["bias"], k, s["n_groups"], s["top_groups"])
        w = np.take_along_axis(sc, e, axis=1)
        w = s["routed_scale"] * (w / w.sum(axis=1, keepdims=True))
        routed = rnd(experts_then_combine(x, e, w, swiglu_experts(p, "experts", n), rnd=rnd))
        shared = rnd((silu(x @ p["shared.w_gate"]) * (x @ p["shared.w_up"])) @ p["shared.w_down"])
        return [rnd(routed + shared)]
    if layer == "switch":
        logits = x @ p["router.weight"]
        probs = softmax(logits)
        w, e = topk(probs, 1)
        relu = lambda a: np.maximum(a, 0)
        y = experts_then_combine(x, e, w, mlp_experts(p, "experts", n, relu), capacity=s["capacity_factor"])
        frac = np.bincount(e.ravel(), minlength=n) / e.size
        lb = n * np.sum(frac * probs.mean(axis=0))
        m = logits.max(axis=1)
        z = np.mean((m + np.log(np.exp(logits - m[:, None]).sum(axis=1))) ** 2)
        return [y, np.array(lb), np.array(z)]
    raise SystemExit("unknown layer " + layer)


DEFAULTS = {
    "mixtral": {"d_model": 4096, "d_ff": 14336, "n_experts": 8, "top_k": 2, "T": "bf16"},
    "qwen3": {"d_model": 2048, "d_ff": 768, "n_experts": 128, "top_k": 8, "T": "bf16"},
    "deepseek_v3": {"d_model": 7168, "d_ff": 2048, "n_experts": 256, "top_k": 8, "n_groups": 8,
                    "top_groups": 4, "routed_scale": 2.5, "T": "bf16"},
    "switch": {"d_model": 768, "d_ff": 3072, "n_experts": 64, "top_k": 1, "capacity_factor": 1.25, "T": "f32"},
}


def main():
    moec, source, layer, tokens, seed = sys.argv[1:6]
    tokens, seed = int(tokens), int(seed)
    s = dict(DEFAULTS[layer])
    sets = sys.argv[6:]
    for kv in sets:
        key, value = kv.split("=")
        s[key] = value if key == "T" else (float(value) if "." in value else int(value))
    rng = np.random.default_rng(seed)
    dt = "BF16" if s["T"] == "bf16" else "F32"
    rnd = bf16_round if dt == "BF16" else (lambda a: np.asarray(a, np.float32).astype(np.float64))
    d, f, n = s["d_model"], s["d_ff"], s["n_experts"]
    shapes = {"router.weight": (d, n)}
    if layer == "switch":
        shapes.update({"experts.w_in": (n, d, f), "experts.w_out": (n, f, d)})
    else:
        shapes.update({"experts.w_gate": (n, d, f), "experts.w_up": (n, d, f), "experts.w_down": (n, f, d)})
    if layer == "deepseek_v3":
        shapes.update({"shared.w_gate": (d, f), "shared.w_up": (d, f), "shared.w_down": (f, d)})
    params = {name: rnd(rng.standard_normal(shape) / math.sqrt(shape[-2])) for name, shape in shapes.items()}
    tensors = {name: (dt, a) for name, a in params.items()}
    if layer == "deepseek_v3":
        params["bias"] = rng.standard_normal((n,)).astype(np.float32).astype(np.float64) * 0.1
        tensors["bias"] = ("F32", params["bias"])
    x = rnd(rng.standard_normal((tokens, d)))
    with tempfile.TemporaryDirectory() as tmp:
        wpath, xpath, ypath = (os.path.join(tmp, n_) for n_ in ("w.safetensors", "x.safetensors", "y.safetensors"))
        write_safetensors(wpath, tensors)
        write_safetensors(xpath, {"x": (dt, x)})
        cmd = [moec, "run", source, "--set", ",".join(sets), "--weights", wpath, "--input", xpath, "--output", ypath]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        got = read_safetensors(ypath)
    want = reference(layer, x, params, s, rnd)
    tolerance = 1e-2 if dt == "BF16" else 1e-5
    status = 0
    for i, expected in enumerate(want):
        name = "output" if len(want) == 1 else "output%d" % (i + 1)
        actual = got[name]
        err = np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30)
        ok = actual.shape == expected.shape and err <= tolerance
        print("%s %s: max |moec - spec| / max |spec| = %.3g (tolerance %g) %s"
              % (layer, name, err, tolerance, "OK" if ok else "MISMATCH"))
        status |= 0 if ok else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
