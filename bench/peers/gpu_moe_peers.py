#!/usr/bin/env python3
"""PyTorch peers of an MoE layer forward on one GPU (bf16), measured in the same call as moec.

moec runs a layer as one CUDA graph, so every peer that can be captured is also
measured captured (an eager peer pays Python and launch overheads moec does not):

  loop            HF-style loop over experts (index_select, three matmuls, index_add); eager only:
                  its shapes depend on the routing, so it cannot be captured
  grouped         tokens sorted by expert into a padded buffer, torch._grouped_mm for the three
                  projections (torchtitan style); eager (exact buffer size, a host sync)
  grouped_graph   the same with a static bound on the buffer (T*K + E*16 rows), captured
  bmm_all_graph   every expert on every token with torch.bmm, the dropped assignments weighted 0;
                  captured. Useful work only where every expert is read anyway (decode)
  matmul / copy   the hardware ceilings of this call: a bf16 8192^3 matmul and a device copy

Prints one JSON row per shape: median milliseconds over REP runs, TFLOP/s of useful work
(6*T*K*D*F + 2*T*D*E), and each peer's relative error against the loop.
  python3 bench/peers/gpu_moe_peers.py [SHAPE ...]   (default: all shapes)
"""
import json
import os
import statistics
import sys

import torch

dev = "cuda"
SHAPES = {
    "mixtral-prefill": (8192, 4096, 14336, 8, 2),
    "mixtral-decode": (32, 4096, 14336, 8, 2),
    "dsv3-prefill": (8192, 7168, 2048, 256, 8),
    "dsv3-decode": (32, 7168, 2048, 256, 8),
    "qwen3-prefill": (8192, 2048, 768, 128, 8),
    "qwen3-decode": (32, 2048, 768, 128, 8),
}
ALIGN = 16


def bench(fn, warm=3, rep=int(os.environ.get("REP", "20"))):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(rep):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def captured(fn):
    """fn captured in a CUDA graph (after a warm-up on a side stream); returns the replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return lambda: (graph.replay(), out)[1]


def make(T, D, F, E, seed=0):
    g = torch.Generator(device=dev).manual_seed(seed)
    r = lambda *s: torch.randn(*s, device=dev, dtype=torch.bfloat16, generator=g)
    return r(T, D), r(D, E) / D**0.5, r(E, D, F) / D**0.5, r(E, D, F) / D**0.5, r(E, F, D) / F**0.5


def route(x, wr, K):
    p = torch.softmax((x @ wr).float(), dim=-1)  # the gate in f32, as moec and DeepSeek-V3 do
    w, idx = torch.topk(p, K, dim=-1)
    return (w / w.sum(-1, keepdim=True)).to(x.dtype), idx


def loop(x, wr, w1, w3, w2, K):
    w, idx = route(x, wr, K)
    out = torch.zeros_like(x)
    for e in range(w1.shape[0]):
        tok, slot = torch.where(idx == e)
        if tok.numel() == 0:
            continue
        h = x[tok]
        y = (torch.nn.functional.silu(h @ w1[e]) * (h @ w3[e])) @ w2[e]
        out.index_add_(0, tok, y * w[tok, slot, None])
    return out


def grouped(x, wr, w1, w3, w2, K, static_rows=None):
    T, D = x.shape
    E = w1.shape[0]
    w, idx = route(x, wr, K)
    flat = idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    # bincount reads its maximum on the host; a scatter-add does not, so the
    # static variant can be captured.
    counts = torch.zeros(E, device=dev, dtype=torch.long).scatter_add_(0, flat, torch.ones_like(flat))
    padded = (counts + ALIGN - 1) // ALIGN * ALIGN
    offs = torch.cumsum(padded, 0).to(torch.int32)
    rows = static_rows if static_rows is not None else int(offs[-1].item())
    starts = offs - padded
    first = torch.cumsum(counts, 0) - counts
    sorted_e = flat[order]
    dest = starts[sorted_e] + torch.arange(order.numel(), device=dev) - first[sorted_e]
    buf = torch.zeros(rows, D, device=dev, dtype=x.dtype)
    buf[dest] = x[order // K]
    h = torch.nn.functional.silu(torch._grouped_mm(buf, w1, offs=offs)) * torch._grouped_mm(buf, w3, offs=offs)
    y = torch._grouped_mm(h, w2, offs=offs)
    out = torch.zeros_like(x)
    out.index_add_(0, order // K, y[dest] * w.reshape(-1)[order, None])
    return out


def bmm_all(x, wr, w1, w3, w2, K):
    T, D = x.shape
    E = w1.shape[0]
    w, idx = route(x, wr, K)
    dense_w = torch.zeros(T, E, device=dev, dtype=x.dtype).scatter_(1, idx, w)
    xe = x.unsqueeze(0).expand(E, T, D)
    y = torch.bmm(torch.nn.functional.silu(torch.bmm(xe, w1)) * torch.bmm(xe, w3), w2)  # [E, T, D]
    return torch.einsum("etd,te->td", y, dense_w)


def ceilings():
    n = 8192
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    mm = 2 * n**3 / bench(lambda: a @ b) / 1e9
    src = torch.randn(1024**3, device=dev, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    bw = 2 * src.numel() * 2 / bench(lambda: dst.copy_(src)) / 1e6
    del a, b, src, dst
    return mm, bw


def main():
    names = sys.argv[1:] or list(SHAPES)
    print("torch", torch.__version__, "device", torch.cuda.get_device_name(), flush=True)
    mm, bw = ceilings()
    print(json.dumps({"ceiling_matmul_tflops": round(mm, 1), "ceiling_copy_GBps": round(bw, 1)}), flush=True)
    rows = []
    for name in names:
        T, D, F, E, K = SHAPES[name]
        x, wr, w1, w3, w2 = make(T, D, F, E)
        flops = 6 * T * K * D * F + 2 * T * D * E
        ref = loop(x, wr, w1, w3, w2, K).float()
        row = {"shape": name, "T": T, "D": D, "F": F, "E": E, "K": K}
        peers = [("loop", lambda: loop(x, wr, w1, w3, w2, K)),
                 ("grouped", lambda: grouped(x, wr, w1, w3, w2, K)),
                 ("grouped_graph", lambda: grouped(x, wr, w1, w3, w2, K, static_rows=T * K + E * ALIGN))]
        if T * K <= 4096:  # every expert on every token: a decode peer
            peers.append(("bmm_all_graph", lambda: bmm_all(x, wr, w1, w3, w2, K)))
        for peer, fn in peers:
            try:
                run = captured(fn) if peer.endswith("_graph") else fn
                out = run().float()
                row[peer + "_relerr"] = float(((out - ref).norm() / ref.norm()).item())
                ms = bench(run, rep=5 if peer == "loop" else int(os.environ.get("REP", "20")))
                row[peer + "_ms"] = round(ms, 4)
                row[peer + "_tflops"] = round(flops / ms / 1e9, 1)
            except Exception as ex:  # a peer that cannot run this shape says why, the others go on
                row[peer + "_error"] = repr(ex)[:200]
            torch.cuda.empty_cache()
        best = min((row[k], k[:-3]) for k in row if k.endswith("_ms"))
        row["best_peer"], row["best_peer_ms"] = best[1], best[0]
        rows.append(row)
        print(json.dumps(row), flush=True)
        del x, wr, w1, w3, w2, ref
        torch.cuda.empty_cache()
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "gpu_moe_peers.json"), "w") as fh:
            json.dump({"matmul_tflops": mm, "copy_GBps": bw, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
