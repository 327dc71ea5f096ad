#!/usr/bin/env bash
# Runs on the GPU machine with .gpu/ (prepare-train.sh) carried:
#   bash bench/gpu/train-on-device.sh [check] [sanitize] [step] [bench] [peers] [profile] [teacher] [teacher_full]
# check: every check layer's outputs and gradients (moe-run --backward) at 1, 33, 4096 and 8192 tokens,
# saved for verify-train.sh (the reference evaluator, here), and run twice to compare bits.
set -uo pipefail
G=.gpu
B=$G/bin
export LD_LIBRARY_PATH=$PWD/$B
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
steps="${*:-check sanitize step bench peers teacher}"
exec > >(tee -a "$OUT/train-log") 2>&1
has() { [[ " $steps " == *" $1 "* ]]; }
run() { timeout ${RUN_TIMEOUT:-60} "$@" || echo "exit $? (124: timed out): $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
if has check; then
  o=/tmp/grads && rm -rf $o && mkdir -p $o
  while read -r name src sets; do
    [ -z "${EXAMPLES:-}" ] || [[ " $EXAMPLES " == *" $name "* ]] || continue
    # 8192 tokens for the layers of LARGE only: the files come back under a size limit. EXAMPLES picks layers.
    sizes="1 33 4096"; [[ " ${LARGE:-mixtral mixtral_bf16 deepseek_v3_bf16 switch_cap} " == *" $name "* ]] && sizes="$sizes 8192"
    for t in $sizes; do
      run $B/moe-run $G/train/check_$name.moeb --tokens $t --seed $t --backward --output $o/${name}_$t.safetensors |
        grep -E "backward:|error" | cut -c1-160
    done
    run $B/moe-run $G/train/check_$name.moeb --tokens 8192 --seed 8192 --backward --output $o/${name}_a.safetensors >/dev/null
    run $B/moe-run $G/train/check_$name.moeb --tokens 8192 --seed 8192 --backward --output $o/${name}_b.safetensors >/dev/null
    cmp -s $o/${name}_a.safetensors $o/${name}_b.safetensors && echo "$name: two backwards at 8192 tokens bitwise identical" ||
      echo "$name: BACKWARDS DIFFER"
    rm -f $o/${name}_a.safetensors $o/${name}_b.safetensors
    # One file a layer, its 8192-token run in a second one (what comes back is
    # limited to 8 files of ~16 MB: pick EXAMPLES to fit).
    (cd $o && tar cf "$OUT/grads_$name.tar" ${name}_1.safetensors ${name}_33.safetensors ${name}_4096.safetensors)
    [ -f $o/${name}_8192.safetensors ] && (cd $o && tar cf "$OUT/grads_${name}_8192.tar" ${name}_8192.safetensors)
  done < bench/gpu/train-checks.txt
fi
if has sanitize; then
  for name in mixtral_bf16 deepseek_v3_bf16 switch_cap; do
    timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $B/moe-run $G/train/check_$name.moeb --tokens 33 --backward >/tmp/memcheck.log 2>&1
    echo "memcheck $name backward: exit $? $(grep 'ERROR SUMMARY' /tmp/memcheck.log)"
  done
  timeout 300 compute-sanitizer --tool racecheck --error-exitcode 9 $B/moe-run $G/train/check_mixtral_bf16.moeb --tokens 300 --backward >/tmp/racecheck.log 2>&1
  echo "racecheck mixtral_bf16 backward: exit $? $(grep 'RACECHECK SUMMARY\|ERROR SUMMARY' /tmp/racecheck.log | head -2 | tr '\n' ' ')"
fi
if has bench; then
  for l in ${BENCH:-mixtral dsv3 qwen3}; do
    run $B/moe-run $G/train/bench_$l.moeb --tokens 8192 --backward --bench --iterations ${ITER:-5} | grep -E "^bench|error"
  done
fi
if has peers; then
  OUT=$OUT timeout 400 python3 $G/gpu_train_peers.py ${PEERS:-mixtral-prefill dsv3-prefill qwen3-prefill}
fi
if has step; then
  # The training step on the device (gpu_train_step.cc) against the host's (MOE_TRAIN_STEP=host: outputs and
  # gradients downloaded, AdamW on the host) on the same artifact: the same weights byte for byte after 6 steps,
  # and after 3 steps, a checkpoint (the device's moments downloaded) and a resume to step 6.
  d=/tmp/step && rm -rf $d && mkdir -p $d
  for name in ${STEP_EXAMPLES:-mixtral mixtral_bf16 deepseek_v3_bf16 switch_bf16 switch_cap rmsnorm_bf16}; do
    m=$G/train/check_$name.moeb
    train() { run $B/moe-run $m --seed 2 --train --data $d/$name.data --lr 1e-2 "$@" 2>>$d/$name.err; }
    run $B/moe-run $m --seed 1 --make-data $d/$name.data --steps 3 --tokens 384 >/dev/null
    train --steps 6 --save-weights $d/${name}_device.safetensors | grep trained
    MOE_TRAIN_STEP=host train --steps 6 --save-weights $d/${name}_host.safetensors | grep trained
    train --steps 3 --checkpoint-dir $d/ck_$name --checkpoint-every 3 >/dev/null
    train --steps 6 --resume $d/ck_$name --save-weights $d/${name}_resumed.safetensors >/dev/null
    cmp -s $d/${name}_device.safetensors $d/${name}_host.safetensors && echo "$name: device step = host step (6 steps, bitwise)" ||
      echo "$name: DEVICE STEP DIFFERS FROM HOST STEP"
    cmp -s $d/${name}_device.safetensors $d/${name}_resumed.safetensors && echo "$name: 3 + resume + 3 = 6 steps (bitwise)" ||
      echo "$name: RESUMED DIFFERS"
    grep -i error $d/$name.err | head -3
  done
fi
if has profile; then
  # Where each shape's forward + backward time goes, kernel by kernel: MOE_KERNEL_PROFILE's events around each
  # launch of plain (not graph-replayed) calls, the warm-up call included (the device machine has no Nsight).
  for l in ${BENCH:-mixtral dsv3 qwen3}; do
    echo "profile: $l forward + backward, 8192 tokens"
    MOE_KERNEL_PROFILE=1 run $B/moe-run $G/train/bench_$l.moeb --tokens 8192 --backward --bench-eager --iterations 3 2>&1 |
      grep -E "^bench|error|kernel profile|^  " | grep -v "^  grad\|^  output" | head -30 | cut -c1-150
  done
fi
# teacher: the GPU student of examples/train_teacher.sh (d_model 1024, 8 experts of 3584); teacher_full: a
# Mixtral-sized student (d_model 4096, 8 experts of 14336, bf16) of a teacher with 4 experts of 2048.
for size in teacher teacher_full; do
  has $size || continue
  t=/tmp/$size && rm -rf $t && mkdir -p $t
  teacher=teacher student=student; [ $size = teacher_full ] && teacher=teacher_full student=bench_mixtral
  run $B/moe-run $G/train/$teacher.moeb --seed 1 --make-data $t/data.safetensors --steps ${BATCHES:-32} --tokens 4096 | tail -1
  start=$(date +%s)
  RUN_TIMEOUT=${TEACHER_TIMEOUT:-300} run $B/moe-run $G/train/$student.moeb --seed 2 --train --data $t/data.safetensors \
    --steps ${STEPS:-400} --lr ${LR:-1e-3} --lr-schedule ${SCHEDULE:-constant} --warmup-steps ${WARMUP:-0} \
    --weight-decay 0 --loss-csv $t/loss.csv 2>$t/progress.log | tail -3
  echo "$size student: $(( $(date +%s) - start )) s"
  # Where a step's time goes (MOE_TRAIN_PROFILE=1): the second step and the last.
  grep '^profile:' $t/progress.log | sed -n '2p;$p'
  grep 'error' $t/progress.log | head -3
  awk -F, 'NR == 2 { first = $2 } NR > 1 { last = $2 } END { printf "loss %.4g -> %.4g: %.1fx lower\n", first, last, first / last }' $t/loss.csv
  awk -F, 'NR > 1 && $2 <= first / 10 && !hit { printf "10x lower at step %d (%.1f s)\n", $1, $3; hit = 1 } NR == 2 { first = $2 }' $t/loss.csv
  cp $t/loss.csv "$OUT/${size}_loss.csv"
done
