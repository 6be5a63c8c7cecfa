#!/usr/bin/env bash
# Builds the Python wasi:http function into a component with componentize-py.
#
#   build.sh [OUTPUT.wasm]          (default: ./python-hello.wasm)
#
# Needs componentize-py (pip install componentize-py==0.25.1) and the WASI 0.2
# WIT: a `wit/` directory next to this script, or WASI_HTTP_WIT pointing at
# one (the test build passes the WIT that wisp's own wasmtime-wasi-http uses).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/python-hello.wasm}")"
wit="${WASI_HTTP_WIT:-$here/wit}"
if ! command -v componentize-py >/dev/null; then
    echo "error: componentize-py not found; install it with: pip install componentize-py==0.25.1" >&2
    exit 1
fi
if [ ! -d "$wit/deps" ]; then
    echo "error: no WASI WIT at \`$wit\` (expected a wit/ directory with deps/); set WASI_HTTP_WIT" >&2
    exit 1
fi
world="$(grep -ho 'package wasi:http@[0-9.]*' "$wit/deps/http.wit" | head -1 | sed 's/package wasi:http@//')"
cd "$here"
exec componentize-py --quiet -d "$wit" -w "wasi:http/proxy@$world" componentize app -o "$out"
