#!/usr/bin/env bash
# Builds {{name}}.wasm (a wasi:http component) with componentize-py. Its
# world is wasi:http/proxy plus the wasi:keyvalue imports (both in wit/deps/);
# add an `include` below to import more.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v componentize-py >/dev/null; then
    echo "error: componentize-py not found; install it with: pip install componentize-py==0.25.1" >&2
    exit 1
fi
version="$(grep -ho 'package wasi:http@[0-9.]*' wit/deps/http.wit | head -1 | sed 's/package wasi:http@//')"
# One world that includes both: componentize-py 0.25.1 panics when given
# the two as separate `-w` worlds to merge.
world="$(mktemp -d)"
trap 'rm -rf "$world"' EXIT
cat > "$world/world.wit" <<WIT
package wisp:function;

world function {
    include wasi:http/proxy@$version;
    include wasi:keyvalue/imports@0.2.0-draft;
}
WIT
componentize-py --quiet -d wit -d "$world" -w wisp:function/function componentize app -o "{{name}}.wasm"
echo "built {{name}}.wasm"
