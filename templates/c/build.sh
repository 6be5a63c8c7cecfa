#!/usr/bin/env bash
# Builds {{name}}.wasm (a WASI preview1 CGI module) with clang and wasi-libc.
set -euo pipefail
cd "$(dirname "$0")"
cc="${WASI_CC:-clang}"
sysroot="${WASI_SYSROOT:-/usr}"
if ! command -v "$cc" >/dev/null || [ ! -e "$sysroot/lib/wasm32-wasi/libc.a" ]; then
    echo "error: clang with wasi-libc is missing; on Debian/Ubuntu install it with:" >&2
    echo "  sudo apt-get install clang lld wasi-libc libclang-rt-dev-wasm32" >&2
    exit 1
fi
"$cc" --target=wasm32-wasi --sysroot="$sysroot" -O2 -Wall -o "{{name}}.wasm" main.c
echo "built {{name}}.wasm"
