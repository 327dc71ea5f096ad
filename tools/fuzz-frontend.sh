#!/usr/bin/env bash
# Runs the frontend fuzzer (lexer + parser + Sema + IR verifier) for SECONDS
# (default 20) over the corpus in frontend/fuzz/corpus. New inputs go to a
# scratch directory, not into the repository; a crash leaves its reproducer
# in the current directory (crash-*) and fails the run.
#   tools/fuzz-frontend.sh [SECONDS] [FUZZER]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-20}"
fuzzer="${2:-$root/build/bin/moe-frontend-fuzzer}"
if [ ! -x "$fuzzer" ]; then
  echo "SKIPPED: $fuzzer was not built (needs clang and libclang-rt-22-dev)"
  exit 0
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# -jobs=1 and one worker: bounded time, reproducible CI load.
ASAN_OPTIONS=detect_leaks=0 "$fuzzer" "$scratch" "$root/frontend/fuzz/corpus" \
  -dict="$root/frontend/fuzz/moe.dict" -max_total_time="$seconds" -max_len=4096 \
  -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 | tail -15
