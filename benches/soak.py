#!/usr/bin/env python3
"""The soak test's load driver (stdlib only; `benches/soak.sh` starts the host,
deploys the functions and runs this).

Drives one running `wisp serve` for a bounded time with good traffic beside
hostile traffic, deploys and rolls back during it, samples the host's RSS, and
prints a report. Functions it expects:

| function | route | good path | hostile paths |
| --- | --- | --- | --- |
| `hello` (component) | `/hello` | `GET /hello` → 200 `Hello, world!` | |
| `cgi` (`hostile-cgi`) | `/cgi` | `GET /cgi/big?kib=1` → 200, 1 KiB | `/cgi/big?kib=51200` to slow readers; POSTs trickling 1 B/s |
| `hostile` (component, `--timeout 1s --memory 64MiB`) | `/hostile` | | `/hostile/loop`, `/hostile/alloc` |

plus connections that send only the HTTP/2 preface. Every good request is
timed and checked (status 200 and the exact body); any other answer, a
connection failure or a timeout counts as a failure. Exit status 1 when a good
request failed, a deploy or rollback failed or was not served, or the host
died; 0 otherwise.
"""

import argparse
import asyncio
import collections
import os
import re
import socket
import statistics
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# A slow reader asks for 50 MiB and holds the socket this long without reading.
SLOW_READER_HOLD_S = 20
SLOW_READER_PATH = "/cgi/big?kib=51200"
SLOW_BODY_LENGTH = 100_000
# Each action's check: the new version must be served within this window.
ACTION_CHECK_S = 5
# Requests started this long after an action may still reach the old version.
ACTION_GRACE_S = 0.5
FAILURE_SAMPLES = 10
# A good request slower than this is listed (it still counts as ok).
SLOW_GOOD_S = 0.5
# The driver's event loop running this late is reported.
LAG_REPORTED_S = 0.2


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--public", required=True, help="HOST:PORT of the public listener")
    p.add_argument("--admin", required=True, help="admin API URL")
    p.add_argument("--pid", type=int, required=True, help="pid of `wisp serve`")
    p.add_argument("--wisp", required=True, help="the `wisp` binary, for deploy and rollback")
    p.add_argument("--hello-wasm", required=True)
    p.add_argument("--cgi-wasm", required=True)
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--good-concurrency", type=int, default=8)
    p.add_argument("--good-timeout", type=float, default=10)
    p.add_argument("--hostile-sockets", type=int, default=10,
                   help="concurrent sockets of each kind: slow readers, slow bodies, idle HTTP/2")
    p.add_argument("--deploy-interval", type=float, default=30)
    p.add_argument("--rss-interval", type=float, default=10)
    return p.parse_args()


def describe(error):
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text}"[:100] if text else name


