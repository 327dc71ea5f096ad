#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .gpu/ (from
# prepare.sh) carried:  bash bench/gpu/run-on-device.sh [check] [sanitize] [invariance] [load] [bench] [profile] [stalls] [timeline] [peers]
# (the steps run in that order; W128=0, WS=0, PERSISTENT=0, TMA=0, DIRECT=0, W256=0, MMA=0 leave variants out of
# bench; EXAMPLES names the check artifacts; the whole log is also $OUT/log).
# Results land in $OUT: outputs of the correctness runs (compared with the
# reference evaluator afterwards by verify.sh, on the compiler's machine) and logs.
set -uo pipefail
G=.gpu
B=$G/bin
export LD_LIBRARY_PATH=$PWD/$B
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
steps="${*:-check sanitize bench peers}"
exec > >(tee -a "$OUT/log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
has() { [[ " $steps " == *" $1 "* ]]; }
# A kernel that hangs (an mbarrier never completing) must not eat the whole call.
run() { timeout ${RUN_TIMEOUT:-30} "$@" || echo "exit $? (124: timed out after ${RUN_TIMEOUT:-30} s): $*"; }

if has check; then
  echo "== runtime GPU tests"
  $B/moe_runtime_gpu_tests 2>&1 | tail -2
  echo "== correctness runs (compared with the reference by verify.sh)"
  o=/tmp/outputs && rm -rf $o && mkdir -p $o
  for ex in ${EXAMPLES:-mixtral deepseek_v3 qwen3_30b_a3b switch mixtral_mma mixtral_kt64 mixtral_odd}; do
    for t in ${TOKENS:-1 33 4096 8192}; do
      run $B/moe-run $G/check_$ex.moeb --tokens $t --seed $t --output $o/${ex}_$t.safetensors | tail -1 | cut -c1-160
    done
    # Bitwise reproducibility: the same call twice.
    last=${TOKENS:-8192}; last=${last##* }
    run $B/moe-run $G/check_$ex.moeb --tokens $last --seed $last --output $o/${ex}_again.safetensors >/dev/null &&
      cmp -s $o/${ex}_$last.safetensors $o/${ex}_again.safetensors && echo "$ex: two runs bitwise identical" ||
      echo "$ex: RUNS DIFFER"
    rm -f $o/${ex}_again.safetensors
  done
  # All tokens on experts 0,1 (and on expert 0 past its capacity): by default, or ONE=1 with EXAMPLES.
  one=${ONE:-1}; [ -n "${EXAMPLES:-}" ] && one=${ONE:-0}
  [ "$one" = 1 ] && $B/moe-run $G/one_mixtral.moeb --weights $G/one_mixtral.safetensors --tokens 4096 --seed 3 --output $o/one_mixtral.safetensors | tail -1 | cut -c1-160
  [ "$one" = 1 ] && $B/moe-run $G/one_switch.moeb --weights $G/one_switch.safetensors --tokens 4096 --seed 3 --output $o/one_switch.safetensors | tail -1 | cut -c1-160
  # Under 16 MiB a file, for the trip back.
  (cd $o && for ex in ${EXAMPLES:-mixtral deepseek_v3 qwen3_30b_a3b switch mixtral_mma mixtral_kt64 mixtral_odd}; do
     tar cf "$OUT/outputs_$ex.tar" ${ex}_[0-9]*.safetensors; done; ls one_* >/dev/null 2>&1 && tar cf "$OUT/outputs_one.tar" one_*)
  ls -la "$OUT"
fi

if has invariance; then
  echo "== batch invariance: a token's output rows the same at 33 tokens as among 4096 (split-k and whole routers)"
  for ex in ${INVARIANT:-qwen3_router deepseek_v3_router mixtral deepseek_v3 qwen3_30b_a3b}; do
    run $B/moe-run $G/check_$ex.moeb --tokens 33 --seed 7 --output /tmp/inv_small.safetensors >/dev/null
    run $B/moe-run $G/check_$ex.moeb --tokens 4096 --seed 7 --output /tmp/inv_large.safetensors >/dev/null
    echo "$ex: $(python3 $G/batch_invariance.py /tmp/inv_small.safetensors /tmp/inv_large.safetensors 33 | tr '\n' ' ')"
  done
fi

if has load; then
  echo "== code loading: cubin (default), PTX compiled by the driver, sm_80 cubin falling back to PTX"
  for v in mixtral mixtral_ptx mixtral_sm80; do
    start=$(date +%s%N)
    $B/moe-run $G/check_$v.moeb --tokens 4096 --seed 4096 --output /tmp/load_$v.safetensors | tail -1 | cut -c1-120
    echo "$v: $(( ($(date +%s%N) - start) / 1000000 )) ms for the whole process"
  done
  cmp /tmp/load_mixtral.safetensors /tmp/load_mixtral_ptx.safetensors && echo "cubin and PTX outputs bitwise identical"
  cmp /tmp/load_mixtral.safetensors /tmp/load_mixtral_sm80.safetensors && echo "sm_80 (PTX fallback) output bitwise identical"
fi

if has sanitize; then
  echo "== compute-sanitizer (memcheck on every example, or MEMCHECK's; racecheck on two, or RACECHECK's)"
  for ex in ${MEMCHECK:-mixtral deepseek_v3 qwen3_30b_a3b switch}; do
    timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 $B/moe-run $G/check_$ex.moeb --tokens 33 >/tmp/memcheck.log 2>&1
    echo "memcheck $ex: exit $? $(grep 'ERROR SUMMARY' /tmp/memcheck.log)"
  done
  for ex in ${RACECHECK:-mixtral deepseek_v3}; do
    for tool in racecheck; do
      timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 $B/moe-run $G/check_$ex.moeb --tokens 300 >/tmp/$tool.log 2>&1
      echo "$tool $ex: exit $? $(grep 'ERROR SUMMARY\|RACECHECK SUMMARY' /tmp/$tool.log | head -2 | tr '\n' ' ')"
    done
  done
fi

if has bench; then
  echo "== moec layers (CUDA-graph replays, median)"
  specs=()
  [ "${W128:-1}" = 0 ] || specs+=("peer_mixtral 8192 32" "peer_dsv3 8192 32" "peer_qwen3 8192 32")
  # The persistent, TMA, direct-epilogue, 256-column wgmma and mma.sync builds of the same layers,
  # unless PERSISTENT=0 / TMA=0 / DIRECT=0 / W256=0 / MMA=0.
  [ "${PERSISTENT:-1}" = 0 ] || specs+=("peer_mixtral_persistent 8192 32" "peer_dsv3_persistent 8192 32" "peer_qwen3_persistent 8192")
  [ "${WS:-1}" = 0 ] || specs+=("peer_mixtral_ws 8192 32" "peer_dsv3_ws 8192 32" "peer_qwen3_ws 8192 32")
  [ "${TMA:-1}" = 0 ] || specs+=("peer_mixtral_tma 8192 32" "peer_dsv3_tma 8192 32" "peer_qwen3_tma 8192")
  [ "${DIRECT:-1}" = 0 ] || specs+=("peer_mixtral_direct 8192 32" "peer_dsv3_direct 8192 32" "peer_qwen3_direct 8192")
  [ "${W256:-1}" = 0 ] || specs+=("peer_mixtral_w256 8192 32" "peer_dsv3_w256 8192 32" "peer_qwen3_w256 8192")
  [ "${MMA:-1}" = 0 ] || specs+=("peer_mixtral_mma 8192 32" "peer_dsv3_mma 8192 32" "peer_qwen3_mma 8192")
  # FULL="artifact tokens [bench-tokens]": one more layer, e.g. the real DeepSeek one.
  [ -z "${FULL:-}" ] || specs+=("$FULL")
  for spec in "${specs[@]}"; do
    set -- $spec
    # The SM clock and board power while it runs (a layer at the power limit runs below the boost clock).
    nvidia-smi --query-gpu=clocks.sm,power.draw --format=csv,noheader,nounits -lms 50 >/tmp/smi.csv 2>/dev/null &
    smi=$!
    timeout ${BENCH_TIMEOUT:-120} $B/moe-run $G/$1.moeb --tokens $2 --bench --iterations ${ITERATIONS:-30} ${3:+--bench-tokens $3} 2>&1 |
      grep -E "^bench|error" | sed "s/^/$1: /"
    kill $smi 2>/dev/null; wait $smi 2>/dev/null
    # The samples under load (above 300 W): lowest and median SM clock, highest power.
    load=$(awk -F', ' '$2 > 300' /tmp/smi.csv)
    if [ -n "$load" ]; then
      clocks=$(echo "$load" | cut -d, -f1 | sort -n) n=$(echo "$load" | wc -l)
      echo "  $1: $n samples under load: SM clock min $(echo "$clocks" | head -1), median $(echo "$clocks" |
        sed -n "$(( (n + 1) / 2 ))p") MHz; power max $(echo "$load" | cut -d, -f2 | sort -n | tail -1) W"
    fi
  done
fi

if has profile; then
  echo "== Nsight Compute: the gate/up and down GEMMs of the Mixtral prefill"
  for v in ${PROFILE:-peer_mixtral}; do
    # The expert GEMMs (gate/up, then down): the router's product comes first and is left out.
    ncu --clock-control none -k 'regex:moe_gemm_.*_grouped' --launch-count 2 --section SpeedOfLight --section Occupancy \
      --section LaunchStats --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
      --section ComputeWorkloadAnalysis \
      $B/moe-run $G/$v.moeb --tokens 8192 >$OUT/ncu_$v.txt 2>&1
    echo "-- $v"
    grep -E "moe_gemm|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|DRAM Throughput|L2 Cache Throughput|L1/TEX Cache Throughput|Registers Per|Stall|L2 Hit|Executed Ipc A|Issue Slots Busy|No Eligible|Shared Memory Configuration|Pipe" $OUT/ncu_$v.txt | head -60
  done
fi

if has stalls; then
  echo "== Nsight Compute: why the gate/up GEMM's warps wait (STALLS: artifacts; cycles a warp spends stalled per issued instruction)"
  for v in ${STALLS:-peer_mixtral}; do
    ncu --clock-control none -k 'regex:moe_gemm_.*_glu_gather_grouped' --launch-count 1 --section WarpStateStats \
      --page raw --csv $B/moe-run $G/$v.moeb --tokens 8192 >/tmp/stalls.csv 2>/dev/null
    echo "-- $v"
    python3 - /tmp/stalls.csv <<'PY'
import csv, sys
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
head, values = rows[0], rows[-1]
stalls = []
for name, value in zip(head, values):
    if "issue_stalled" in name and name.endswith("_per_issue_active.ratio"):
        try:
            stalls.append((float(value.replace(",", "")), name.split("issue_stalled_")[1].split("_per_issue")[0]))
        except ValueError:
            pass
for v, name in sorted(stalls, reverse=True)[:10]:
    print(f"  {name:28s} {v:6.2f}")
PY
  done
fi

if has timeline; then
  echo "== Nsight Compute: every kernel's duration in one layer call (TIMELINE: artifact:tokens ...)"
  for spec in ${TIMELINE:-peer_mixtral:8192 peer_dsv3:8192}; do
    v=${spec%%:*} t=${spec##*:}
    ncu --clock-control none --cache-control none --csv --page raw --metrics gpu__time_duration.sum \
      $B/moe-run $G/$v.moeb --tokens $t >/tmp/timeline.csv 2>/dev/null
    echo "-- $v, $t tokens (kernel, microseconds)"
    python3 - /tmp/timeline.csv <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if l.startswith('"'))]
rows = [r for r in rows if r.get("gpu__time_duration.sum", "").replace(".", "").replace(",", "").isdigit()]
unit = "ns"
total = 0.0
for r in rows:
    v = float(r["gpu__time_duration.sum"].replace(",", ""))
    total += v
    print(f"{v / 1000:10.1f}  {r['Kernel Name'][:110]}")
print(f"{total / 1000:10.1f}  total of {len(rows)} kernels")
PY
  done
fi

if has peers; then
  echo "== PyTorch peers (bench/peers/gpu_moe_peers.py: eager and CUDA-graph captured)"
  timeout ${PEERS_TIMEOUT:-300} python3 $G/gpu_moe_peers.py ${PEER_SHAPES:-} 2>&1 | tail -9
fi
