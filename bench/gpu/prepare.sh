#!/usr/bin/env bash
# Prepares one device call (see README.md here): the runtime built with the
# system compiler (it runs on the GPU machine's Ubuntu too), GPU artifacts for
# the correctness checks and the benchmark, the all-on-one-expert weights, and
# the PyTorch peer script, in .gpu/ (ignored by git; name it in `carry`).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
moec=$root/build/bin/moec
out=$root/.gpu
rm -rf "$out" && mkdir -p "$out"
mkdir -p .git/info && grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude

# The GPU machine has no MPI: its runtime goes without (the NCCL engine is dlopen-ed).
cmake --preset runtime-only -DMOE_BUILD_TESTS=ON -DMOE_RUNTIME_MPI=OFF >/dev/null
cmake --build --preset runtime-only >/dev/null
mkdir -p "$out/bin"
cp build-runtime/bin/moe-run build-runtime/lib/libmoe_formats.so build-runtime/lib/libmoe_runtime.so build-runtime/bin/moe_runtime_gpu_tests "$out/bin/"

# Correctness: every example at check sizes (several k tiles, several column blocks).
check_sizes="d_model=256,d_ff=256"
for ex in mixtral deepseek_v3 qwen3_30b_a3b switch; do
  "$moec" build examples/$ex.moe --set $check_sizes --target=sm_90a -o "$out/check_$ex.moeb" >/dev/null
done
# The same layer as PTX for the driver (no cubin), and for sm_80 (its cubin does
# not run on Hopper: the runtime falls back to the PTX).
"$moec" build examples/mixtral.moe --set $check_sizes --target=sm_90a --gpu-cubin=false -o "$out/check_mixtral_ptx.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set $check_sizes --target=sm_80 -o "$out/check_mixtral_sm80.moeb" >/dev/null
# The mma.sync GEMM on sm_90a (the default there is wgmma), at both its stage depths.
"$moec" build examples/mixtral.moe --set $check_sizes --target=sm_90a --gpu-gemm=mma -o "$out/check_mixtral_mma.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set $check_sizes --target=sm_90a --gpu-gemm=mma --gpu-gemm-k-tile=64 -o "$out/check_mixtral_kt64.moeb" >/dev/null
# Sizes that leave partial column blocks (192 = 128 + 64 output columns; 320 = 5 x 64 GLU columns).
"$moec" build examples/mixtral.moe --set d_model=192,d_ff=320 --target=sm_90a -o "$out/check_mixtral_odd.moeb" >/dev/null
# Routing with a partial last lane group (12 experts: lanes 12..31 hold none), a router of 12 columns
# (weights' rows not a whole number of 16-byte vectors), and a model width that 16-byte combine pieces
# do not divide (202, f32).
"$moec" build examples/mixtral.moe --set $check_sizes,n_experts=12,top_k=3 --target=sm_90a -o "$out/check_mixtral_e12.moeb" >/dev/null
"$moec" build examples/switch.moe --set d_model=202,d_ff=256,n_experts=12 --target=sm_90a -o "$out/check_switch_odd.moeb" >/dev/null
# wgmma with 256-column blocks (one an SM, a stage in flight).
"$moec" build examples/mixtral.moe --set $check_sizes --target=sm_90a --gpu-gemm-n=256 -o "$out/check_mixtral_w256.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set d_model=192,d_ff=320 --target=sm_90a --gpu-gemm-n=256 -o "$out/check_mixtral_odd_w256.moeb" >/dev/null
"$moec" build examples/deepseek_v3.moe --set $check_sizes --target=sm_90a --gpu-gemm-n=256 -o "$out/check_deepseek_v3_w256.moeb" >/dev/null
# The direct epilogue (each thread stores its element pairs; the default is staged through shared memory).
"$moec" build examples/mixtral.moe --set $check_sizes --target=sm_90a --gpu-gemm-epilogue=direct -o "$out/check_mixtral_direct.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set d_model=192,d_ff=320 --target=sm_90a --gpu-gemm-epilogue=direct -o "$out/check_mixtral_odd_direct.moeb" >/dev/null
# The persistent GEMM (a block an SM walking its tiles).
for ex in mixtral deepseek_v3 qwen3_30b_a3b; do
  "$moec" build examples/$ex.moe --set $check_sizes --target=sm_90a --gpu-gemm-persistent -o "$out/check_${ex}_persistent.moeb" >/dev/null
