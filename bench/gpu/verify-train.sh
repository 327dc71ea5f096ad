#!/usr/bin/env bash
# Compares the outputs and gradients of a device run (train-on-device.sh check, fetched to DIR)
# with the float64 reference evaluator, same seeds and sizes:  bash bench/gpu/verify-train.sh DIR
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=$1
moec=${MOEC:-build/bin/moec}
work=$(mktemp -d)
for t in "$dir"/grads_*.tar; do tar xf "$t" -C "$work"; done
status=0
while read -r name src sets; do
  for t in ${TOKENS:-1 33 4096 8192}; do
    [ -f "$work/${name}_$t.safetensors" ] || continue
    printf '%s tokens=%s: ' "$name" "$t"
    $moec run "$src" --set "$sets" --tokens $t --seed $t --backward --check \
      --check-outputs "$work/${name}_$t.safetensors" | grep -E "^check: (output|grad)" |
      sed 's/max |compiled - reference| \/ max |reference| = //' | tr '\n' ' '
    [ "${PIPESTATUS[0]}" = 0 ] || status=1
    echo
  done
done < bench/gpu/train-checks.txt
rm -rf "$work"
exit $status
