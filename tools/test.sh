#!/usr/bin/env bash
# Every test: GoogleTest units (compiler and runtime) and the lit suite, through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
ctest --test-dir build --output-on-failure -j2
