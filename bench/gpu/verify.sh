#!/usr/bin/env bash
# Compares the outputs of a device run (run-on-device.sh check, fetched to
# DIR) with the float64 reference evaluator, same seeds and sizes:
#   bash bench/gpu/verify.sh DIR
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=$1
moec=${MOEC:-build/bin/moec}
work=$(mktemp -d)
for t in "$dir"/outputs_*.tar; do tar xf "$t" -C "$work"; done
status=0
for ex in ${EXAMPLES:-mixtral deepseek_v3 qwen3_30b_a3b switch mixtral_mma mixtral_kt64 mixtral_odd}; do
  # Variants of an example (mixtral_mma, ...) run its file; mixtral_odd at its own sizes.
  sizes=d_model=256,d_ff=256
  case $ex in
    mixtral_odd*) src=mixtral sizes=d_model=192,d_ff=320 ;;
    mixtral_e12) src=mixtral sizes=$sizes,n_experts=12,top_k=3 ;;
    qwen3_router) src=qwen3_30b_a3b sizes=d_model=2048,d_ff=256 ;;
    deepseek_v3_router) src=deepseek_v3 sizes=d_model=1024,d_ff=256 ;;
    deepseek_v3_glu_odd) src=deepseek_v3 sizes=d_model=192,d_ff=320 ;;
    switch_odd) src=switch sizes=d_model=202,d_ff=256,n_experts=12 ;;
    mixtral*) src=mixtral ;;
    deepseek_v3*) src=deepseek_v3 ;;
    qwen3_30b_a3b*) src=qwen3_30b_a3b ;;
    switch_aux) src=../bench/gpu/layers/switch_aux ;;
    routing_f32) src=../bench/gpu/layers/routing_f32 sizes=d_model=256 ;;
    switch*) src=switch ;;
    *) src=$ex ;;
  esac
  for t in ${TOKENS:-1 33 4096 8192}; do
    printf '%s tokens=%s: ' "$ex" "$t"
    $moec run examples/$src.moe --set $sizes --tokens $t --seed $t --check \
      --check-outputs "$work/${ex}_$t.safetensors" | grep -E "^check: output" | tr '\n' ' '
    [ "${PIPESTATUS[0]}" = 0 ] || status=1
    echo
  done
done
[ -f "$work/one_mixtral.safetensors" ] || { rm -rf "$work"; exit $status; }
printf 'mixtral all tokens on experts 0,1: '
$moec run examples/mixtral.moe --set d_model=256,d_ff=256 --weights .gpu/one_mixtral.safetensors --tokens 4096 --seed 3 \
  --check --check-outputs "$work/one_mixtral.safetensors" | grep -E "^check: output" | tr '\n' ' '; echo
printf 'switch all tokens on expert 0 (capacity drops): '
$moec run examples/switch.moe --set d_model=256,d_ff=256,n_experts=8 --weights .gpu/one_switch.safetensors --tokens 4096 \
  --seed 3 --check --check-outputs "$work/one_switch.safetensors" | grep -E "^check: output" | tr '\n' ' '; echo
rm -rf "$work"
exit $status
