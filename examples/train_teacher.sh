#!/usr/bin/env bash
# A student learns its teacher: two Mixtral-style layers (SwiGLU experts,
# top-2, d_model 64, f32): the teacher with 4 experts of d_ff 64 (the
# weights of seed 1), the student with 8 of d_ff 256 (seed 2). The teacher's
# outputs on 64 batches of 256 random tokens are the targets; the student
# trains on them with AdamW on the CPU (moe-run --train) and must bring its
# mean squared error down at least 10x, in well under a minute.
#
#   bash examples/train_teacher.sh [OUT_DIR]      (tools from build/bin, or $MOE_BIN)
#
# On a GPU (TARGET=sm_90a, or sm_80 ...), the same at a GPU's size, the whole step on the device: a d_model 1024
# bf16 student of 8 experts of 3584 learns a teacher of 4 of 1024 from 32 batches of 4096 tokens (15000 steps,
# cosine schedule: ~2 minutes on an H200); SIZE=full: a Mixtral-sized student (d_model 4096, 8 experts of 14336)
# of a teacher of 4 of 2048, 16 batches, 2500 steps. The runtime alone runs them: TRAIN_ONLY=1 skips moec when
# OUT_DIR already holds the artifacts (a GPU machine without the compiler).
#
# OUT_DIR gets the train artifact, the data, the loss curve (loss.csv and loss.png) and
# the student's weights (student.safetensors, loadable by moe-run --weights).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MOE_BIN:-build/bin}
OUT=${1:-/tmp/moe-train-teacher}
mkdir -p "$OUT"
TARGET=${TARGET:-cpu}
if [ "$TARGET" = cpu ]; then
  teacher=d_model=64,d_ff=64,n_experts=4,T=f32 student=d_model=64,d_ff=256,T=f32
  batches=64 tokens=256 steps=3000 lr=3e-3 schedule=constant warmup=0
elif [ "${SIZE:-}" = full ]; then
  teacher=d_ff=2048,n_experts=4 student=d_model=4096
  batches=16 tokens=4096 steps=2500 lr=5e-4 schedule=cosine warmup=100
else
  teacher=d_model=1024,d_ff=1024,n_experts=4 student=d_model=1024,d_ff=3584
  batches=32 tokens=4096 steps=15000 lr=1e-3 schedule=cosine warmup=200
fi
if [ -z "${TRAIN_ONLY:-}" ]; then
  "$BIN/moec" build examples/mixtral.moe --set $teacher --target=$TARGET -o "$OUT/teacher.moeb"
  "$BIN/moec" build examples/mixtral.moe --set $student --target=$TARGET --train -o "$OUT/student.moeb"
fi
"$BIN/moe-run" "$OUT/teacher.moeb" --seed 1 --make-data "$OUT/data.safetensors" --steps $batches --tokens $tokens
"$BIN/moe-run" "$OUT/student.moeb" --seed 2 --train --data "$OUT/data.safetensors" --steps ${STEPS:-$steps} --lr $lr \
  --lr-schedule $schedule --warmup-steps $warmup --weight-decay 0 --loss-csv "$OUT/loss.csv" --plot "$OUT/loss.png" \
  --save-weights "$OUT/student.safetensors" 2>"$OUT/progress.log" | tee "$OUT/summary.txt"
# The loss must have fallen at least 10x.
awk -F, 'NR == 2 { first = $2 } NR > 1 { last = $2 }
         END { ratio = first / last; printf "loss %.4g -> %.4g: %.1fx lower\n", first, last, ratio;
               if (ratio < 10) { print "error: the student did not learn (less than 10x)"; exit 1 } }' "$OUT/loss.csv"
