#!/usr/bin/env bash
# Every public header (include/ringwright/) and every generated one (build/gen/*.gen.h; run
# `ninja gen_headers` first) compiles on its own as strict C11 without _GNU_SOURCE and as C++17,
# and wraps its declarations in extern "C" (ringwright.h only includes the others).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cflags=(-Wall -Wextra -Werror -pedantic -Iinclude -Ibuild/gen -fsyntax-only)
failed=0
n=0
shopt -s nullglob
gen=(build/gen/*.gen.h)
[ ${#gen[@]} -gt 0 ] || { echo "check_headers: no build/gen/*.gen.h: run ninja gen_headers" >&2; exit 1; }
for h in include/ringwright/*.h "${gen[@]}"; do
  n=$((n + 1))
  # Included from a file of its own, as a user would; gcc defines no _GNU_SOURCE in C mode.
  printf '#include "%s"\n' "$PWD/$h" >"$out/c.c"
  cp "$out/c.c" "$out/cxx.cc"
  if ! gcc -std=c11 "${cflags[@]}" "$out/c.c"; then
    echo "check_headers: $h does not compile alone as C11" >&2
    failed=1
  fi
  if ! g++ -std=c++17 "${cflags[@]}" "$out/cxx.cc"; then
    echo "check_headers: $h does not compile alone as C++17" >&2
    failed=1
  fi
  if [ "$h" != include/ringwright/ringwright.h ] && ! grep -q '^extern "C" {$' "$h"; then
    echo "check_headers: $h has no extern \"C\" block for C++" >&2
    failed=1
  fi
done
[ $failed -eq 0 ] || exit 1
echo "check_headers: $n headers compile alone as C11 and C++17"
