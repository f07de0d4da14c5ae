#!/bin/sh
# `ninja install`: installs what users of ringwright build with, under $DESTDIR when it is set.
# build.ninja runs it with the directories ./configure chose, in the environment: prefix bindir
# libdir includedir datadir mandir pkgconfigdir version boringssl_include boringssl_libdir.
set -eu
: "${prefix:?}" "${bindir:?}" "${libdir:?}" "${includedir:?}" "${datadir:?}" "${mandir:?}"
: "${pkgconfigdir:?}" "${version:?}" "${boringssl_include:?}" "${boringssl_libdir:?}"
cd "$(dirname "$0")/.."
d=${DESTDIR:-}

dirs="$bindir $libdir $includedir/ringwright $pkgconfigdir $datadir/ringwright/spec $mandir/man1 $mandir/man5"
for dir in $dirs; do install -d "$d$dir"; done
install -m 755 build/bin/rwgen "$d$bindir/rwgen"
install -m 644 build/lib/libringwright.a build/lib/libringwright-tls.a "$d$libdir/"
install -m 644 include/ringwright/*.h "$d$includedir/ringwright/"
install -m 644 dist/rwgen.mk dist/rwgen.ninja "$d$datadir/ringwright/"
install -m 644 spec/*.rw "$d$datadir/ringwright/spec/"
install -m 644 man/rwgen.1 "$d$mandir/man1/"
install -m 644 man/ringwright-spec.5 "$d$mandir/man5/"
# The .pc files name the directories as configured: DESTDIR is only where they are staged.
for pc in ringwright ringwright-tls; do
  sed -e "s|@prefix@|$prefix|g" -e "s|@bindir@|$bindir|g" -e "s|@libdir@|$libdir|g" \
    -e "s|@includedir@|$includedir|g" -e "s|@datadir@|$datadir|g" -e "s|@version@|$version|g" \
    -e "s|@boringssl_include@|$boringssl_include|g" -e "s|@boringssl_libdir@|$boringssl_libdir|g" \
    "dist/$pc.pc.in" >"$d$pkgconfigdir/$pc.pc.tmp"
  chmod 644 "$d$pkgconfigdir/$pc.pc.tmp"
  mv "$d$pkgconfigdir/$pc.pc.tmp" "$d$pkgconfigdir/$pc.pc"
done
echo "installed ringwright $version into $d$prefix"
