#!/usr/bin/env bash
# The CPU backward against PyTorch autograd, in one call (docs/performance.md,
# "CPU backward"), f32, on the forward benchmark's shapes (bench/cpu_moe.sh)
# and the Mixtral-like one at 32 tokens: the same layer on both sides (softmax
# top-k, renormalised, SwiGLU experts).
# moec: a training step's forward and backward calls (moe-run --backward
# --bench times both, the backward recomputing what the forward does not
# keep: median of 5 in one process, after a warm-up), and the forward alone
# (moe-run --bench, median of 5) for reference;
# PyTorch: bench/peers/cpu_train_peer.py (needs python3-torch), with the
# OpenBLAS core type that bench/cpu_moe.sh gives its peer.
#   bash bench/cpu-train.sh [THREADS]          (tools from build/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
# The peer is fair only on OpenBLAS: Debian's reference BLAS (the default
# without libopenblas0-pthread) runs its products ~30x slower.
if ! readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 | grep -q openblas; then
  echo "error: the PyTorch peer needs OpenBLAS as the system BLAS: apt-get install libopenblas0-pthread" >&2
  exit 1
fi
out=$(mktemp -d)
shapes="mixtral-like:32:1024:3584:8:2 mixtral-like:512:1024:3584:8:2 qwen3-like:512:1024:384:64:8 dsv3-like:512:1024:256:128:8"
for s in $shapes; do
  IFS=: read -r name t d f e k <<< "$s"
  build/bin/moec build examples/qwen3_30b_a3b.moe --set "T=f32,d_model=$d,d_ff=$f,n_experts=$e,top_k=$k" --train \
    -o "$out/l.moeb" >/dev/null
  fwd=$(build/bin/moe-run "$out/l.moeb" --tokens $t --bench --iterations 5 --num-threads $threads |
    sed -n 's/.*median \([0-9.]*\) ms.*/\1/p')
  bwd=$(build/bin/moe-run "$out/l.moeb" --tokens $t --backward --bench --iterations 5 --num-threads $threads |
    sed -n 's/^bench backward: .* median \([0-9.]*\) ms.*/\1/p')
  echo "{\"shape\": \"$name\", \"tokens\": $t, \"threads\": $threads, \"moec_forward_ms\": $fwd," \
    "\"moec_forward_backward_ms\": $bwd}"
done
OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=$threads /usr/bin/python3 bench/peers/cpu_train_peer.py "$threads" $shapes
rm -rf "$out"
