#!/usr/bin/env bash
# Builds Rust guests of this workspace for one wasm target.
#
#   guests/build.sh wasm32-wasip2 hello echo     # wasi:http components
#   guests/build.sh wasm32-wasip1 cgi-hello      # CGI modules
#
# Output: target/guests/<target>/release/<name>.wasm (the workspace target dir).
# Adds the rust target first when this toolchain lacks it (rust-toolchain.toml
# names both wasm targets).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${1:?usage: guests/build.sh TARGET NAME...}"
shift
[ "$#" -gt 0 ] || { echo "usage: guests/build.sh TARGET NAME..." >&2; exit 2; }
cd "$here"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
    echo "adding rust target $target (named by rust-toolchain.toml)" >&2
    rustup target add "$target" >&2
fi
packages=()
for name in "$@"; do packages+=(-p "$name"); done
exec cargo build --release --quiet --target "$target" "${packages[@]}"
