#!/usr/bin/env python3
"""PyTorch autograd peers of an MoE layer's forward + backward on one GPU (bf16), measured in the
same call as moec's (moe-run --backward --bench: the forward's call then the backward's, one CUDA graph).

The layer is gpu_moe_peers.py's (softmax top-k, renormalised, SwiGLU experts); each peer runs the
forward and torch.autograd.grad of <out, dy> for x, the router and the three expert weights:

  loop           HF-style loop over experts; eager only (its shapes depend on the routing)
  grouped        torch._grouped_mm over tokens sorted by expert; eager (exact buffer, a host sync)
  grouped_graph  the same with a static bound on the buffer, forward and backward captured in one
                 CUDA graph

Prints one JSON row per shape: median milliseconds, TFLOP/s of useful work (3x the forward's:
18*T*K*D*F + 6*T*D*E), and each peer's gradients' relative error against the loop's.
  python3 bench/peers/gpu_train_peers.py [SHAPE ...]   (default: the prefill shapes)
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_moe_peers import ALIGN, SHAPES, bench, captured, grouped, loop, make  # noqa: E402

dev = "cuda"


def train_step(layer, params, dy, K):
    out = layer(*params, K)
    return torch.autograd.grad(out, params, dy)


def main():
    names = sys.argv[1:] or [s for s in SHAPES if s.endswith("prefill")]
    print("torch", torch.__version__, "device", torch.cuda.get_device_name(), flush=True)
    rows = []
    for name in names:
        T, D, F, E, K = SHAPES[name]
        params = [p.requires_grad_() for p in make(T, D, F, E)]
        dy = torch.randn(T, D, device=dev, dtype=torch.bfloat16)
        flops = 3 * (6 * T * K * D * F + 2 * T * D * E)
        row = {"shape": name, "T": T, "D": D, "F": F, "E": E, "K": K}
        ref = [g.float() for g in train_step(loop, params, dy, K)]
        static = T * K + E * ALIGN
        peers = [("loop", lambda: train_step(loop, params, dy, K)),
                 ("grouped", lambda: train_step(grouped, params, dy, K)),
                 ("grouped_graph",
                  lambda: train_step(lambda *a: grouped(*a, static_rows=static), params, dy, K))]
        for peer, fn in peers:
            try:
                run = captured(fn) if peer.endswith("_graph") else fn
                grads = run()
                row[peer + "_relerr"] = max(float(((g.float() - r).norm() / r.norm()).item())
                                            for g, r in zip(grads, ref))
                ms = bench(run, rep=5 if peer == "loop" else int(os.environ.get("REP", "10")))
                row[peer + "_ms"] = round(ms, 4)
                row[peer + "_tflops"] = round(flops / ms / 1e9, 1)
            except Exception as ex:  # a peer that cannot run this shape says why, the others go on
                row[peer + "_error"] = repr(ex)[:200]
            torch.cuda.empty_cache()
        timed = [(row[k], k[:-3]) for k in row if k.endswith("_ms")]
        if timed:
            row["best_peer_ms"], row["best_peer"] = min(timed)
        rows.append(row)
        print(json.dumps(row), flush=True)
        del params, dy, ref
        torch.cuda.empty_cache()
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "gpu_train_peers.json"), "w") as fh:
            json.dump({"rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