done
"$moec" build examples/mixtral.moe --set d_model=192,d_ff=320 --target=sm_90a --gpu-gemm-persistent -o "$out/check_mixtral_odd_persistent.moeb" >/dev/null
# The warp-specialised GEMM (a producer warpgroup, two consumers, mbarriers between them).
for ex in mixtral deepseek_v3 qwen3_30b_a3b; do
  "$moec" build examples/$ex.moe --set $check_sizes --target=sm_90a --gpu-gemm-warp-specialized=true -o "$out/check_${ex}_ws.moeb" >/dev/null
done
"$moec" build examples/mixtral.moe --set d_model=192,d_ff=320 --target=sm_90a --gpu-gemm-warp-specialized=true -o "$out/check_mixtral_odd_ws.moeb" >/dev/null
# TMA loads of the weights.
for ex in mixtral deepseek_v3 qwen3_30b_a3b; do
  "$moec" build examples/$ex.moe --set $check_sizes --target=sm_90a --gpu-gemm-tma -o "$out/check_${ex}_tma.moeb" >/dev/null
done
"$moec" build examples/mixtral.moe --set d_model=192,d_ff=320 --target=sm_90a --gpu-gemm-tma -o "$out/check_mixtral_odd_tma.moeb" >/dev/null
# Split-k router products (Qwen3-30B-A3B's 2048 -> 128 and DeepSeek-V3's shape at 1024 -> 256), split up to
# 2048 and 768 tokens, whole past them (docs/gpu.md, "Split-k"); checked with TOKENS="1 33 700 2100" (under
# 16 MiB of outputs) and by run-on-device.sh invariance (33 tokens split, the same among 4096 whole).
"$moec" build examples/qwen3_30b_a3b.moe --set d_model=2048,d_ff=256 --target=sm_90a --gpu-gemm-split-k -o "$out/check_qwen3_router.moeb" >/dev/null
"$moec" build examples/deepseek_v3.moe --set d_model=1024,d_ff=256 --target=sm_90a --gpu-gemm-split-k -o "$out/check_deepseek_v3_router.moeb" >/dev/null
# The shared expert's SwiGLU as one GEMM of both weights (docs/gpu.md, "The shared expert's SwiGLU").
"$moec" build examples/deepseek_v3.moe --set $check_sizes --target=sm_90a --gpu-gemm-dense-glu -o "$out/check_deepseek_v3_glu.moeb" >/dev/null
"$moec" build examples/deepseek_v3.moe --set d_model=192,d_ff=320 --target=sm_90a --gpu-gemm-dense-glu -o "$out/check_deepseek_v3_glu_odd.moeb" >/dev/null
# Layers beyond the examples: scalar arithmetic on the auxiliary losses (one-thread kernels), and a
# bf16 router whose logits rounded to bf16 would flip expert choices (routing stays in f32).
for l in switch_aux routing_f32; do
  "$moec" build bench/gpu/layers/$l.moe --set d_model=256 --target=sm_90a -o "$out/check_$l.moeb" >/dev/null
done
# All tokens on experts 0..k-1: a zero router makes every score equal, and ties go to the lower expert.
"$moec" build examples/mixtral.moe --set $check_sizes --target=sm_90a -o "$out/one_mixtral.moeb" >/dev/null
"$moec" build examples/switch.moe --set $check_sizes,n_experts=8 --target=sm_90a -o "$out/one_switch.moeb" >/dev/null
/usr/bin/python3 bench/gpu/one_expert_weights.py "$out/one_mixtral.safetensors" bf16 256 256 8 swiglu
/usr/bin/python3 bench/gpu/one_expert_weights.py "$out/one_switch.safetensors" f32 256 256 8 mlp

