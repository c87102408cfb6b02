#!/usr/bin/env bash
# The C++ sources follow .clang-format (issue #10 item 7): clang-format --dry-run
# over every tracked .cpp/.hpp (the C peers of bench/peers are left as their
# authors wrote them). Fails listing the files that differ; fix with
#   clang-format -i $(git ls-files '*.cpp' '*.hpp' | grep -v '^bench/peers/')
set -euo pipefail
root=${1:?usage: format_check.sh SOURCE_DIR}
cd "$root"
fmt=$(command -v clang-format-14 || command -v clang-format || true)
[ -n "$fmt" ] || { echo "format_check: clang-format is not installed (scripts/deps.sh installs it)"; exit 1; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cpp' '*.hpp' | grep -v '^bench/peers/')
else
  mapfile -t files < <(find include src tools tests bench examples -name '*.cpp' -o -name '*.hpp' | grep -v '^bench/peers/')
fi
bad=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  "$fmt" --style=file "$f" | cmp -s - "$f" || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "format_check: ${#bad[@]} file(s) differ from .clang-format:"; printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "format_check: ${#files[@]} files follow .clang-format"
