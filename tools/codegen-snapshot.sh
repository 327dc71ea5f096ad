#!/usr/bin/env bash
# Writes the generated code of every example and GPU variant into DIR: the PTX
# (--emit=ptx) and the host LLVM IR (--emit=llvm) for the GPU targets, and the
# CPU target's LLVM IR and shared object. Two snapshots compared with
# `cmp` (tools/codegen-compare.sh) show that a refactoring kept the code
# byte-identical.
#   tools/codegen-snapshot.sh DIR [MOEC]
set -euo pipefail
dir=${1:?usage: codegen-snapshot.sh DIR [MOEC]}
cd "$(dirname "$0")/.."
moec=${2:-$PWD/build/bin/moec}
mkdir -p "$dir"
small="--set d_model=256,d_ff=256"
odd="--set d_model=192,d_ff=320"
variants=(
  "sm90a|--target=sm_90a"
  "sm90a_small|--target=sm_90a $small"
  "sm90a_odd|--target=sm_90a $odd"
  "sm80|--target=sm_80 $small"
  "mma|--target=sm_90a --gpu-gemm=mma $small"
  "kt64|--target=sm_90a --gpu-gemm=mma --gpu-gemm-k-tile=64 $small"
  "w256|--target=sm_90a --gpu-gemm-n=256 $odd"
  "direct|--target=sm_90a --gpu-gemm-epilogue=direct $odd"
  "persistent|--target=sm_90a --gpu-gemm-persistent $small"
  "tma|--target=sm_90a --gpu-gemm-tma $odd"
)
for ex in bench/gpu/layers/*.moe; do
  name=$(basename "$ex" .moe)
  "$moec" "$ex" --emit=ptx --target=sm_90a --set d_model=256 >"$dir/$name.sm90a.ptx"
  "$moec" "$ex" --emit=llvm --set d_model=256 >"$dir/$name.cpu.ll"
done
for ex in examples/*.moe; do
  name=$(basename "$ex" .moe)
  "$moec" "$ex" --emit=llvm >"$dir/$name.cpu.ll"
  "$moec" build "$ex" -o "$dir/$name.cpu.moeb" >/dev/null
  for v in "${variants[@]}"; do
    tag=${v%%|*}
    flags=${v#*|}
    # shellcheck disable=SC2086
    "$moec" "$ex" --emit=ptx $flags >"$dir/$name.$tag.ptx"
    # shellcheck disable=SC2086
    "$moec" "$ex" --emit=llvm $flags >"$dir/$name.$tag.ll"
  done
done
echo "wrote $(ls "$dir" | wc -l) files to $dir"
