#!/usr/bin/env bash
# Prepares the device call for sharded cuda layers (see sharded.sh): the
# runtime-only build and, in .gpu/, each example unsharded and placed on a
# mesh of one (`--mesh ep=1`: every collective of the sharded program, run
# through NCCL with a world of one), at check sizes and at the benchmark's.
set -euo pipefail
cd "$(dirname "$0")/../.."
moec=$PWD/build/bin/moec
out=$PWD/.gpu
rm -rf "$out" && mkdir -p "$out/bin"
mkdir -p .git/info && grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
cmake --preset runtime-only -DMOE_BUILD_TESTS=ON -DMOE_RUNTIME_MPI=OFF >/dev/null
cmake --build --preset runtime-only >/dev/null
cp build-runtime/bin/moe-run build-runtime/lib/libmoe_formats.so build-runtime/lib/libmoe_runtime.so \
  build-runtime/bin/moe_runtime_gpu_tests "$out/bin/"
sizes=d_model=256,d_ff=256
for ex in mixtral deepseek_v3 qwen3_30b_a3b switch; do
  "$moec" build examples/$ex.moe --set $sizes --target=sm_90a -o "$out/check_$ex.moeb" >/dev/null
  "$moec" build examples/$ex.moe --set $sizes --target=sm_90a --mesh ep=1 -o "$out/mesh1_$ex.moeb" >/dev/null
done
# All tokens on experts 0..k-1 (a zero router): one expert past its capacity in switch.
"$moec" build examples/switch.moe --set $sizes,n_experts=8 --target=sm_90a -o "$out/check_one_switch.moeb" >/dev/null
"$moec" build examples/switch.moe --set $sizes,n_experts=8 --target=sm_90a --mesh ep=1 -o "$out/mesh1_one_switch.moeb" >/dev/null
/usr/bin/python3 bench/gpu/one_expert_weights.py "$out/one_switch.safetensors" f32 256 256 8 mlp
# The benchmark: Mixtral and the DeepSeek-V3 shape (256 experts: 256 runs a rank to exchange).
"$moec" build examples/mixtral.moe --target=sm_90a -o "$out/peer_mixtral.moeb" >/dev/null
"$moec" build examples/mixtral.moe --target=sm_90a --mesh ep=1 -o "$out/mesh1_peer_mixtral.moeb" >/dev/null
dsv3=d_model=7168,d_ff=2048,n_experts=256,top_k=8
"$moec" build examples/mixtral.moe --set $dsv3 --target=sm_90a -o "$out/peer_dsv3.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set $dsv3 --target=sm_90a --mesh ep=1 -o "$out/mesh1_peer_dsv3.moeb" >/dev/null
du -sh "$out"
