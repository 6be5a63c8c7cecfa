#!/usr/bin/env bash
# Fuzzes the parsers that face untrusted input (fuzz/fuzz_targets), each for
# a bounded time. Needs a nightly toolchain (cargo-fuzz uses sanitizers) and
# installs cargo-fuzz from crates.io when it is missing.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60, all)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(cgi_response settings manifest route inspect)
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "error: fuzzing needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# Seeds the manifest target with a wisp.toml and a spin.toml, so it starts
# from files of both kinds rather than from nothing.
mkdir -p corpus/manifest
cp ../examples/wisp.toml corpus/manifest/seed-wisp.toml
cat > corpus/manifest/seed-spin.toml <<'SPIN'
spin_manifest_version = 2
[application]
name = "shop"
[variables]
greeting = { default = "hi" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/users/:id/..."
component = "users"
[[trigger.http]]
route = { private = true }
component = "hidden"
[component.users]
source = { url = "https://example.com/a.wasm", digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000" }
key_value_stores = ["default", "sessions"]
sqlite_databases = ["default", "orders"]
allowed_outbound_hosts = ["http://hidden.spin.internal", "http://self"]
variables = { message = "{{ greeting }}, {{ token }}" }
files = [{ source = "assets", destination = "/assets" }, "static/**"]
[component.hidden]
source = "hidden.wasm"
[component.hidden.build]
command = "cargo build"
SPIN
for target in "${targets[@]}"; do
    echo "fuzzing $target for ${seconds}s" >&2
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=4096
done
echo "all fuzz targets ran clean" >&2
