#!/usr/bin/env bash
# Builds {{name}}.wasm (a wasi:http component) with componentize-js.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null; then
    echo "error: node not found; install Node.js 20 or newer" >&2
    exit 1
fi
if [ ! -x node_modules/.bin/componentize-js ]; then
    echo "error: componentize-js is not installed here; run: npm install" >&2
    exit 1
fi
# componentize-js 0.23's engine implements wasi:http@0.2.10; WASI 0.2 patch
# versions are compatible, so the WIT is pinned to that version for the build.
pinned="$(mktemp -d)"
trap 'rm -rf "$pinned"' EXIT
cp -r wit/. "$pinned/"
sed -i -E 's/(@|version = )0\.2\.[0-9]+/\10.2.10/g' "$pinned"/*.wit "$pinned"/deps/*.wit
node_modules/.bin/componentize-js app.js --wit "$pinned" -n wasi:http/proxy@0.2.10 -o "{{name}}.wasm" >/dev/null
echo "built {{name}}.wasm"
