#!/usr/bin/env bash
# Installs what building and testing wisp needs beyond the Rust toolchain:
# the wasm rust targets, and the toolchains of the non-Rust guests (C: clang +
# wasi-libc from Debian). Idempotent: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "install-deps: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Rust wasm targets (rust-toolchain.toml names them; rustup adds them to a
# fresh toolchain, but not to one already installed).
for target in wasm32-wasip1 wasm32-wasip2; do
    if ! rustup target list --installed | grep -qx "$target"; then
        say "adding rust target $target"
        rustup target add "$target"
    fi
done

# C guests: clang, lld and wasi-libc from Debian.
apt_packages=()
command -v clang >/dev/null || apt_packages+=(clang)
command -v wasm-ld >/dev/null || apt_packages+=(lld)
[ -e /usr/lib/wasm32-wasi/libc.a ] || apt_packages+=(wasi-libc)
ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || apt_packages+=(libclang-rt-dev-wasm32)
if [ "${#apt_packages[@]}" -gt 0 ]; then
    say "installing Debian packages: ${apt_packages[*]}"
    as_root apt-get update -q
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${apt_packages[@]}"
fi
say "done"
