#!/usr/bin/env bash
# The main job: set up, build, compile an example layer (Mixtral's block, at a
# CPU-sized width) from its .moe source into an artifact, and run it on the CPU
# with random weights, checking the result against the float64 reference
# evaluator and timing it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
set -x
build/bin/moec build examples/mixtral.moe --set d_model=1024,d_ff=3584 -o build/mixtral.moeb
build/bin/moec run build/mixtral.moeb --tokens 512 --bench --iterations 5
build/bin/moec run examples/mixtral.moe --set d_model=256,d_ff=512 --tokens 64 --check