async def read_response(reader):
    """One HTTP/1.1 response: (status, headers, body, reusable)."""
    line = await reader.readline()
    if not line:
        raise EOFError("connection closed before the status line")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"bad status line {line[:60]!r}")
    status = int(parts[1])
    headers = {}
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError("connection closed in the headers")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    reusable = headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise EOFError("connection closed in a chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
        reusable = False
    return status, headers, body, reusable


def hello_body_ok(body):
    return body.strip() == b"Hello, world!"


def cgi_body_ok(body):
    return body == b"y" * 1024


GOOD_PATHS = [
    ("hello", "/hello", hello_body_ok),
    ("cgi", "/cgi/big?kib=1", cgi_body_ok),
]


class Soak:
    def __init__(self, args):
        self.args = args
        self.host, port = args.public.rsplit(":", 1)
        self.port = int(port)
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.duration
        self.good_ok = collections.Counter()  # path -> count
        self.good_failures = collections.Counter()  # reason -> count
        self.failure_samples = []
        self.latencies = []
        self.slow_samples = []  # (t, path, seconds), the first FAILURE_SAMPLES
        # function -> version -> [requests served, start of the latest one]
        self.served = {name: {} for name, _, _ in GOOD_PATHS}
        self.hostile = collections.defaultdict(collections.Counter)  # kind -> outcome -> n
        self.hostile_seconds = collections.defaultdict(list)  # kind -> time until the host acted
        self.actions = []
        self.samples = []  # (t, rss KiB, fds, threads, good ok total, good failed total)
        self.host_died = False
        self.in_flight = collections.Counter()  # hostile kind -> requests open now
        self.lags = []  # (t, seconds) the driver's own event loop ran late

    # -- time ---------------------------------------------------------------

    def now(self):
        return time.monotonic() - self.t0

    def remaining(self):
        return self.deadline - time.monotonic()

    async def stagger(self, index, count, period):
        await asyncio.sleep(max(0.0, min(index * period / count, self.remaining())))

    def good_totals(self):
        return sum(self.good_ok.values()), sum(self.good_failures.values())

    # -- good traffic -------------------------------------------------------

    def fail(self, start, path, reason):
        self.good_failures[reason] += 1
        if len(self.failure_samples) < FAILURE_SAMPLES:
            self.failure_samples.append((start - self.t0, path, reason))

    async def exchange(self, conn, path):
        reader, writer = conn
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.args.public}\r\n\r\n".encode())
        await writer.drain()
        return await read_response(reader)

    async def good_worker(self, index):
        conn = None
        turn = index
        while time.monotonic() < self.deadline:
            function, path, body_ok = GOOD_PATHS[turn % len(GOOD_PATHS)]
            turn += 1
            start = time.monotonic()
            try:
                if conn is None:
                    conn = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port), self.args.good_timeout)
                status, headers, body, reusable = await asyncio.wait_for(
                    self.exchange(conn, path), self.args.good_timeout)
            except Exception as error:  # noqa: BLE001 — every failure is a finding
                self.fail(start, path, describe(error))
                if conn is not None:
                    conn[1].close()
                    conn = None
                await asyncio.sleep(0.1)  # no hot loop against a host that is down
                continue
            if status != 200:
                self.fail(start, path, f"status {status}: {body[:80]!r}")
            elif not body_ok(body):
                self.fail(start, path, f"unexpected body ({len(body)} bytes): {body[:40]!r}")
            else:
                self.good_ok[path] += 1
                took = time.monotonic() - start
                self.latencies.append(took)
                if took > SLOW_GOOD_S and len(self.slow_samples) < FAILURE_SAMPLES:
                    self.slow_samples.append((start - self.t0, path, took))
                version = headers.get("x-wisp-version", "?")
                seen = self.served[function].setdefault(version, [0, 0.0])
                seen[0] += 1
                seen[1] = max(seen[1], start)
            if not reusable:
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    # -- hostile traffic ----------------------------------------------------

    async def repeat_request(self, kind, path, pause):
        """One request at a time on a fresh connection, `pause` between."""
        while self.remaining() > 2:
            start = time.monotonic()
            writer = None
            self.in_flight[kind] += 1
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), 5)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.args.public}\r\n"
                             "Connection: close\r\n\r\n".encode())
                status, _, _, _ = await asyncio.wait_for(read_response(reader), 30)
                outcome = f"status {status}"
            except Exception as error:  # noqa: BLE001
                outcome = describe(error)
            finally:
                self.in_flight[kind] -= 1
                if writer is not None:
                    writer.close()
            self.hostile[kind][outcome] += 1
            self.hostile_seconds[kind].append(time.monotonic() - start)
            await asyncio.sleep(min(pause, max(0.0, self.remaining())))

    async def slow_reader(self, index):
        """Asks for 50 MiB, never reads, holds the socket, then sees whether
        the host has closed it."""
        loop = asyncio.get_running_loop()
        await self.stagger(index, self.args.hostile_sockets, SLOW_READER_HOLD_S)
        request = f"GET {SLOW_READER_PATH} HTTP/1.1\r\nHost: {self.args.public}\r\n\r\n".encode()
        while self.remaining() > SLOW_READER_HOLD_S + 3:
            sock = socket.socket()
            try:
                # A small window, so the host meets backpressure at once.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.setblocking(False)
                await asyncio.wait_for(loop.sock_connect(sock, (self.host, self.port)), 5)
                await loop.sock_sendall(sock, request)
                await asyncio.sleep(SLOW_READER_HOLD_S)
                outcome = await self.drain(sock)
            except Exception as error:  # noqa: BLE001
                outcome = describe(error)
            finally:
                sock.close()
            self.hostile["slow reader"][outcome] += 1

    async def drain(self, sock):
        loop = asyncio.get_running_loop()
        end = time.monotonic() + 2
        received = 0
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return f"still open after {SLOW_READER_HOLD_S} s (drained {received >> 20} MiB in 2 s)"
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), left)
            except TimeoutError:
                return f"still open after {SLOW_READER_HOLD_S} s, sending nothing"
            except ConnectionResetError:
                return f"reset by host within {SLOW_READER_HOLD_S} s"
            if not data:
                return f"closed by host within {SLOW_READER_HOLD_S} s"
            received += len(data)

    async def slow_body(self, index):
        """POSTs a 100 000-byte body to the CGI route at 1 byte per second
        until the host answers."""
        await self.stagger(index, self.args.hostile_sockets, 5)
        head = (f"POST /cgi/big?kib=1 HTTP/1.1\r\nHost: {self.args.public}\r\n"
                f"Content-Length: {SLOW_BODY_LENGTH}\r\n\r\n").encode()
        while self.remaining() > 10:
            start = time.monotonic()
            writer = None
            answer = None
            outcome = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), 5)
                writer.write(head)
                answer = asyncio.ensure_future(reader.readline())
                sent = 0
                while not answer.done() and sent < SLOW_BODY_LENGTH and self.remaining() > 0:
                    writer.write(b"x")
                    await writer.drain()
                    sent += 1
                    await asyncio.wait([answer], timeout=1)
            except Exception as error:  # noqa: BLE001
                outcome = describe(error)
            finally:
                if writer is not None:
                    writer.close()
            if answer is not None and answer.done() and not answer.cancelled() \
                    and answer.exception() is None:
                line = answer.result()
                outcome = f"status {line.split()[1].decode()}" if line else "closed without an answer"
                self.hostile_seconds["slow body"].append(time.monotonic() - start)
            elif answer is not None and not answer.done():
                answer.cancel()
                outcome = outcome or "no answer by the end of the soak"
            self.hostile["slow body"][outcome or "no answer"] += 1

    async def idle_h2(self, index):
        """Sends the HTTP/2 preface, then nothing, until the host closes."""
        await self.stagger(index, self.args.hostile_sockets, 10)
        while self.remaining() > 15:
            start = time.monotonic()
            writer = None
            outcome = "open at the end of the soak"
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), 5)
                writer.write(PREFACE)
                await writer.drain()
                while True:
                    if not await asyncio.wait_for(reader.read(65536), max(0.0, self.remaining())):
                        outcome = "closed by host"
                        self.hostile_seconds["idle h2"].append(time.monotonic() - start)
                        break
            except TimeoutError:
                pass
            except ConnectionResetError:
                outcome = "reset by host"
                self.hostile_seconds["idle h2"].append(time.monotonic() - start)
            except Exception as error:  # noqa: BLE001
                outcome = describe(error)
            finally:
                if writer is not None:
                    writer.close()
            self.hostile["idle h2"][outcome] += 1

    # -- deploys and rollbacks ----------------------------------------------

    async def wisp(self, *argv):
        proc = await asyncio.create_subprocess_exec(
            self.args.wisp, *argv, "--admin", self.args.admin,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode, out.decode(errors="replace").strip()

    async def act(self, round_number):
        """Odd rounds deploy a new version of both good functions (a new
        `--env`), even rounds roll both back. Returns {function: expected
        version} or an error string."""
        expected = {}
        for function, wasm, route in (("hello", self.args.hello_wasm, "/hello"),
                                      ("cgi", self.args.cgi_wasm, "/cgi")):
            if round_number % 2:
                code, out = await self.wisp("deploy", function, wasm, "--route", route,
                                            "--env", f"SOAK_ROUND={round_number}")
                match = re.search(rf"deployed {function} v(\d+)", out)
            else:
                code, out = await self.wisp("rollback", function)
                match = re.search(r"rolled back to v(\d+)=100%", out)
            if code != 0 or not match:
                return f"{function}: exit {code}: {out[:200]}"
            expected[function] = match.group(1)
        return expected

    async def admin_loop(self):
        interval = self.args.deploy_interval
        at = self.t0 + interval / 2
        round_number = 0
        while at + ACTION_CHECK_S < self.deadline:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            round_number += 1
            kind = "deploy" if round_number % 2 else "rollback"
            started = self.now()
            ok_before, failed_before = self.good_totals()
            expected = await self.act(round_number)
            done = time.monotonic()
            row = {"t": started, "kind": kind, "took": done - self.t0 - started}
            if isinstance(expected, str):
                row["error"] = expected
            else:
                row["expected"] = expected
                row["served_after"] = {}
                while time.monotonic() < done + ACTION_CHECK_S:
                    for function, version in expected.items():
                        seen = self.served[function].get(version)
                        if function not in row["served_after"] and seen and seen[1] >= done:
                            row["served_after"][function] = time.monotonic() - done
                    await asyncio.sleep(0.05)
                row["stale"] = {
                    function: sorted(v for v, (_, last) in self.served[function].items()
                                     if v != version and last > done + ACTION_GRACE_S)
                    for function, version in expected.items()
                }
            ok_after, failed_after = self.good_totals()
            row["good_ok"] = ok_after - ok_before
            row["good_failed"] = failed_after - failed_before
            self.actions.append(row)
            at += interval

    # -- host memory --------------------------------------------------------

    def sample(self):
        pid = self.args.pid
        try:
            with open(f"/proc/{pid}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
            rss_kib = int(fields["VmRSS"].split()[0])
            threads = int(fields["Threads"])
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, KeyError, ValueError):
            self.host_died = True
            return
        # An /alloc in flight holds up to 64 MiB of guest memory for ~0.1 s.
        alloc = self.in_flight["alloc"] > 0
        self.samples.append((self.now(), rss_kib, fds, threads, *self.good_totals(), alloc))

    async def sample_loop(self):
        at = self.t0 + self.args.rss_interval
        while at <= self.deadline + 0.5:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            self.sample()
            at += self.args.rss_interval

    async def lag_loop(self):
        """Records when this driver's own event loop runs late: a good
        request that is slow at the same moment says nothing about the host."""
        while self.remaining() > 0:
            before = time.monotonic()
            await asyncio.sleep(0.05)
            late = time.monotonic() - before - 0.05
            if late > LAG_REPORTED_S:
                self.lags.append((before - self.t0, late))

    # -- run and report -----------------------------------------------------

    async def run(self):
        n = self.args.hostile_sockets
        self.sample()  # before any load
        tasks = [self.good_worker(i) for i in range(self.args.good_concurrency)]
        tasks += [self.repeat_request("loop", "/hostile/loop", 2),
                  self.repeat_request("alloc", "/hostile/alloc", 1)]
        tasks += [self.slow_reader(i) for i in range(n)]
        tasks += [self.slow_body(i) for i in range(n)]
        tasks += [self.idle_h2(i) for i in range(n)]
        tasks += [self.admin_loop(), self.sample_loop(), self.lag_loop()]
        running = [asyncio.ensure_future(t) for t in tasks]
        # Every loop stops by itself at the deadline; this bounds the stragglers.
        _, pending = await asyncio.wait(running, timeout=self.args.duration + 60)
        for task in pending:
            task.cancel()
        for task in running:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()
        if pending:
            print(f"soak: {len(pending)} tasks still running 60 s past the end, cancelled",
                  file=sys.stderr)
        await asyncio.sleep(2)
        self.sample()

    def report(self):
        ok, failed = self.good_totals()
        problems = []
        print(f"\nsoak — {self.args.duration:.0f} s, {self.args.good_concurrency} good "
              f"connections, {self.args.hostile_sockets} hostile sockets of each kind; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end "
              "(above the CPU count, latencies say more about the machine than the host)\n")

        print(f"good requests: {ok + failed:,} sent, {ok:,} ok, {failed} failed  "
              f"({', '.join(f'{p} {n:,}' for p, n in sorted(self.good_ok.items()))})")
        if self.latencies:
            lat = sorted(self.latencies)
            pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3  # noqa: E731
            slow = sum(1 for x in lat if x > SLOW_GOOD_S)
            print(f"  latency p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, "
                  f"max {lat[-1] * 1e3:.0f} ms; {slow} over {SLOW_GOOD_S * 1e3:.0f} ms")
            for t, path, took in self.slow_samples:
                print(f"  slow: t={t:.1f} s {path} took {took * 1e3:.0f} ms")
        for reason, n in self.good_failures.most_common():
            print(f"  failed {n}×: {reason}")
        for t, path, reason in self.failure_samples:
            print(f"  failure: t={t:.1f} s {path}: {reason}")
        if failed:
            problems.append(f"{failed} good requests failed")
        for function, versions in self.served.items():
            listed = ", ".join(f"v{v} {n:,}" for v, (n, _) in
                               sorted(versions.items(), key=lambda kv: kv[0].zfill(6)))
            print(f"  {function} served by: {listed}")

        print("\nhostile traffic (outcome × count; seconds until the host acted):")
        for kind in ("loop", "alloc", "slow reader", "slow body", "idle h2"):
            outcomes = ", ".join(f"{o} ×{n}" for o, n in self.hostile[kind].most_common()) or "none"
            seconds = self.hostile_seconds.get(kind)
            timing = (f"; {min(seconds):.1f}/{statistics.median(seconds):.1f}/{max(seconds):.1f} s "
                      "min/median/max" if seconds else "")
            print(f"  {kind:12} {outcomes}{timing}")

        print("\ndeploys and rollbacks (hello and cgi together):")
        for row in self.actions:
            head = f"  t={row['t']:5.1f} s {row['kind']:8} ({row['took']:.1f} s)"
            tail = (f"good in the next {ACTION_CHECK_S} s: {row['good_ok']:,} ok, "
                    f"{row['good_failed']} failed")
            if "error" in row:
                print(f"{head} FAILED: {row['error']}; {tail}")
                problems.append(f"{row['kind']} at t={row['t']:.0f} s failed")
                continue
            parts = []
            for function, version in row["expected"].items():
                after = row["served_after"].get(function)
                stale = row["stale"][function]
                if after is None:
                    parts.append(f"{function} v{version} NOT SERVED within {ACTION_CHECK_S} s")
                    problems.append(f"{function} v{version} not served after the {row['kind']} "
                                    f"at t={row['t']:.0f} s")
                else:
                    parts.append(f"{function} v{version} served after {after * 1e3:.0f} ms")
                if stale:
                    parts.append(f"{function} still served {', '.join('v' + v for v in stale)}")
                    problems.append(f"{function} served an old version after the {row['kind']} "
                                    f"at t={row['t']:.0f} s")
            print(f"{head} {'; '.join(parts)}; {tail}")
        if not self.actions:
            print("  none (the soak is shorter than half a deploy interval plus "
                  f"{ACTION_CHECK_S} s)")

        print(f"\nhost RSS (VmRSS of pid {self.args.pid}, every {self.args.rss_interval:.0f} s; "
              "the last row is 2 s after the load stopped):\n")
        print("| t (s) | RSS MiB | open fds | threads | good req/s | good failed |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        previous = None
        for t, rss, fds, threads, good, bad, alloc in self.samples:
            rate = "—"
            if previous and previous[0] < self.args.duration:
                rate = f"{(good - previous[4]) / (t - previous[0]):,.0f}"
            new_bad = bad - previous[5] if previous else bad
            mark = " *" if alloc else ""
            print(f"| {t:.0f} | {rss / 1024:.1f}{mark} | {fds} | {threads} | {rate} | {new_bad} |")
            previous = (t, rss, fds, threads, good, bad)
        if self.samples:
            if any(s[-1] for s in self.samples):
                print("\n* an /alloc request was in flight: up to 64 MiB of guest memory, "
                      "returned when it ends")
            rss = [s[1] / 1024 for s in self.samples]
            quiet = [s[1] / 1024 for s in self.samples if not s[-1]] or rss
            print(f"\nRSS first {rss[0]:.1f} MiB, last {rss[-1]:.1f} MiB, max {max(rss):.1f} MiB, "
                  f"max without an /alloc in flight {max(quiet):.1f} MiB")
            if len(rss) > 2:
                # The first interval fills pool slots and buffers; growth after it is what leaks.
                print(f"RSS growth: {rss[-1] - rss[0]:+.1f} MiB since the start, "
                      f"{rss[-1] - rss[1]:+.1f} MiB since t={self.samples[1][0]:.0f} s (after warm-up)")
        if self.lags:
            worst = max(self.lags, key=lambda lag: lag[1])
            print(f"\nthe driver's own event loop ran late {len(self.lags)}× by over "
                  f"{LAG_REPORTED_S * 1e3:.0f} ms (worst {worst[1] * 1e3:.0f} ms at t={worst[0]:.1f} s; "
                  f"first at t = {', '.join(f'{t:.1f}' for t, _ in self.lags[:10])} s): good "
                  "latencies then include the driver's own delay")
        if self.host_died:
            print(f"\nthe host (pid {self.args.pid}) is gone")
            problems.append("the host died")

        print(f"\nresult: {'FAIL — ' + '; '.join(problems) if problems else 'PASS'}")
        return 1 if problems else 0


def main():
    soak = Soak(parse_args())
    asyncio.run(soak.run())
    sys.exit(soak.report())


if __name__ == "__main__":
    main()
