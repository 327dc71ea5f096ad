#!/usr/bin/env bash
# Installs what is missing (apt), then configures and builds every tool into build/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup-debian.sh
[ -f build/build.ninja ] || cmake --preset default >/dev/null
cmake --build --preset default
