#!/usr/bin/env bash
# Checkpoint save and load throughput, moec against torch.distributed.checkpoint
# on the same state, in one call (docs/performance.md, "Checkpoints"):
#   bash bench/checkpoint.sh BIN_DIR WORK_DIR [EXPERTS D_MODEL D_FF]...
# BIN_DIR holds moe-checkpoint (build/bin, or .gpu/bin on the GPU machine,
# which has a PyTorch with DCP); WORK_DIR is on the disk measured.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1 work=$2
shift 2
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(16 1024 2048)
for ((i = 0; i < ${#sizes[@]}; i += 3)); do
  e=${sizes[i]} d=${sizes[i + 1]} f=${sizes[i + 2]}
  for run in 1 2; do
    rm -rf "$work/moec" && "$bin/moe-checkpoint" bench "$work/moec" $e $d $f
    rm -rf "$work/moec" && "$bin/moe-checkpoint" bench "$work/moec" $e $d $f --async
    python3 bench/peers/dcp_peer.py "$work/dcp" $e $d $f
  done
done
rm -rf "$work/moec" "$work/dcp"
