#!/usr/bin/env bash
# Installs the C API under PREFIX: lib/libentmin.so, lib/libentmin.a,
# include/entmin.h and lib/pkgconfig/entmin.pc, so apps build with
#   cc app.c $(pkg-config --cflags --libs entmin)
# (`pkg-config --static --libs entmin` adds what linking libentmin.a needs).
#
#   scripts/install-capi.sh PREFIX [--dev]
#
# Builds the release libraries first; --dev installs the test profile's libraries that
# `cargo build -p entmin -p entmin-capi` made (what the C API's test uses) without
# building.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=""
profile=release
while [ $# -gt 0 ]; do
    case "$1" in
        --dev) profile=debug ;;
        -*) echo "usage: scripts/install-capi.sh PREFIX [--dev]" >&2; exit 2 ;;
        *) prefix="$1" ;;
    esac
    shift
done
[ -n "$prefix" ] || { echo "usage: scripts/install-capi.sh PREFIX [--dev]" >&2; exit 2; }

[ "$profile" = release ] && cargo build --release --locked -p entmin-capi
lib=target/$profile
for f in "$lib/libentmin.so" "$lib/libentmin.a"; do
    [ -f "$f" ] || { echo "error: $f is missing (build it with cargo build -p entmin-capi)" >&2; exit 1; }
done

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
prefix=$(cd "$prefix" && pwd)
install -m 0755 "$lib/libentmin.so" "$prefix/lib/"
install -m 0644 "$lib/libentmin.a" "$prefix/lib/"
install -m 0644 capi/include/entmin.h "$prefix/include/"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# Libs.private: the static library's native dependencies, as rustc reports them on Linux.
cat >"$prefix/lib/pkgconfig/entmin.pc" <<EOF
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: entmin
Description: Entropy-minimising inference for language models (EM-INF), C interface
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lentmin
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
EOF
echo "installed entmin $version under $prefix (PKG_CONFIG_PATH=$prefix/lib/pkgconfig)"
