#!/usr/bin/env bash
# Runs on the GPU machine with .gpu/ from prepare-sharded.sh carried:
#   bash bench/gpu/sharded.sh [check] [bench]
# check: every example placed on a mesh of one, run through NCCL (plainly and
# under torchrun), must write outputs byte-identical to the unsharded build.
# bench: the NCCL world-of-one overhead against the unsharded build (graph
# replays and plain calls) at 8192 and 32 tokens. The log is also $OUT/log.
set -uo pipefail
G=.gpu
B=$G/bin
export LD_LIBRARY_PATH=$PWD/$B
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
steps="${*:-check bench}"
exec > >(tee -a "$OUT/log") 2>&1
has() { [[ " $steps " == *" $1 "* ]]; }
run() { timeout ${RUN_TIMEOUT:-120} "$@" || echo "exit $? (124: timed out): $*"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
export MOE_COLLECTIVE_TIMEOUT=60

if has check; then
  echo "== runtime GPU tests (NCCL included)"
  $B/moe_runtime_gpu_tests 2>&1 | grep -E "OK|FAILED|SKIPPED|PASSED" | tail -12
  o=/tmp/sharded && rm -rf $o && mkdir -p $o
  same=0 differ=0
  compare() { # name a b
    if cmp -s "$2" "$3"; then same=$((same + 1)); else differ=$((differ + 1)); echo "DIFFER: $1"; fi
  }
  for ex in mixtral deepseek_v3 qwen3_30b_a3b switch; do
    for t in 1 33 300 4096; do
      run $B/moe-run $G/check_$ex.moeb --tokens $t --seed $t --output $o/u.safetensors >/dev/null
      run $B/moe-run $G/mesh1_$ex.moeb --tokens $t --seed $t --output $o/m.safetensors > $o/m.log
      compare "$ex tokens=$t (plain)" $o/u.safetensors $o/m.safetensors
      [ $t = 33 ] && head -3 $o/m.log
      if command -v torchrun >/dev/null; then
        run torchrun --nproc-per-node=1 --no-python $B/moe-run $G/mesh1_$ex.moeb --tokens $t --seed $t \
          --output $o/t.safetensors >/dev/null 2>$o/t.err || cat $o/t.err | tail -3
        compare "$ex tokens=$t (torchrun)" $o/u.safetensors $o/t.safetensors
      fi
    done
  done
  for t in 37 4096; do
    run $B/moe-run $G/check_one_switch.moeb --weights $G/one_switch.safetensors --tokens $t --seed 3 --output $o/u.safetensors >/dev/null
    run $B/moe-run $G/mesh1_one_switch.moeb --weights $G/one_switch.safetensors --tokens $t --seed 3 --output $o/m.safetensors >/dev/null
    compare "switch, every token on expert 0, tokens=$t" $o/u.safetensors $o/m.safetensors
  done
  echo "sharded (NCCL, world of one) vs unsharded: $same byte-identical, $differ differ"
fi

if has bench; then
  echo "== NCCL world-of-one overhead (median of 20 calls)"
  for l in peer_mixtral peer_dsv3; do
    for t in 8192 32; do
      run $B/moe-run $G/$l.moeb --tokens $t --bench --iterations 20 | grep '^bench'
      run $B/moe-run $G/$l.moeb --tokens $t --bench-eager --iterations 20 | grep '^bench'
      run $B/moe-run $G/mesh1_$l.moeb --tokens $t --bench --iterations 20 | grep '^bench'
    done
  done
fi