# Benchmark: the peers' layer (softmax top-k, renormalised, SwiGLU experts) is
# examples/mixtral.moe at each of moe_peers.py's shapes; and the real layers.
"$moec" build examples/mixtral.moe --target=sm_90a -o "$out/peer_mixtral.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set d_model=7168,d_ff=2048,n_experts=256,top_k=8 --target=sm_90a \
  -o "$out/peer_dsv3.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set d_model=2048,d_ff=768,n_experts=128,top_k=8 --target=sm_90a \
  -o "$out/peer_qwen3.moeb" >/dev/null
"$moec" build examples/deepseek_v3.moe --target=sm_90a -o "$out/full_deepseek_v3.moeb" >/dev/null
"$moec" build examples/deepseek_v3.moe --target=sm_90a --gpu-gemm-warp-specialized=true -o "$out/full_deepseek_v3_ws.moeb" >/dev/null
"$moec" build examples/deepseek_v3.moe --target=sm_90a --gpu-gemm-split-k -o "$out/full_deepseek_v3_splitk.moeb" >/dev/null
"$moec" build examples/deepseek_v3.moe --target=sm_90a --gpu-gemm-dense-glu -o "$out/full_deepseek_v3_glu.moeb" >/dev/null
"$moec" build examples/deepseek_v3.moe --target=sm_90a --gpu-gemm-dense-glu --gpu-gemm-split-k -o "$out/full_deepseek_v3_both.moeb" >/dev/null
# The same three with TMA, the direct epilogue, 256-column wgmma blocks, and mma.sync, for the comparison
# in one call.
for v in "tma --gpu-gemm-tma" "direct --gpu-gemm-epilogue=direct" "persistent --gpu-gemm-persistent" \
  "ws --gpu-gemm-warp-specialized=true" "onetile --gpu-gemm-warp-specialized=false" "splitk --gpu-gemm-split-k"; do
  set -- $v
  name=$1; shift
  "$moec" build examples/mixtral.moe --target=sm_90a "$@" -o "$out/peer_mixtral_$name.moeb" >/dev/null
  "$moec" build examples/mixtral.moe --set d_model=7168,d_ff=2048,n_experts=256,top_k=8 --target=sm_90a "$@" \
    -o "$out/peer_dsv3_$name.moeb" >/dev/null
  "$moec" build examples/mixtral.moe --set d_model=2048,d_ff=768,n_experts=128,top_k=8 --target=sm_90a "$@" \
    -o "$out/peer_qwen3_$name.moeb" >/dev/null
done
"$moec" build examples/mixtral.moe --target=sm_90a --gpu-gemm-n=256 -o "$out/peer_mixtral_w256.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set d_model=7168,d_ff=2048,n_experts=256,top_k=8 --target=sm_90a --gpu-gemm-n=256 \
  -o "$out/peer_dsv3_w256.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set d_model=2048,d_ff=768,n_experts=128,top_k=8 --target=sm_90a --gpu-gemm-n=256 \
  -o "$out/peer_qwen3_w256.moeb" >/dev/null
"$moec" build examples/mixtral.moe --target=sm_90a --gpu-gemm=mma -o "$out/peer_mixtral_mma.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set d_model=7168,d_ff=2048,n_experts=256,top_k=8 --target=sm_90a --gpu-gemm=mma \
  -o "$out/peer_dsv3_mma.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set d_model=2048,d_ff=768,n_experts=128,top_k=8 --target=sm_90a --gpu-gemm=mma \
  -o "$out/peer_qwen3_mma.moeb" >/dev/null
cp bench/peers/gpu_moe_peers.py bench/gpu/batch_invariance.py "$out/"
du -sh "$out"
