#!/usr/bin/env bash
# Builds {{name}}.wasm (a wasi:http component) from this directory.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v cargo >/dev/null; then
    echo "error: cargo not found; install Rust from https://rustup.rs" >&2
    exit 1
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "error: the wasm32-wasip2 target is missing; install it with: rustup target add wasm32-wasip2" >&2
    exit 1
fi
cargo build --release --target wasm32-wasip2 --quiet
cp "target/wasm32-wasip2/release/{{name}}.wasm" "{{name}}.wasm"
echo "built {{name}}.wasm"
