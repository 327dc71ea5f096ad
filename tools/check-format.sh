#!/usr/bin/env bash
# Checks that every tracked C/C++ file is formatted as .clang-format says
# (clang-format 22); prints the files that are not and how to fix them.
#   tools/check-format.sh            check
#   tools/check-format.sh --fix      reformat in place
set -euo pipefail
cd "$(dirname "$0")/.."
format=$(command -v clang-format-22 || command -v /usr/lib/llvm-22/bin/clang-format || true)
if [[ -z "$format" ]]; then
  echo "check-format: clang-format 22 not found (apt-get install clang-format-22)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cc' '*.c')
if [[ "${1:-}" == "--fix" ]]; then
  "$format" -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$format" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  printf 'check-format: not formatted as .clang-format says:\n' >&2
  printf '  %s\n' "${bad[@]}" >&2
  printf 'fix with: tools/check-format.sh --fix\n' >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
