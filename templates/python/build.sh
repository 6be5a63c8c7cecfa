#!/usr/bin/env bash
# Builds {{name}}.wasm (a wasi:http component) with componentize-py.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v componentize-py >/dev/null; then
    echo "error: componentize-py not found; install it with: pip install componentize-py==0.25.1" >&2
    exit 1
fi
version="$(grep -ho 'package wasi:http@[0-9.]*' wit/deps/http.wit | head -1 | sed 's/package wasi:http@//')"
componentize-py --quiet -d wit -w "wasi:http/proxy@$version" componentize app -o "{{name}}.wasm"
echo "built {{name}}.wasm"
