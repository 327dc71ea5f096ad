#!/usr/bin/env python3
"""Checkpoint peer: torch.distributed.checkpoint (DCP) saving and loading the same training state that
`moe-checkpoint bench DIR EXPERTS D_MODEL D_FF` writes (bf16 experts [E, D, F] x 2 and [E, F, D], an f32 router
[D, E], f32 master weights and AdamW moments for each), over a gloo process group. Under torchrun (or
tools/launch-ranks.py) with N ranks, as expert-parallel training holds it: each rank's experts a Shard(0) of a
DTensor over the N ranks, the router replicated (DCP saves it once), the same layout moe-checkpoint bench uses.
Usage: dcp_peer.py DIR EXPERTS D_MODEL D_FF"""
import json, os, shutil, sys, time

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp

directory, experts, d, f = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", "29533")
os.environ.setdefault("RANK", "0")
os.environ.setdefault("WORLD_SIZE", "1")
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
local = experts // world
if world > 1:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Replicate, Shard
    mesh = init_device_mesh("cpu", (world,))
    wrap = lambda t, stacked: DTensor.from_local(t, mesh, [Shard(0)] if stacked else [Replicate()], run_check=False)
else:
    wrap = lambda t, stacked: t
shapes = {"router.weight": ((d, experts), torch.float32, False),
          "experts.w_gate": ((local, d, f), torch.bfloat16, True),
          "experts.w_up": ((local, d, f), torch.bfloat16, True),
          "experts.w_down": ((local, f, d), torch.bfloat16, True)}
state, mine = {}, 0
for name, (shape, dtype, stacked) in shapes.items():
    for key, value, dt in ((name, 0.5, dtype), ("optimizer.%s.master" % name, 0.5, torch.float32),
                           ("optimizer.%s.exp_avg" % name, 0.25, torch.float32),
                           ("optimizer.%s.exp_avg_sq" % name, 0.125, torch.float32)):
        t = torch.full(shape, value, dtype=dt)
        if stacked or rank == 0:
            mine += t.numel() * t.element_size()
        state[key] = wrap(t, stacked)
total = torch.tensor([mine], dtype=torch.int64)
dist.all_reduce(total)
if rank == 0:
    shutil.rmtree(directory, ignore_errors=True)
dist.barrier()
t = time.perf_counter()
dcp.save(state, checkpoint_id=directory)
dist.barrier()
save = time.perf_counter() - t
target = {k: wrap(torch.empty_like(v.to_local() if world > 1 else v), shapes[k.split(".", 1)[1].rsplit(".", 1)[0]
                                                                             if k.startswith("optimizer.") else k][2])
          for k, v in state.items()}
dist.barrier()
t = time.perf_counter()
dcp.load(target, checkpoint_id=directory)
dist.barrier()
load = time.perf_counter() - t
same = all(torch.equal(target[k].to_local() if world > 1 else target[k], state[k].to_local() if world > 1 else state[k])
           for k in state)
assert same, "DCP loaded other bytes"
gb = total.item() / 1e9
if rank == 0:
    print(json.dumps({"engine": "torch.distributed.checkpoint", "torch": torch.__version__, "ranks": world,
                      "experts": experts, "d": d, "f": f, "gb": round(gb, 3), "save_s": round(save, 3),
                      "save_gb_s": round(gb / save, 2), "load_s": round(load, 3), "load_gb_s": round(gb / load, 2)}),
          flush=True)
dist.barrier()
if rank == 0:
    shutil.rmtree(directory, ignore_errors=True)
dist.destroy_process_group()
