#!/bin/sh
# Installs the C API library: libusysv.so and libusysv.a in PREFIX/lib,
# usysv.h in PREFIX/include, usysv.pc in PREFIX/lib/pkgconfig. After it,
#   cc prog.c $(pkg-config --cflags --libs usysv)
# builds a program against usysv (set PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
# for a prefix pkg-config does not search, and LD_LIBRARY_PATH=PREFIX/lib
# to run it from a prefix the loader does not search).
#
# usage: ffi/capi/install.sh [PREFIX]          (default /usr/local)
# Builds the release libraries first; with USYSV_LIB_DIR set, copies the
# libraries from there instead of building.
set -eu
prefix=${1:-/usr/local}
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${USYSV_LIB_DIR:-}" ]; then
    (cd "$root" && cargo build --release --quiet -p usysv-capi)
    USYSV_LIB_DIR=$root/target/release
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
prefix=$(cd "$prefix" && pwd)   # absolute, as usysv.pc needs it
install -m 755 "$USYSV_LIB_DIR/libusysv.so" "$prefix/lib/libusysv.so"
install -m 644 "$USYSV_LIB_DIR/libusysv.a" "$prefix/lib/libusysv.a"
install -m 644 "$root/include/usysv.h" "$prefix/include/usysv.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" \
    "$root/ffi/capi/usysv.pc.in" > "$prefix/lib/pkgconfig/usysv.pc"
echo "installed libusysv $version in $prefix"
