#!/usr/bin/env bash
# The runtime's layers (docs/runtime.md): TLS (src/tls/) sits behind the transport seam, so
# nothing in the core (src/core/, src/drivers/) reaches into it. TLS calls the core's lower
# API; any way back from the core closes a circle. Fails when:
#  - a core file includes a TLS header (src/tls/*.h, BoringSSL's openssl/*.h);
#  - a core object refers to a symbol a TLS object defines (run `ninja` first);
#  - a core file names TLS internals (its state, its table, its slots, its record sizes) other
#    than the files that start a connection on a TLS context (the only way in, tls_start.h);
#  - src/core/conn.c does not compile without BoringSSL's and src/tls's headers, or its
#    preprocessed text (its own and the headers of src/ it includes) names TLS at all.
set -euo pipefail
cd "$(dirname "$0")/.."
failed=0
fail() {
  echo "check_layers: $*" >&2
  failed=1
}
core=(src/core/*.[ch] src/drivers/*.[ch])

# 1. Includes.
for f in "${core[@]}"; do
  if grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]*/)?(tls/|openssl/|tls_conn\.h)' "$f"; then
    fail "$f includes a TLS header"
  fi
done

# 2. Symbols: what the core's objects need must not come from TLS objects.
shopt -s nullglob
tls_objs=(build/obj/tls/*.o)
core_objs=(build/obj/core/*.o build/obj/drivers/*.o)
if [ ${#tls_objs[@]} -eq 0 ] || [ ${#core_objs[@]} -eq 0 ]; then
  fail "no objects in build/obj: run ninja first"
else
  defined=$(nm --defined-only -g "${tls_objs[@]}" | awk 'NF == 3 { print $3 }' | sort -u)
  for o in "${core_objs[@]}"; do
    used=$(nm -u "$o" | awk '{ print $NF }' | sort -u)
    both=$(comm -12 <(echo "$defined") <(echo "$used"))
    [ -z "$both" ] || fail "$o calls into TLS: $(echo $both)"
  done
fi

# 3. Names: only the files that start TLS on a connection may name it, through tls_start.h.
starters='src/core/(worker|connect|server|transport|cli)\.c|src/core/tls_start\.h'
for f in "${core[@]}"; do
  [[ $f =~ ^($starters)$ ]] && continue
  if grep -nE 'rw_tls_calls|rw_tls_ops|rw_tls_table|->tls\b|RW_TLS|tls_pool|tls_log|record_room' "$f"; then
    fail "$f reaches into TLS (only the transport table may: src/core/transport.h)"
  fi
done

# 4. conn.c: compiles with no TLS header on the include path, and names no TLS.
cflags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -Ibuild/gen)
if ! gcc "${cflags[@]}" -fsyntax-only src/core/conn.c; then
  fail "src/core/conn.c does not compile without TLS headers"
fi
deps=$(gcc "${cflags[@]}" -M src/core/conn.c | tr -d '\\' | tr ' ' '\n' | grep -E 'src/tls/|openssl/' || true)
[ -z "$deps" ] && true || fail "src/core/conn.c includes $(echo $deps)"
# The preprocessed text from src/ (comments are gone; public headers are the API's, not TLS's).
named=$(gcc "${cflags[@]}" -E src/core/conn.c | awk '
  /^# [0-9]+ "/ { ours = ($3 ~ /^"src\//); next }
  ours && tolower($0) ~ /tls/ { print }')
[ -z "$named" ] || fail "src/core/conn.c names TLS: $named"

if [ $failed = 0 ]; then
  echo "check_layers: TLS is behind the transport seam: no include, call or name crosses back"
fi
exit $failed
