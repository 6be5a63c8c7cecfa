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
# Cargo's own progress shows: the first build fetches and compiles the
# dependencies (a minute or two); later ones take seconds. Cargo.lock pins
# the dependencies the template was tested with; extra arguments go to cargo
# (`./build.sh --locked` refuses to change it).
echo "building {{name}}.wasm with cargo (the first build compiles dependencies: a minute or two)"
cargo build --release --target wasm32-wasip2 "$@"
cp "target/wasm32-wasip2/release/{{name}}.wasm" "{{name}}.wasm"
echo "built {{name}}.wasm"
