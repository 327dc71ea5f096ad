#!/usr/bin/env bash
# The main job: set up, build, compile an example layer (Mixtral's block) from
# its .moe source into an artifact and run it with random weights, checking the
# result against the float64 reference evaluator and timing it: on the GPU when
# one is there (CUDA driver and an sm_80 or later GPU), else on the CPU at a
# CPU-sized width.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
# The GPU's architecture, e.g. sm_90a for an H100/H200; empty without a usable GPU.
arch=""
if command -v nvidia-smi >/dev/null 2>&1; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' || true)
  if [[ "$cc" =~ ^[0-9]+$ ]] && (( cc >= 80 )); then
    arch=sm_$cc
    [ "$cc" = 90 ] && arch=sm_90a
  fi
fi
set -x
if [ -n "$arch" ]; then
  build/bin/moec build examples/mixtral.moe --target=$arch -o build/mixtral-gpu.moeb
  build/bin/moec run build/mixtral-gpu.moeb --tokens 8192 --bench --iterations 10
  build/bin/moec run examples/mixtral.moe --target=$arch --set d_model=256,d_ff=512 --tokens 4096 --check
else
  build/bin/moec build examples/mixtral.moe --set d_model=1024,d_ff=3584 -o build/mixtral.moeb
  build/bin/moec run build/mixtral.moeb --tokens 512 --bench --iterations 5
  build/bin/moec run examples/mixtral.moe --set d_model=256,d_ff=512 --tokens 64 --check
fi
