#!/usr/bin/env bash
# Builds cgi-c.wasm (a WASI preview1 CGI module) with clang and Debian's
# wasi-libc. Usage: build.sh [OUTPUT.wasm]   (default: ./cgi-c.wasm)
# Needs: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/cgi-c.wasm}"
cc="${WASI_CC:-clang}"
sysroot="${WASI_SYSROOT:-/usr}"
if ! command -v "$cc" >/dev/null; then
    echo "error: \`$cc\` not found; install it with: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32" >&2
    exit 1
fi
exec "$cc" --target=wasm32-wasi --sysroot="$sysroot" -O2 -Wall -Werror \
    -o "$out" "$here/main.c"
