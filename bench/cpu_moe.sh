#!/usr/bin/env bash
# CPU benchmark: moec's compiled layer against the PyTorch CPU peer
# (bench/peers/cpu_moe_peer.py: the HF-style loop over experts and the
# FLOP-equivalent dense GEMMs) on the same three shapes, f32, same threads,
# side by side in one run. Needs Debian's python3-torch and libopenblas0-pthread;
# OpenBLAS 0.3.21 mis-detects AVX-512 Xeons, hence OPENBLAS_CORETYPE=SkylakeX
# for the peer only.
#   bash bench/cpu_moe.sh [THREADS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
threads="${1:-2}"
moec="$root/build/bin/moec"
peer="${MOE_PEERS:-$root/bench/peers/cpu_moe_peer.py}"

echo "== PyTorch peer ($peer), $threads threads"
# The peer is fair only on OpenBLAS: Debian's reference BLAS (the default
# without libopenblas0-pthread) runs its products ~30x slower.
if ! readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 | grep -q openblas; then
  echo "SKIPPED: the system BLAS is not OpenBLAS (apt-get install libopenblas0-pthread)"
elif [ -f "$peer" ] && /usr/bin/python3 -c "import torch" 2>/dev/null; then
  sed "s/torch.set_num_threads(2)/torch.set_num_threads($threads)/" "$peer" > /tmp/moe_peer_$$.py
  OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS="$threads" /usr/bin/python3 /tmp/moe_peer_$$.py
  rm -f /tmp/moe_peer_$$.py
else
  echo "SKIPPED: no peer script or no python3-torch"
fi

echo "== moec (the same layers: softmax top-k, renormalised, SwiGLU experts, f32)"
# name T D F E K, as in cpu_moe_peer.py
while read -r name t d f e k; do
  printf '%s: ' "$name"
  "$moec" run "$root/examples/qwen3_30b_a3b.moe" --set "T=f32,d_model=$d,d_ff=$f,n_experts=$e,top_k=$k" \
    --tokens "$t" --bench --iterations 5 --num-threads "$threads" | grep '^bench:'
done <<'SHAPES'
mixtral-like 512 1024 3584 8 2
qwen3-like 512 1024 384 64 8
dsv3-like 512 1024 256 128 8
SHAPES
