#!/usr/bin/python3
"""CPU peer for the backward: PyTorch (Debian python3-torch) autograd on the layer of cpu_moe_peer.py
(router, softmax, top-k, renormalised weights, SwiGLU experts; the HF-style loop over experts, each expert's
weights its own tensors as in HF's nn.ModuleList of experts: slicing one stacked tensor per expert would make
autograd write a whole-size zero gradient per expert), f32, forward + backward of <out, dy> into x and every
weight. Medians of 5 after a warm-up.
Run it with OPENBLAS_CORETYPE=SkylakeX (bench/cpu-train.sh does): Debian's OpenBLAS 0.3.21 mis-detects
AVX-512 Xeons and is then several times slower.
Usage: cpu_train_peer.py THREADS NAME:T:D:F:E:K [...]"""
import json, statistics, sys, time, torch
torch.manual_seed(0)
threads = int(sys.argv[1])
torch.set_num_threads(threads)
def layer(x, wr, w1, w3, w2, K):
    p = torch.softmax(x @ wr, -1); w, idx = torch.topk(p, K); w = w / w.sum(-1, keepdim=True)
    out = torch.zeros_like(x)
    for e in range(len(w1)):
        tok, slot = torch.where(idx == e)
        if tok.numel() == 0: continue
        h = x[tok]; y = (torch.nn.functional.silu(h @ w1[e]) * (h @ w3[e])) @ w2[e]
        out = out.index_add(0, tok, y * w[tok, slot, None])
    return out
for shape in sys.argv[2:]:
    name, T, D, F, E, K = shape.split(":")
    T, D, F, E, K = int(T), int(D), int(F), int(E), int(K)
    wr = (torch.randn(D, E) / D**.5).requires_grad_()
    w1 = [(torch.randn(D, F) / D**.5).requires_grad_() for _ in range(E)]
    w3 = [(torch.randn(D, F) / D**.5).requires_grad_() for _ in range(E)]
    w2 = [(torch.randn(F, D) / F**.5).requires_grad_() for _ in range(E)]
    x = torch.randn(T, D, requires_grad=True); dy = torch.randn(T, D)
    def step():
        for t in [x, wr, *w1, *w3, *w2]: t.grad = None
        (layer(x, wr, w1, w3, w2, K) * dy).sum().backward()
    def forward():
        with torch.no_grad(): layer(x, wr, w1, w3, w2, K)
    def bench(f):
        f(); ts = []
        for _ in range(5):
            t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
        return statistics.median(ts)
    print(json.dumps({"shape": name, "tokens": T, "threads": threads,
                      "torch_forward_ms": round(bench(forward) * 1e3, 1),
                      "torch_forward_backward_ms": round(bench(step) * 1e3, 1)}), flush=True)
