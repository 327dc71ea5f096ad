#!/usr/bin/env bash
# The main job: set up, build, and compile the Mixtral example layer from its
# .moe source to moe-dialect MLIR with moec. (Running it on the CPU comes with
# the CPU backend.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
echo "== moec examples/mixtral.moe"
build/bin/moec examples/mixtral.moe
