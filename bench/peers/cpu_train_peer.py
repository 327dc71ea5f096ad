#!/usr/bin/python3
"""CPU peer for the backward: PyTorch (Debian python3-torch) autograd on the Mixtral-style layer of
cpu_moe_peer.py (the HF-style loop over experts), f32, forward + backward of <out, dy> into x and every weight.
Medians of 5 after a warm-up. Usage: cpu_train_peer.py THREADS TOKENS [TOKENS ...]"""
import json, statistics, sys, time, torch
torch.manual_seed(0)
threads, token_counts = int(sys.argv[1]), [int(t) for t in sys.argv[2:]]
torch.set_num_threads(threads)
def layer(x, wr, w1, w3, w2, K):
    p = torch.softmax(x @ wr, -1); w, idx = torch.topk(p, K); w = w / w.sum(-1, keepdim=True)
    out = torch.zeros_like(x)
    for e in range(w1.shape[0]):
        tok, slot = torch.where(idx == e)
        if tok.numel() == 0: continue
        h = x[tok]; y = (torch.nn.functional.silu(h @ w1[e]) * (h @ w3[e])) @ w2[e]
        out = out.index_add(0, tok, y * w[tok, slot, None])
    return out
D, F, E, K = 1024, 3584, 8, 2
wr = (torch.randn(D, E) / D**.5).requires_grad_()
w1 = (torch.randn(E, D, F) / D**.5).requires_grad_(); w3 = (torch.randn(E, D, F) / D**.5).requires_grad_()
w2 = (torch.randn(E, F, D) / F**.5).requires_grad_()
for T in token_counts:
    x = torch.randn(T, D, requires_grad=True); dy = torch.randn(T, D)
    def step():
        for t in (x, wr, w1, w3, w2): t.grad = None
        (layer(x, wr, w1, w3, w2, K) * dy).sum().backward()
    def forward():
        with torch.no_grad(): layer(x, wr, w1, w3, w2, K)
    def bench(f):
        f(); ts = []
        for _ in range(5):
            t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
        return statistics.median(ts)
    print(json.dumps({"tokens": T, "threads": threads, "torch_forward_ms": round(bench(forward) * 1e3, 1),
                      "torch_forward_backward_ms": round(bench(step) * 1e3, 1)}), flush=True)
