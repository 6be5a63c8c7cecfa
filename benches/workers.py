#!/usr/bin/env python3
"""The cost of process isolation beyond throughput (`benches/http-load.sh`
measures that): how long a function's first request waits for its worker,
what an idle worker costs in memory, and a host with 1,000 functions each
with a live worker.

    benches/workers.py                 # 1,000 functions, 200 first requests timed
    FUNCTIONS=200 benches/workers.py
    PAUSE=0.1 benches/workers.py       # seconds between first requests (0.02)
    SERVER_LOG=/tmp/wisp.log benches/workers.py  # keep the host's log
    WISP=/tmp/wisp-old benches/workers.py        # another wisp binary

Starts a release `wisp serve --isolation process` (built by
`benches/http-load.sh` or `cargo build --release -p wisp-cli`) on loopback,
deploys the `hello` component under N names, and:

1. times the first request to each of the first 200 functions, one after
   another with a 20 ms pause (the pre-forked spares refill in it): p50 and
   p99, client side and as the host times each start (asked → ready, from
   its debug log line "its guest worker started");
2. requests the rest, so every function has a live worker, and reads each
   worker's RSS and PSS (`/proc/PID/smaps_rollup`: a page shared by k
   processes counts 1/k to each) and the front's RSS.

A benchmark, not a test: CI never runs it.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WISP = os.environ.get("WISP") or os.path.join(ROOT, "target/release/wisp")
HELLO = os.path.join(ROOT, "target/guests/wasm32-wasip2/release/hello.wasm")
FUNCTIONS = int(os.environ.get("FUNCTIONS", "1000"))
TIMED = min(200, FUNCTIONS)
# Seconds between timed first requests: the spares refill in them.
PAUSE = float(os.environ.get("PAUSE", "0.02"))
PUBLIC, ADMIN = "127.0.0.1:18502", "127.0.0.1:18503"


def get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


def deploy(name, wasm):
    request = urllib.request.Request(
        f"http://{ADMIN}/v1/functions/{name}?route=/{name}", data=wasm, method="PUT"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status in (200, 201), response.status


def memory_kib(pid, field):
    path = f"/proc/{pid}/smaps_rollup" if field == "Pss" else f"/proc/{pid}/status"
    with open(path) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def host_starts(metrics):
    """The host's worker start histogram: (upper bound in seconds, count at or below it)."""
    buckets = []
    for line in metrics.splitlines():
        if line.startswith("wisp_worker_start_seconds_bucket{") and 'le="+Inf"' not in line:
            bound = float(line.split('le="')[1].split('"')[0])
            buckets.append((bound, float(line.split()[-1])))
    return sorted(buckets)


def logged_starts(path):
    """Each worker start so far, in ms, from the host's JSON debug log."""
    starts = []
    with open(path, "rb") as f:
        for line in f:
            try:
                fields = json.loads(line).get("fields", {})
            except ValueError:
                continue
            if fields.get("message") == "its guest worker started":
                starts.append(int(fields["start_us"]) / 1e3)
    return starts


def bucket_at(buckets, share):
    """The smallest bucket bound holding `share` of the starts (a bound, not a value)."""
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= share * total:
            return f"{bound * 1e3:.2f} ms"
    return "more"


def main():
    if not os.path.exists(HELLO):
        subprocess.run([os.path.join(ROOT, "guests/build.sh"), "wasm32-wasip2", "hello"], check=True)
    wasm = open(HELLO, "rb").read()
    data = tempfile.mkdtemp()
    log_path = os.environ.get("SERVER_LOG") or os.path.join(data, "wisp.log")
    log = open(log_path, "wb")
    env = dict(os.environ, RUST_LOG="info,wasmtime=warn,cranelift=warn,wisp_host::runtime::workers::pool=debug")
    server = subprocess.Popen(
        [WISP, "serve", "--isolation", "process", "--access-log", "false", "--log-format", "json",
         "--listen", PUBLIC, "--admin-listen", ADMIN, "--data-dir", os.path.join(data, "d"),
         "--max-workers", str(FUNCTIONS + 10),
         # Every worker stays up until its memory is read, however long that takes.
         "--worker-idle", "1h"],
        stdout=subprocess.DEVNULL, stderr=log, env=env,
    )
    try:
        for _ in range(200):
            try:
                get(f"http://{ADMIN}/healthz")
                break
            except OSError:
                time.sleep(0.05)
        started = time.time()
        for i in range(FUNCTIONS):
            deploy(f"f{i}", wasm)
        print(f"deployed {FUNCTIONS} functions in {time.time() - started:.1f} s", file=sys.stderr)

        firsts = []
        for i in range(TIMED):
            time.sleep(PAUSE)
            t = time.perf_counter()
            status, body = get(f"http://{PUBLIC}/f{i}")
            firsts.append((time.perf_counter() - t) * 1e3)
            assert status == 200 and body == b"Hello, world!\n", (status, body)
        timed_starts = host_starts(get(f"http://{ADMIN}/metrics")[1].decode())
        time.sleep(0.2)  # the log is written off the request path
        exact_starts = logged_starts(log_path)
        warm = []
        for i in range(TIMED):
            t = time.perf_counter()
            get(f"http://{PUBLIC}/f{i}")
            warm.append((time.perf_counter() - t) * 1e3)
        for i in range(TIMED, FUNCTIONS):
            get(f"http://{PUBLIC}/f{i}")
        metrics = get(f"http://{ADMIN}/metrics")[1].decode()
        starts = [line for line in metrics.splitlines() if line.startswith("wisp_worker_start_seconds")]
        workers = json.loads(get(f"http://{ADMIN}/v1/workers")[1])
        pids = [w["pid"] for w in workers]
        rss = [memory_kib(pid, "VmRSS") for pid in pids]
        pss = [memory_kib(pid, "Pss") for pid in pids]
        front = memory_kib(server.pid, "VmRSS")

        print(f"\nworker cost — {time.strftime('%Y-%m-%d')} — {os.cpu_count()} CPUs, {FUNCTIONS} functions\n")
        print("| measure | value |")
        print("| --- | --- |")
        print(f"| first request (worker start, from a spare), p50 / p99 | "
              f"{statistics.median(firsts):.2f} ms / {percentile(firsts, 99):.2f} ms |")
        if exact_starts:
            print(f"| worker start as the host times it (asked → ready), those {len(exact_starts)}: p50 / p99 | "
                  f"{statistics.median(exact_starts):.2f} ms / {percentile(exact_starts, 99):.2f} ms |")
        else:
            print("| worker start as the host times it (asked → ready) | not logged by this build |")
        print(f"| the same from the host's histogram: p50 / p99 at most | "
              f"{bucket_at(timed_starts, 0.50)} / {bucket_at(timed_starts, 0.99)} |")
        print(f"| a request to a live worker (same client), p50 / p99 | "
              f"{statistics.median(warm):.2f} ms / {percentile(warm, 99):.2f} ms |")
        print(f"| live workers | {len(pids)} |")
        print(f"| RSS per worker, median | {statistics.median(rss) / 1024:.1f} MiB |")
        print(f"| PSS per worker, median | {statistics.median(pss) / 1024:.1f} MiB |")
        print(f"| PSS of all workers | {sum(pss) / 1024:.0f} MiB |")
        print(f"| front process RSS | {front / 1024:.0f} MiB |")
        print("\nhost histogram (wisp_worker_start_seconds):", file=sys.stderr)
        for line in starts:
            print("  " + line, file=sys.stderr)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
