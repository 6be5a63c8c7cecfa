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
for target in "${targets[@]}"; do
    echo "fuzzing $target for ${seconds}s" >&2
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=4096
done
echo "all fuzz targets ran clean" >&2
