#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .gpu/ (from
# prepare.sh) carried:  bash bench/gpu/run-on-device.sh [check] [sanitize] [bench] [peers]
# Results land in $OUT: outputs of the correctness runs (compared with the
# reference evaluator afterwards by verify.sh, on the compiler's machine) and logs.
set -uo pipefail
G=.gpu
B=$G/bin
export LD_LIBRARY_PATH=$PWD/$B
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
steps="${*:-check sanitize bench peers}"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
has() { [[ " $steps " == *" $1 "* ]]; }

if has check; then
  echo "== runtime GPU tests"
  $B/moe_runtime_gpu_tests 2>&1 | tail -2
  echo "== correctness runs (compared with the reference by verify.sh)"
  o=/tmp/outputs && rm -rf $o && mkdir -p $o
  for ex in mixtral deepseek_v3 qwen3_30b_a3b switch; do
    for t in 1 33 4096 8192; do
      $B/moe-run $G/check_$ex.moeb --tokens $t --seed $t --output $o/${ex}_$t.safetensors | tail -1 | cut -c1-160
    done
    # Bitwise reproducibility: the same call twice.
    $B/moe-run $G/check_$ex.moeb --tokens 8192 --seed 8192 --output $o/${ex}_again.safetensors >/dev/null &&
      cmp -s $o/${ex}_8192.safetensors $o/${ex}_again.safetensors && echo "$ex: two runs bitwise identical" ||
      echo "$ex: RUNS DIFFER"
    rm -f $o/${ex}_again.safetensors
  done
  $B/moe-run $G/one_mixtral.moeb --weights $G/one_mixtral.safetensors --tokens 4096 --seed 3 --output $o/one_mixtral.safetensors | tail -1 | cut -c1-160
  $B/moe-run $G/one_switch.moeb --weights $G/one_switch.safetensors --tokens 4096 --seed 3 --output $o/one_switch.safetensors | tail -1 | cut -c1-160
  (cd $o && tar cf "$OUT/outputs_a.tar" mixtral_* deepseek_v3_* one_*.safetensors && tar cf "$OUT/outputs_b.tar" qwen3_30b_a3b_* switch_*)
  ls -la "$OUT"
fi

if has sanitize; then
  echo "== compute-sanitizer (memcheck on every example; racecheck and synccheck on two)"
  for ex in mixtral deepseek_v3 qwen3_30b_a3b switch; do
    compute-sanitizer --tool memcheck --error-exitcode 9 $B/moe-run $G/check_$ex.moeb --tokens 33 >$OUT/memcheck_$ex.log 2>&1
    echo "memcheck $ex: exit $? ($(grep -c 'ERROR SUMMARY: 0 errors' $OUT/memcheck_$ex.log) clean summaries)"
  done
  for ex in mixtral switch; do
    for tool in racecheck synccheck; do
      compute-sanitizer --tool $tool --error-exitcode 9 $B/moe-run $G/check_$ex.moeb --tokens 300 >/tmp/$tool.log 2>&1
      echo "$tool $ex: exit $? $(grep 'ERROR SUMMARY\|RACECHECK SUMMARY' /tmp/$tool.log | head -2 | tr '\n' ' ')"
    done
  done
fi

if has bench; then
  echo "== moec layers (CUDA-graph replays, median)"
  for spec in "peer_mixtral 8192" "peer_mixtral 32" "peer_dsv3 8192" "peer_dsv3 32" "peer_qwen3 8192" \
              "full_deepseek_v3 8192" "full_deepseek_v3 32"; do
    set -- $spec
    $B/moe-run $G/$1.moeb --tokens $2 --bench --iterations 20 2>&1 | grep -E "^bench|error" | sed "s/^/$1: /"
  done
fi

if has peers; then
  echo "== PyTorch peers (moe_peers.py)"
  python3 $G/moe_peers.py 2>&1 | tail -7
fi
