#!/usr/bin/env bash
# The soak test: one `wisp serve` under mixed load for a bounded time, good
# guests beside hostile ones, with deploys and rollbacks during it.
#
#   benches/soak.sh                              # 10 minutes, release build
#   WISP=target/debug/wisp DURATION=60 benches/soak.sh
#
# Functions: `hello` at /hello and `hostile-cgi` at /cgi are the good paths
# (GET /hello → 200 "Hello, world!", GET /cgi/big?kib=1 → 200, 1 KiB), asked
# by GOOD_CONCURRENCY keep-alive HTTP/1.1 connections as fast as they answer.
# Beside them, from their own tasks: the `hostile` component's /loop (deployed
# with --timeout 1s; one at a time, 2 s apart) and /alloc (--memory 64MiB; one
# at a time, 1 s apart), and HOSTILE_SOCKETS sockets of each of: slow readers
# (GET /cgi/big?kib=51200, never read, held 20 s), slow request bodies (POST
# to /cgi declaring 100 000 bytes, sent 1 byte a second) and idle connections
# that send only the HTTP/2 preface. Every DEPLOY_INTERVAL seconds, starting
# at half of it, hello and cgi get in turn a new version (a new --env) or a
# rollback; each must be served within 5 s while good traffic keeps flowing.
# The load driver is benches/soak.py (Python 3, stdlib only).
#
# Reports the good requests sent and failed (any non-200, wrong body,
# connection failure or timeout on a good path), each hostile kind's
# outcomes, each deploy and rollback, and the host's RSS every 10 s (VmRSS
# from /proc/PID/status, with open fds and threads), which should stay flat;
# then the server log's WARN/ERROR lines, grouped. Exits non-zero if a good
# request failed, a deploy or rollback failed or was not served, or the host
# died. A soak test, not part of CI.
#
# Environment:
#   WISP              the binary (default target/release/wisp, built if missing)
#   DURATION          seconds of load (default 600)
#   GOOD_CONCURRENCY  good keep-alive connections (default 8)
#   HOSTILE_SOCKETS   concurrent sockets of each hostile kind (default 10; keep
#                     it well under the host's 256 connections per IP)
#   DEPLOY_INTERVAL   seconds between deploy/rollback rounds (default 30)
#   SERVE_FLAGS       extra `wisp serve` flags (default "--write-timeout 5s
#                     --body-timeout 5s": a stalled reader or body is cut
#                     after 5 s instead of 30 s and 10 s, so the hostile
#                     sockets turn over within the run)
#   ACCESS_LOG        `true` to keep the access log (default false: at full
#                     rate it grows by hundreds of MB in ten minutes)
#
# The server log and the run's files stay in a temp dir, printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-600}"
GOOD_CONCURRENCY="${GOOD_CONCURRENCY:-8}"
HOSTILE_SOCKETS="${HOSTILE_SOCKETS:-10}"
DEPLOY_INTERVAL="${DEPLOY_INTERVAL:-30}"
SERVE_FLAGS="${SERVE_FLAGS:---write-timeout 5s --body-timeout 5s}"
ACCESS_LOG="${ACCESS_LOG:-false}"

say() { echo "soak: $*" >&2; }

if [ -z "${WISP:-}" ]; then
    WISP=target/release/wisp
    if [ ! -x "$WISP" ]; then
        say "building wisp (release)"
        cargo build --release --quiet -p wisp-cli --bin wisp
    fi
fi
[ -x "$WISP" ] || { say "no wisp binary at \`$WISP\`"; exit 2; }

say "building the guests"
guests/build.sh wasm32-wasip2 hello hostile
guests/build.sh wasm32-wasip1 hostile-cgi
HELLO="$PWD/target/guests/wasm32-wasip2/release/hello.wasm"
HOSTILE="$PWD/target/guests/wasm32-wasip2/release/hostile.wasm"
CGI="$PWD/target/guests/wasm32-wasip1/release/hostile-cgi.wasm"

work="$(mktemp -d -t wisp-soak.XXXXXX)"
log="$work/server.log"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work/data"
}
trap cleanup EXIT

say "starting $WISP serve $SERVE_FLAGS (log: $log)"
# shellcheck disable=SC2086 # SERVE_FLAGS is a list of words
"$WISP" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/data" \
    --access-log "$ACCESS_LOG" $SERVE_FLAGS >"$work/stdout" 2>"$log" &
server_pid=$!
public="" admin=""
for _ in $(seq 1 200); do
    public="$(sed -n 's|^public: http://||p' "$work/stdout")"
    admin="$(sed -n 's|^admin: http://||p' "$work/stdout")"
    [ -n "$public" ] && [ -n "$admin" ] && break
    kill -0 "$server_pid" 2>/dev/null || { say "wisp serve exited; its log: $log"; cat "$log" >&2; exit 1; }
    sleep 0.05
done
[ -n "$public" ] && [ -n "$admin" ] || { say "wisp serve printed no addresses in 10 s"; exit 1; }
export WISP_ADMIN_URL="http://$admin"

"$WISP" deploy hello "$HELLO" --route /hello --env SOAK_ROUND=0 >&2
"$WISP" deploy cgi "$CGI" --route /cgi >&2
"$WISP" deploy hostile "$HOSTILE" --route /hostile --timeout 1s --memory 64MiB >&2

say "soaking for $DURATION s: public http://$public, admin $WISP_ADMIN_URL, pid $server_pid"
status=0
python3 benches/soak.py --public "$public" --admin "$WISP_ADMIN_URL" --pid "$server_pid" \
    --wisp "$WISP" --hello-wasm "$HELLO" --cgi-wasm "$CGI" --duration "$DURATION" \
    --good-concurrency "$GOOD_CONCURRENCY" --hostile-sockets "$HOSTILE_SOCKETS" \
    --deploy-interval "$DEPLOY_INTERVAL" || status=$?

echo
echo "server log: $log"
python3 - "$log" <<'EOF'
import collections, re, sys
groups = collections.Counter()
example = {}
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"\S+\s+(WARN|ERROR)\s+(\S+)\s+(.*)", line)
    if not m:
        continue
    # The message is what comes before the first `key=value` field.
    key = f"{m[1]} {m[2]} {re.split(r' [a-z_.]+=', m[3], maxsplit=1)[0]}"
    groups[key] += 1
    # A wasm backtrace says little here; keep the trap that ends it.
    example.setdefault(key, re.sub(r"(wasm backtrace:).*?(wasm trap:)", r"\1 [...] \2", line.strip())[:400])
print(f"WARN/ERROR lines: {sum(groups.values())}")
for key, n in groups.most_common():
    print(f"  {n:6}× {key}\n          e.g. {example[key]}")
EOF
exit "$status"
