#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs tests/install/consumer.c
# twice: through find_package(llmk), and through pkg-config --cflags --libs llmk.
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix/usr" >/dev/null
libdir=$(dirname "$(find "$prefix/usr" -name 'libllmk.so.0' | head -n 1)")

cmake -S "$here" -B "$prefix/cmake-consumer" -DCMAKE_PREFIX_PATH="$prefix/usr" >/dev/null
cmake --build "$prefix/cmake-consumer" >/dev/null
LD_LIBRARY_PATH=$libdir "$prefix/cmake-consumer/consumer"

flags=$(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags --libs llmk)
cc -std=c99 "$here/consumer.c" $flags -o "$prefix/pkg-config-consumer"
LD_LIBRARY_PATH=$libdir "$prefix/pkg-config-consumer"
