#!/usr/bin/env bash
# What someone adopting ringwright does: ./configure --prefix, ninja install (and again under
# DESTDIR), then build examples/starter outside the tree with nothing but PATH and
# PKG_CONFIG_PATH pointing at the prefix, run it and talk to it. Also: the core library links
# without BoringSSL and ringwright-tls adds it; the installed ninja rules build the starter too.
# It configures a copy of the tree, so the checkout's build.ninja is left as it is.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
pid=''
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "test_install: $*" >&2
  exit 1
}
if [ ! -x "$root/configure" ] || [ ! -d "$root/include/ringwright" ]; then
  fail "$root is not a ringwright tree"
fi
prefix=$tmp/prefix

echo "-- configure and install into $prefix"
mkdir "$tmp/src"
tar -C "$root" --exclude=./build --exclude=./.git --exclude=./tests/fuzz/corpus --exclude='./.ninja_*' \
  -cf - . | tar -C "$tmp/src" -xf -
(cd "$tmp/src" && ./configure --prefix="$prefix" && ninja install) >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "ninja install failed"; }
(cd "$tmp/src" && DESTDIR="$tmp/stage" ninja install) >>"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "DESTDIR=... ninja install failed"; }
diff -r "$prefix" "$tmp/stage$prefix" || fail "DESTDIR staged other files than the prefix got"
for f in bin/rwgen lib/libringwright.a lib/libringwright-tls.a include/ringwright/ringwright.h \
  include/ringwright/tls.h lib/pkgconfig/ringwright.pc lib/pkgconfig/ringwright-tls.pc \
  share/ringwright/rwgen.mk share/ringwright/rwgen.ninja share/ringwright/spec/memcache.rw \
  share/man/man1/rwgen.1 share/man/man5/ringwright-spec.5; do
  [ -f "$prefix/$f" ] || fail "$f not installed"
done
[ -x "$prefix/bin/rwgen" ] || fail "rwgen not executable"
for h in "$root"/include/ringwright/*.h; do
  cmp -s "$h" "$prefix/include/ringwright/${h##*/}" || fail "${h##*/} installed differently"
done
# The core library holds no TLS: no object of src/tls, nothing of BoringSSL's left undefined.
if ar t "$prefix/lib/libringwright.a" | grep -E '^(tls|record)\.o$'; then
  fail "libringwright.a holds TLS objects"
fi
if nm -u "$prefix/lib/libringwright.a" | grep -E ' (SSL_|EVP_|BIO_|ERR_)'; then
  fail "libringwright.a needs BoringSSL"
fi

# From here on only the installed prefix, through PATH and PKG_CONFIG_PATH.
user_env=(env -i HOME="$tmp" PATH="$prefix/bin:/usr/local/bin:/usr/bin:/bin"
  PKG_CONFIG_PATH="$prefix/lib/pkgconfig")
libs=$("${user_env[@]}" pkg-config --libs ringwright)
libs=${libs% } # (pkg-config ends it with a blank)
[ "$libs" = "-L$prefix/lib -lringwright -luring -lpthread" ] || fail "pkg-config --libs ringwright: $libs"
# (Outputs are captured, not piped to grep -q: under pipefail its early exit can fail the pipe.)
libs=$("${user_env[@]}" pkg-config --libs ringwright-tls)
[[ "$libs" =~ -lringwright-tls\ .*-lssl\ -lcrypto\ .*-lringwright\  ]] || fail "pkg-config --libs ringwright-tls: $libs"

echo "-- build examples/starter outside the tree with make"
cp -r "$root/examples/starter" "$tmp/starter"
rm -f "$tmp/starter"/counterd "$tmp/starter"/*.o "$tmp/starter"/*.gen.*
(cd "$tmp/starter" && "${user_env[@]}" make) >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; fail "make failed"; }
deps=$(ldd "$tmp/starter/counterd")
if [[ "$deps" == *libssl* || "$deps" == *libcrypto* ]]; then
  fail "counterd, which uses no TLS, links BoringSSL"
fi

echo "-- run it"
"$tmp/starter/counterd" --listen 127.0.0.1:0 --workers 2 ${RW_BACKEND:+--backend "$RW_BACKEND"} \
  2>"$tmp/counterd.log" &
pid=$!
port=''
for _ in $(seq 100); do
  port=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$tmp/counterd.log" | head -1 | cut -d: -f2 || true)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/counterd.log"; fail "counterd did not report its port"; }
# One connection's commands, then a second: the counter is shared. quit closes, so reading to
# the end of the stream is the whole reply.
talk() {
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf '%b' "$1" >&3
  timeout 10 cat <&3
  exec 3<&-
}
got=$(talk 'incr 5\r\nincr -2\nget\r\nincr x\r\nincr 99999999999999999999\r\nquit\r\n' | od -c)
want=$(printf '5\r\n3\r\n3\r\nerror: unknown command\r\nerror: not a 64-bit number\r\nbye\r\n' | od -c)
[ "$got" = "$want" ] || fail "first connection: got
$got
want
$want"
got=$(talk 'incr 10\r\nquit\r\n' | od -c)
want=$(printf '13\r\nbye\r\n' | od -c)
[ "$got" = "$want" ] || fail "second connection: got $got, want $want"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=''
[ "$rc" -eq 0 ] || { cat "$tmp/counterd.log"; fail "counterd exited $rc after SIGTERM"; }

echo "-- the installed ninja rules build it too"
mkdir "$tmp/ninja"
cp "$root/examples/starter/counter.rw" "$root/examples/starter/counter.c" "$tmp/ninja/"
rules=$("${user_env[@]}" pkg-config --variable=rwgen_ninja ringwright)
cat >"$tmp/ninja/build.ninja" <<NINJA
include $rules
cflags = -std=c11 -Wall -Wextra -Werror -Igen $("${user_env[@]}" pkg-config --cflags ringwright)
libs = $("${user_env[@]}" pkg-config --libs ringwright)
rule cc
  command = cc \$cflags -c \$in -o \$out
rule link
  command = cc -o \$out \$in \$libs
build gen/counter.gen.h gen/counter.gen.re: rwgen counter.rw
  rwgen_outdir = gen
build gen/counter.gen.c: rwgen_re2c gen/counter.gen.re
build counter.o: cc counter.c || gen/counter.gen.h
build counter.gen.o: cc gen/counter.gen.c
build counterd: link counter.o counter.gen.o
NINJA
(cd "$tmp/ninja" && "${user_env[@]}" ninja) >"$tmp/ninja.log" 2>&1 || { cat "$tmp/ninja.log"; fail "ninja failed"; }
"$tmp/ninja/counterd" --help >/dev/null || fail "counterd --help failed"

echo "-- a TLS program with pkg-config ringwright-tls"
cat >"$tmp/tls.c" <<'C'
#include <ringwright/tls.h>
int main(void)
{
  rw_tls *t;
  return rw_tls_client_new("/nonexistent/ca.pem", NULL, &t) == 0; /* refused: the CA is missing */
}
C
# shellcheck disable=SC2016 # (expanded by the inner shell, in the user's environment)
(cd "$tmp" && "${user_env[@]}" sh -c 'cc -std=c11 -Wall -Werror -o tlsprog tls.c $(pkg-config --cflags --libs ringwright-tls)') ||
  fail "cannot build a program with ringwright-tls"
[[ "$(ldd "$tmp/tlsprog")" == *libssl* ]] || fail "ringwright-tls does not link BoringSSL"
"$tmp/tlsprog" 2>/dev/null || fail "the TLS program did not run"
echo "test_install: ok"
