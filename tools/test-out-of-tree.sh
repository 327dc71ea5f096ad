#!/usr/bin/env bash
# Installs moec from BUILD into a scratch prefix, then configures, builds and
# runs examples/out-of-tree against it with find_package(moec): the C++ API
# as a user outside the tree sees it.
#   tools/test-out-of-tree.sh BUILD
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "$1" && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
cmake -S "$root/examples/out-of-tree" -B "$scratch/app" -G Ninja -DCMAKE_PREFIX_PATH="$scratch/prefix" \
  -DCMAKE_CXX_COMPILER="${CXX:-g++}" >/dev/null
cmake --build "$scratch/app" >/dev/null
"$scratch/prefix/bin/moec" build "$root/examples/switch.moe" --set d_model=16,d_ff=32 -o "$scratch/switch.moeb" >/dev/null
"$scratch/app/moe-app" "$scratch/switch.moeb"
