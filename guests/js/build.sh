#!/usr/bin/env bash
# Builds the JavaScript wasi:http function into a component with
# componentize-js (the Bytecode Alliance's StarlingMonkey-based tool).
#
#   build.sh [OUTPUT.wasm]          (default: ./js-hello.wasm)
#
# Needs Node.js and `npm install` run here (it installs componentize-js from
# package.json), and the WASI 0.2 WIT: a `wit/` directory next to this script,
# or WASI_HTTP_WIT pointing at one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/js-hello.wasm}")"
wit="${WASI_HTTP_WIT:-$here/wit}"
tool="$here/node_modules/.bin/componentize-js"
if ! command -v node >/dev/null; then
    echo "error: node not found; install Node.js 20 or newer" >&2
    exit 1
fi
if [ ! -x "$tool" ]; then
    echo "error: componentize-js is not installed here; run: (cd $here && npm install)" >&2
    exit 1
fi
if [ ! -d "$wit/deps" ]; then
    echo "error: no WASI WIT at \`$wit\` (expected a wit/ directory with deps/); set WASI_HTTP_WIT" >&2
    exit 1
fi
# componentize-js 0.23's engine implements wasi:http@0.2.10; WASI 0.2 patch
# versions are compatible, so the WIT is pinned to that version for the build.
pinned="$(mktemp -d)"
trap 'rm -rf "$pinned"' EXIT
cp -r "$wit/." "$pinned/"
sed -i -E 's/(@|version = )0\.2\.[0-9]+/\10.2.10/g' "$pinned"/*.wit "$pinned"/deps/*.wit
cd "$here"
"$tool" app.js --wit "$pinned" -n wasi:http/proxy@0.2.10 -o "$out" >/dev/null
