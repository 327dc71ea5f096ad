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
# OUT_DIR gets the train artifact, the data, the loss curve (loss.csv and loss.png) and
# the student's weights (student.safetensors, loadable by moe-run --weights).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MOE_BIN:-build/bin}
OUT=${1:-/tmp/moe-train-teacher}
mkdir -p "$OUT"
"$BIN/moec" build examples/mixtral.moe --set d_model=64,d_ff=64,n_experts=4,T=f32 -o "$OUT/teacher.moeb"
"$BIN/moec" build examples/mixtral.moe --set d_model=64,d_ff=256,T=f32 --train -o "$OUT/student.moeb"
"$BIN/moe-run" "$OUT/teacher.moeb" --seed 1 --make-data "$OUT/data.safetensors" --steps 64 --tokens 256
"$BIN/moe-run" "$OUT/student.moeb" --seed 2 --train --data "$OUT/data.safetensors" --steps ${STEPS:-3000} --lr 3e-3 \
  --weight-decay 0 --loss-csv "$OUT/loss.csv" --plot "$OUT/loss.png" --save-weights "$OUT/student.safetensors" 2>"$OUT/progress.log" | tee "$OUT/summary.txt"
# The loss must have fallen at least 10x.
awk -F, 'NR == 2 { first = $2 } NR > 1 { last = $2 }
         END { ratio = first / last; printf "loss %.4g -> %.4g: %.1fx lower\n", first, last, ratio;
               if (ratio < 10) { print "error: the student did not learn (less than 10x)"; exit 1 } }' "$OUT/loss.csv"
