#!/usr/bin/env python3
"""Checkpoint peer: torch.distributed.checkpoint (DCP) saving and loading the same training state that
`moe-checkpoint bench DIR EXPERTS D_MODEL D_FF` writes (bf16 experts [E, D, F] x 2 and [E, F, D], an f32 router
[D, E], f32 master weights and AdamW moments for each), with a gloo process group of one rank.
Usage: dcp_peer.py DIR EXPERTS D_MODEL D_FF"""
import json, os, shutil, sys, time

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp

directory, experts, d, f = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", "29533")
dist.init_process_group("gloo", rank=0, world_size=1)
weights = {"router.weight": torch.full((d, experts), 0.5, dtype=torch.float32),
           "experts.w_gate": torch.full((experts, d, f), 0.5, dtype=torch.bfloat16),
           "experts.w_up": torch.full((experts, d, f), 0.5, dtype=torch.bfloat16),
           "experts.w_down": torch.full((experts, f, d), 0.5, dtype=torch.bfloat16)}
state = dict(weights)
for name, w in weights.items():
    for part, value in (("master", 0.5), ("exp_avg", 0.25), ("exp_avg_sq", 0.125)):
        state["optimizer.%s.%s" % (name, part)] = torch.full(w.shape, value, dtype=torch.float32)
size = sum(t.numel() * t.element_size() for t in state.values())
shutil.rmtree(directory, ignore_errors=True)
t = time.perf_counter()
dcp.save(state, checkpoint_id=directory)
save = time.perf_counter() - t
target = {k: torch.empty_like(v) for k, v in state.items()}
t = time.perf_counter()
dcp.load(target, checkpoint_id=directory)
load = time.perf_counter() - t
assert all(torch.equal(target[k], state[k]) for k in state), "DCP loaded other bytes"
print(json.dumps({"engine": "torch.distributed.checkpoint", "torch": torch.__version__, "experts": experts, "d": d,
                  "f": f, "gb": round(size / 1e9, 3), "save_s": round(save, 3), "save_gb_s": round(size / 1e9 / save, 2),
                  "load_s": round(load, 3), "load_gb_s": round(size / 1e9 / load, 2)}), flush=True)
dist.destroy_process_group()
shutil.rmtree(directory, ignore_errors=True)
