#!/usr/bin/env bash
# Prepares the training half of a device call (here, with moec): the runtime
# built with the system compiler, train artifacts (moec build --train
# --target=sm_90a) for the gradient checks, the forward + backward benchmark
# and the GPU student of examples/train_teacher.sh, in .gpu/ (carry it).
#   bash bench/gpu/prepare-train.sh        then, there: bash bench/gpu/train-on-device.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
moec=$PWD/build/bin/moec
out=$PWD/.gpu
mkdir -p "$out/bin" "$out/train"
mkdir -p .git/info && grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
cmake --preset runtime-only -DMOE_BUILD_TESTS=ON -DMOE_RUNTIME_MPI=OFF >/dev/null
cmake --build --preset runtime-only >/dev/null
cp build-runtime/bin/moe-run build-runtime/lib/libmoe_formats.so build-runtime/lib/libmoe_runtime.so \
  build-runtime/bin/moe_runtime_gpu_tests "$out/bin/"
# The gradient checks: every example in f32 (the FMA kernels, tight tolerance) and bf16 (tensor cores),
# a capacity-dropping Switch, and every token on one expert (verify-train.sh has the same list).
while read -r name src sets; do
  "$moec" build "$src" --set "$sets" --target=sm_90a --train -o "$out/train/check_$name.moeb" >/dev/null
done < bench/gpu/train-checks.txt
# The benchmark: gpu_train_peers.py's layer at its three prefill shapes.
"$moec" build examples/mixtral.moe --target=sm_90a --train -o "$out/train/bench_mixtral.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set d_model=7168,d_ff=2048,n_experts=256,top_k=8 --target=sm_90a --train \
  -o "$out/train/bench_dsv3.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set d_model=2048,d_ff=768,n_experts=128,top_k=8 --target=sm_90a --train \
  -o "$out/train/bench_qwen3.moeb" >/dev/null
# The GPU student: a teacher of 4 experts of d_ff 1024, a student of 8 of 3584, d_model 1024, bf16.
"$moec" build examples/mixtral.moe --set d_model=1024,d_ff=1024,n_experts=4 --target=sm_90a -o "$out/train/teacher.moeb" >/dev/null
"$moec" build examples/mixtral.moe --set d_model=1024,d_ff=3584 --target=sm_90a --train -o "$out/train/student.moeb" >/dev/null
# The Mixtral-sized student is bench_mixtral.moeb; its teacher has 4 experts of 2048.
"$moec" build examples/mixtral.moe --set d_ff=2048,n_experts=4 --target=sm_90a -o "$out/train/teacher_full.moeb" >/dev/null
cp bench/peers/gpu_moe_peers.py bench/peers/gpu_train_peers.py "$out/"
du -sh "$out"
