#!/usr/bin/env bash
# The main job: build moe-opt and run the default pipeline on the Mixtral example layer.
# (The .moe frontend, `moec` and execution on the CPU come with the next issues.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
echo "== moe-opt examples/mixtral_moe.mlir --moe-default-pipeline"
build/bin/moe-opt examples/mixtral_moe.mlir --moe-default-pipeline
