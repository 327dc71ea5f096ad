#!/usr/bin/env bash
# Checkpoint save and load throughput, moec against torch.distributed.checkpoint
# on the same state, in one call (docs/performance.md, "Checkpoints"):
#   RANKS=N bash bench/checkpoint.sh BIN_DIR WORK_DIR [EXPERTS D_MODEL D_FF]...
# BIN_DIR holds moe-checkpoint (build/bin, or .gpu/bin on the GPU machine,
# which has a PyTorch with DCP); WORK_DIR is on the disk measured. With
# RANKS=N (default 1) both run as N ranks on this host, expert parallel: moec
# through tools/launch-ranks.py (TCP between the ranks, no MPI), DCP through
# torchrun (gloo, DTensor shards).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1 work=$2
shift 2
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(16 1024 2048)
ranks=${RANKS:-1}
moec() { if [ "$ranks" = 1 ]; then "$bin/moe-checkpoint" "$@"; else python3 tools/launch-ranks.py "$ranks" "$bin/moe-checkpoint" "$@"; fi; }
dcp() {
  if [ "$ranks" = 1 ]; then python3 bench/peers/dcp_peer.py "$@"
  else torchrun --standalone --nproc-per-node="$ranks" bench/peers/dcp_peer.py "$@" 2>/dev/null; fi
}
for ((i = 0; i < ${#sizes[@]}; i += 3)); do
  e=${sizes[i]} d=${sizes[i + 1]} f=${sizes[i + 2]}
  for run in 1 2; do
    rm -rf "$work/moec" && moec bench "$work/moec" $e $d $f
    rm -rf "$work/moec" && moec bench "$work/moec" $e $d $f --async
    dcp "$work/dcp" $e $d $f
  done
done
rm -rf "$work/moec" "$work/dcp"
