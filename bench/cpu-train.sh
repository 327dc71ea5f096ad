#!/usr/bin/env bash
# The CPU backward against PyTorch autograd, in one call (docs/performance.md,
# "CPU backward"): the Mixtral-style layer at d_model 1024, d_ff 3584, f32.
# moec: the forward (moe-run --bench, median of 5) plus the backward
# (moe-run --backward --bench, which recomputes the forward: median of 5
# calls in one process, after a warm-up call);
# PyTorch: bench/peers/cpu_train_peer.py (needs python3-torch).
#   bash bench/cpu-train.sh [THREADS]          (tools from build/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
out=$(mktemp -d)
build/bin/moec build examples/mixtral.moe --set d_model=1024,d_ff=3584,T=f32 --train -o "$out/mx.moeb" >/dev/null
for tokens in 32 512; do
  fwd=$(build/bin/moe-run "$out/mx.moeb" --tokens $tokens --bench --iterations 5 --num-threads $threads |
    sed -n 's/.*median \([0-9.]*\) ms.*/\1/p')
  bwd=$(build/bin/moe-run "$out/mx.moeb" --tokens $tokens --backward --bench --iterations 5 --num-threads $threads |
    sed -n 's/^bench backward: .* median \([0-9.]*\) ms.*/\1/p')
  echo "{\"tokens\": $tokens, \"threads\": $threads, \"moec_forward_ms\": $fwd, \"moec_backward_ms\": $bwd," \
    "\"moec_forward_backward_ms\": $(echo "$fwd + $bwd" | bc)}"
done
/usr/bin/python3 bench/peers/cpu_train_peer.py "$threads" 32 512
rm -rf "$out"
