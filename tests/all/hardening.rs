//! Hostile clients on real loopback sockets: slow bodies, idle HTTP/2
//! connections, floods, slow readers of huge responses, and CGI edge cases.
//! The host must keep serving everyone else, stay within its bounds, and
//! tell the operator what happened. Every wait is bounded.

use crate::support::{Response, Wisp, costly_to_compile, eventually, send};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use wisp_test_artifacts as artifacts;

/// The HTTP/2 connection preface and an empty SETTINGS frame: a client that
/// says it speaks HTTP/2, then opens no stream.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Reads until the server closes the stream or `limit` passes; true if it
/// closed (EOF or reset).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buffer = [0u8; 16 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Reads from `stream` until what arrived satisfies `done`; panics if the
/// stream ends or 10 s pass first.
fn read_until(stream: &mut TcpStream, done: impl Fn(&[u8]) -> bool) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !done(&seen) {
        match stream.read(&mut buffer) {
            Ok(0) => panic!(
                "the server closed the stream after {:?}",
                String::from_utf8_lossy(&seen)
            ),
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
            Err(e) => panic!("reading ({e}) after {:?}", String::from_utf8_lossy(&seen)),
        }
    }
}

/// A GET on a fresh connection; what came back (empty if refused).
fn raw_get(addr: SocketAddr, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// A client that sends a POST head announcing 1000 bytes, then one byte
/// every 200 ms. With `hold`, it waits there after its first byte until the
/// test joins the barrier too. Returns what the server answered and when,
/// measured from the start.
fn trickle(
    addr: SocketAddr,
    path: &str,
    hold: Option<Arc<Barrier>>,
) -> std::thread::JoinHandle<(String, Duration)> {
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx");
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        if let Some(barrier) = hold {
            barrier.wait();
        }
        let mut reader = stream.try_clone().unwrap();
        let read = std::thread::spawn(move || {
            reader
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut answer = Vec::new();
            let _ = reader.read_to_end(&mut answer);
            (
                String::from_utf8_lossy(&answer).into_owned(),
                started.elapsed(),
            )
        });
        for _ in 1..1000 {
            std::thread::sleep(Duration::from_millis(200));
            if read.is_finished() || stream.write_all(b"x").is_err() {
                break;
            }
        }
        read.join().unwrap()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn trickled_bodies_hold_no_slots_and_get_408_within_the_timeout() {
    let wisp = Wisp::start_with(&["--max-instances", "4"]);
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok(
        "cgi",
        artifacts::HOSTILE_CGI_MODULE,
        "route=/cgi&timeout=2s",
    )
    .await;
    let hold = Arc::new(Barrier::new(5));
    let tricklers: Vec<_> = (0..4)
        .map(|_| trickle(wisp.public, "/cgi/env", Some(hold.clone())))
        .collect();
    // Each trickler holds after its first byte; the host sizes each body's
    // buffer from its declared 1000 bytes: 4000 bytes held means all four
    // are in the middle of their bodies.
    assert!(
        eventually(Duration::from_secs(10), async || {
            wisp.metric("wisp_request_buffer_bytes", &[]).await == 4000.0
        })
        .await,
        "the four trickled bodies never arrived: {}",
        wisp.metrics().await.text
    );
    for _ in 0..8 {
        let response = wisp.get("/hello").await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    tokio::task::block_in_place(|| hold.wait());
    for trickler in tricklers {
        let (answer, after) = tokio::task::block_in_place(|| trickler.join().unwrap());
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request-body-time"), "{answer}");
        // Cut off by the function's 2 s timeout, not the 10 s body timeout.
        assert!(after < Duration::from_secs(6), "cut off after {after:?}");
    }
    let response = wisp.get("/hello").await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_below_the_minimum_rate_gets_408() {
    let wisp = Wisp::start_with(&["--body-timeout", "1s", "--min-body-rate", "1KiB"]);
    wisp.deploy_ok(
        "cgi",
        artifacts::HOSTILE_CGI_MODULE,
        "route=/cgi&timeout=60s",
    )
    .await;
    // 5 bytes a second never pauses for 1 s, but is far below 1 KiB/s.
    let (answer, after) =
        tokio::task::block_in_place(|| trickle(wisp.public, "/cgi/env", None).join().unwrap());
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(after < Duration::from_secs(10), "cut off after {after:?}");
    assert!(
        eventually(Duration::from_secs(5), async || {
            wisp.metric("wisp_limit_breaches_total", &[]).await >= 1.0
        })
        .await,
        "{}",
        wisp.admin_get("/metrics").await.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_http2_connections_are_closed_and_admin_answers_under_a_flood() {
    // 256 open files: the public listener may hold 128 connections.
    let wisp = Wisp::start_with_file_limit(
        &["--header-timeout", "1s", "--max-connections-per-ip", "1000"],
        256,
    );
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let mut flood: Vec<TcpStream> = tokio::task::block_in_place(|| {
        (0..300)
            .filter_map(|_| {
                let mut stream = TcpStream::connect(wisp.public).ok()?;
                stream.write_all(H2_PREFACE).ok()?;
                Some(stream)
            })
            .collect()
    });
    // At least the 128 the listener may hold were opened, so `still_open`
    // below counts something.
    assert!(
        flood.len() >= 128,
        "only {} connections opened",
        flood.len()
    );
    let admin = tokio::time::timeout(Duration::from_secs(10), wisp.admin_get("/v1/functions"))
        .await
        .expect("the admin API stopped answering under the flood");
    assert_eq!(admin.status, StatusCode::OK);
    let still_open = tokio::task::block_in_place(|| {
        flood
            .iter_mut()
            .map(|stream| closed_within(stream, Duration::from_secs(5)))
            .filter(|closed| !closed)
            .count()
    });
    assert_eq!(still_open, 0, "idle HTTP/2 connections were kept open");
    let response = wisp.get("/hello").await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        !wisp.log().contains("Too many open files"),
        "{}",
        wisp.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_idle_connections_at_once() {
    let mut wisp = Wisp::start();
    let mut idle = TcpStream::connect(wisp.public).unwrap();
    idle.write_all(H2_PREFACE).unwrap();
    // The server's own SETTINGS frame (type 4) says it serves the connection.
    read_until(&mut idle, |seen| seen.len() >= 9 && seen[3] == 4);
    let started = Instant::now();
    let status = tokio::task::block_in_place(|| wisp.terminate());
    assert!(status.success(), "{status:?}");
    // The grace period (30 s) is for requests in flight, not idle clients.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_hold_more_than_its_connections() {
    let wisp = Wisp::start_with(&["--max-connections-per-ip", "3"]);
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    // Three kept-alive connections, each known to be held by the server
    // because it answered a request on it.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = TcpStream::connect(wisp.public).unwrap();
            stream
                .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            // The whole chunked answer, ending in its last chunk.
            read_until(&mut stream, |seen| {
                seen.windows(14).any(|w| w == b"Hello, world!\n") && seen.ends_with(b"0\r\n\r\n")
            });
            stream
        })
        .collect();
    assert!(
        refused(wisp.public, "/hello"),
        "a fourth connection from one address was served"
    );
    drop(held);
    assert!(serves_hello_again(&wisp).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_readers_of_huge_output_hold_bounded_memory_and_are_cut_off() {
    let wisp = Wisp::start_with(&["--write-timeout", "2s"]);
    wisp.deploy_ok(
        "big",
        artifacts::HOSTILE_CGI_MODULE,
        "route=/big&timeout=60s",
    )
    .await;
    slow_readers_are_cut_off(&wisp, "big", |kib| format!("/big/big?kib={kib}")).await;
}

/// Ten clients ask `function` (on a host with a 2 s write timeout) for
/// 50 MiB each at `path(KIB)` and never read: the host's memory stays
/// bounded, the write timeout cuts them off as aborted, each run is
/// accounted for, and the function still serves.
pub async fn slow_readers_are_cut_off(wisp: &Wisp, function: &str, path: impl Fn(u32) -> String) {
    // Warm up: one small request, so the baseline includes a loaded guest.
    let warm = wisp.get(&path(1)).await;
    assert_eq!(warm.status, StatusCode::OK);
    let before = wisp.rss_bytes();
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path(51200));
    let readers: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut stream = TcpStream::connect(wisp.public).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(10), async || {
            wisp.metric("wisp_in_flight_requests", &[]).await >= 10.0
        })
        .await,
        "the slow readers' requests are not visible as in flight"
    );
    // The write timeout closes them, and their guests end with them; until
    // then, the host's memory is sampled at every check.
    let mut peak = 0;
    assert!(
        eventually(Duration::from_secs(15), async || {
            peak = peak.max(wisp.rss_bytes());
            wisp.metric("wisp_in_flight_requests", &[]).await == 0.0
        })
        .await,
        "stalled responses were never cut off"
    );
    // Cut off, each run is still accounted for (the warm-up request, then
    // the ten stalled ones).
    let usage = format!("/v1/functions/{function}/usage");
    assert!(
        eventually(Duration::from_secs(10), async || {
            wisp.admin_get(&usage).await.json()["usage"]["requests"] == 11
        })
        .await,
        "{}",
        wisp.admin_get(&usage).await.text()
    );
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 100 << 20,
        "ten stalled 50 MiB responses grew the host by {} MiB",
        grown >> 20
    );
    drop(readers);
    let log = wisp.log();
    let stalled = path(51200);
    assert!(
        log.lines().any(
            |l| l.contains(stalled.split('?').next().unwrap_or_default())
                && l.contains("status=200")
                && l.contains("outcome=\"aborted\"")
        ),
        "the access log does not show the cut-off responses as aborted:\n{log}"
    );
    let response = wisp.get(&path(4)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body.len(), 4 << 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complete_streamed_cgi_response_arrives_whole() {
    let wisp = Wisp::start();
    wisp.deploy_ok("big", artifacts::HOSTILE_CGI_MODULE, "route=/big")
        .await;
    // Far past one window: streamed as the guest writes.
    let response = wisp.get("/big/big?kib=8192").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body.len(), 8 << 20);
    assert!(response.body.iter().all(|b| *b == b'y'));
    let log = wisp.log();
    assert!(
        log.lines().any(|l| l.contains("/big/big")
            && l.contains("outcome=\"complete\"")
            && l.contains("bytes_sent=8388608")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cgi_requests_cannot_smuggle_proxy_or_underscore_headers() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hc", artifacts::HOSTILE_CGI_MODULE, "route=/hc")
        .await;
    let response = send(
        Method::GET,
        &wisp.url("/hc/headers"),
        &[
            ("proxy", "http://evil.example:3128"),
            ("x_under", "evil"),
            ("x-under", "good"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    let text = response.text();
    assert!(!text.contains("HTTP_PROXY="), "{text}");
    assert!(!text.contains("evil"), "{text}");
    assert_eq!(text.matches("HTTP_X_UNDER=").count(), 1, "{text}");
    assert!(text.contains("HTTP_X_UNDER=good"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cgi_interim_or_out_of_range_statuses_are_bad_gateway() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hc", artifacts::HOSTILE_CGI_MODULE, "route=/hc")
        .await;
    for code in ["100", "101", "103", "600", "99"] {
        let response = wisp.get(&format!("/hc/status?code={code}")).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_GATEWAY,
            "{code}: {}",
            response.text()
        );
        let body = response.json();
        assert_eq!(body["kind"], "bad-cgi-response");
        assert!(body["error"].as_str().unwrap().contains(code), "{body}");
    }
    let fine = wisp.get("/hc/status?code=299").await;
    assert_eq!(fine.status.as_u16(), 299);
}

#[tokio::test(flavor = "multi_thread")]
async fn unrouted_requests_get_an_access_log_line() {
    let wisp = Wisp::start();
    let response = wisp.get("/nowhere-at-all").await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert!(
        eventually(Duration::from_secs(5), async || {
            wisp.log().lines().any(|l| {
                l.contains("wisp::access")
                    && l.contains("/nowhere-at-all")
                    && l.contains("status=404")
            })
        })
        .await,
        "{}",
        wisp.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_routes_and_settings_are_refused_quoting_what_was_sent() {
    let wisp = Wisp::start();
    let wasm = std::fs::read(artifacts::HELLO_COMPONENT).unwrap();
    for (query, needle) in [
        ("route=/a&max-concurrency=4294967296", "4294967296"),
        ("route=/%252F", "%2F"),
        ("route=//", "//"),
        ("route=/a//b", "//"),
        ("route=/a&timeout=1s&timeout=2s", "timeout"),
    ] {
        let response = wisp.deploy("a", wasm.clone(), query).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            response.text()
        );
        let message = response.error();
        assert!(
            message.contains(needle),
            "{query}: `{message}` should quote `{needle}`"
        );
    }
    let listed = wisp.admin_get("/v1/functions").await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

/// Asserts a `400 compile-limit` refusal whose message mentions `needle`.
fn assert_compile_limit(response: &Response, needle: &str) {
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.text()
    );
    assert_eq!(
        response.json()["kind"],
        "compile-limit",
        "{}",
        response.text()
    );
    assert!(response.error().contains(needle), "{}", response.error());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compile_bomb_over_the_time_budget_is_refused_quickly() {
    // A budget far below what 40,000 functions take on any machine (seconds
    // on two cores, a good fraction of one on many), so the refusal does not
    // depend on how fast this machine compiles.
    let wisp = Wisp::start_with(&["--max-compile-time", "100ms"]);
    let bomb = costly_to_compile(40_000);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let before = wisp.rss_bytes();
    let started = Instant::now();
    let response = wisp.deploy("bomb", bomb, "route=/bomb").await;
    let took = started.elapsed();
    assert_compile_limit(&response, "--max-compile-time");
    assert!(
        took < Duration::from_secs(10),
        "refused only after {took:?}"
    );
    let grown = wisp.rss_bytes().saturating_sub(before);
    assert!(grown < 50 << 20, "the host grew by {} MiB", grown >> 20);
    let listed = wisp.admin_get("/v1/functions").await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compile_over_the_memory_budget_is_refused() {
    let wisp = Wisp::start_with(&["--max-compile-memory", "64MiB"]);
    let response = wisp
        .deploy("bomb", costly_to_compile(40_000), "route=/bomb")
        .await;
    assert_compile_limit(&response, "memory");
    // The host itself is fine: a normal function still deploys and serves.
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    assert_eq!(wisp.get("/hello").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn compiling_in_a_child_process_leaves_the_host_small() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let before = wisp.rss_bytes();
    let response = wisp
        .deploy("many", costly_to_compile(30_000), "route=/many")
        .await;
    assert!(response.status.is_success(), "{}", response.text());
    let grown = wisp.rss_bytes().saturating_sub(before);
    assert!(
        grown < 60 << 20,
        "compiling grew the host by {} MiB",
        grown >> 20
    );
    assert_eq!(wisp.get("/many").await.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_binary_the_pool_cannot_hold_is_refused_before_compiling() {
    let wisp = Wisp::start();
    let two_memories =
        wat::parse_str(r#"(module (memory 1) (memory 1) (func (export "_start")))"#).unwrap();
    let response = wisp.deploy("two", two_memories, "route=/two").await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.text()
    );
    assert!(
        response.error().contains("linear memories"),
        "{}",
        response.error()
    );
    assert_eq!(wisp.metric("wisp_compilations_total", &[]).await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn guests_together_stay_within_the_host_memory_budget() {
    let wisp = Wisp::start_with(&["--max-guest-memory", "48MiB"]);
    wisp.deploy_ok("h", artifacts::HOSTILE_COMPONENT, "route=/h&memory=256MiB")
        .await;
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    // Its own limit would allow 256 MiB; the host's budget stops it first.
    let response = wisp.get("/h/alloc").await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.text()
    );
    assert_eq!(
        response.json()["limit"],
        "host-memory",
        "{}",
        response.text()
    );
    assert!(response.error().contains("48MiB"), "{}", response.error());
    assert_eq!(response.header("retry-after"), Some("1"));
    // What it held is given back: others still run, and the gauge empties
    // (once the sandbox prepared for hello's next request, unused, is
    // dropped after 5 s).
    assert_eq!(wisp.get("/hello").await.status, StatusCode::OK);
    let empty = eventually(Duration::from_secs(20), async || {
        wisp.metric("wisp_guest_memory_bytes", &[]).await == 0.0
    })
    .await;
    assert!(empty, "guest memory still held after every sandbox is gone");
}

/// Whether a new connection to `addr` asking for `path` is closed unanswered
/// within 3 s (refused at accept).
fn refused(addr: SocketAddr, path: &str) -> bool {
    let mut stream = TcpStream::connect(addr).unwrap();
    let _ = stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    tokio::task::block_in_place(|| closed_within(&mut stream, Duration::from_secs(3)))
}

/// Whether `/hello` is answered 200 again within 5 s.
async fn serves_hello_again(wisp: &Wisp) -> bool {
    eventually(Duration::from_secs(5), async || {
        tokio::task::block_in_place(|| raw_get(wisp.public, "/hello").starts_with("HTTP/1.1 200"))
    })
    .await
}

/// Opens a connection to `addr` and has one `path` answered on it (so the
/// server is known to hold it), keeping it alive.
fn held_connection(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    read_until(&mut stream, whole_response);
    stream
}

/// Whether `seen` holds one whole HTTP/1.1 response (sized or chunked).
fn whole_response(seen: &[u8]) -> bool {
    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    match length {
        Some(length) => seen.len() >= end + 4 + length,
        None => seen.ends_with(b"0\r\n\r\n"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_alive_connection_idle_past_the_idle_timeout_is_closed() {
    let wisp = Wisp::start_with(&["--idle-timeout", "1s"]);
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let mut idle = tokio::task::block_in_place(|| held_connection(wisp.public, "/hello"));
    // The default (60 s) would keep it far longer than this.
    let closed = tokio::task::block_in_place(|| closed_within(&mut idle, Duration::from_secs(10)));
    assert!(
        closed,
        "an idle kept-alive connection outlived --idle-timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_connections_caps_the_public_listener_and_the_admin_listener_has_its_own_64() {
    let wisp = Wisp::start_with(&["--max-connections", "3", "--max-connections-per-ip", "1000"]);
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let public: Vec<TcpStream> = tokio::task::block_in_place(|| {
        (0..3)
            .map(|_| held_connection(wisp.public, "/hello"))
            .collect()
    });
    assert!(
        refused(wisp.public, "/hello"),
        "a fourth public connection was served past --max-connections 3"
    );

    // The admin listener is not bound by the public cap: it holds 64 of
    // its own, and no more.
    let admin: Vec<TcpStream> = tokio::task::block_in_place(|| {
        (0..64)
            .map(|_| held_connection(wisp.admin, "/healthz"))
            .collect()
    });
    assert!(
        refused(wisp.admin, "/healthz"),
        "a 65th admin connection was served"
    );
    drop((public, admin));
    assert!(serves_hello_again(&wisp).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_past_max_buffered_are_refused_with_503() {
    let wisp = Wisp::start_with(&["--max-buffered", "64KiB"]);
    wisp.deploy_ok("cgi", artifacts::CGI_HELLO_MODULE, "route=/cgi")
        .await;
    // A CGI body is read whole before the guest runs: 1 MiB cannot be held.
    let response = send(
        Method::POST,
        &wisp.url("/cgi"),
        &[],
        Bytes::from(vec![b'x'; 1 << 20]),
    )
    .await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.text()
    );
    assert_eq!(response.json()["limit"], "buffer", "{}", response.text());
    // A body that fits still runs.
    let small = send(
        Method::POST,
        &wisp.url("/cgi"),
        &[],
        Bytes::from_static(b"hi"),
    )
    .await;
    assert_eq!(small.status, StatusCode::OK, "{}", small.text());
}

#[test]
fn the_compile_child_jails_itself_before_it_compiles() {
    assert!(
        std::process::Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test needs `strace` (scripts/install-deps.sh installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let mut child = std::process::Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=prctl,prlimit64,landlock_restrict_self,seccomp,openat,execve",
            "-o",
        ])
        .arg(&trace)
        .arg(crate::support::WISP)
        .arg("__compile-worker")
        .env_clear()
        .env("WISP_COMPILE_ABI", "wasi-http")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wasm = std::fs::read(artifacts::HELLO_COMPONENT).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&wasm));
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stdout.len() > 1000,
        "the jailed child still compiles"
    );
    let trace = std::fs::read_to_string(&trace).unwrap();
    let jailed = trace
        .lines()
        .position(|l| l.contains("landlock_restrict_self(") && l.trim_end().ends_with("= 0"))
        .unwrap_or_else(|| panic!("no Landlock restriction in:\n{trace}"));
    assert!(
        trace
            .lines()
            .take(jailed)
            .any(|l| l.contains("PR_SET_NO_NEW_PRIVS, 1") && l.trim_end().ends_with("= 0")),
        "no_new_privs is set before the ruleset:\n{trace}"
    );
    for limit in [
        "RLIMIT_NOFILE, {rlim_cur=16, rlim_max=16}",
        "RLIMIT_CORE, {rlim_cur=0, rlim_max=0}",
    ] {
        assert!(
            trace
                .lines()
                .take(jailed)
                .any(|l| l.contains(limit) && l.trim_end().ends_with("= 0")),
            "no {limit} before the jail:\n{trace}"
        );
    }
    let filtered = trace
        .lines()
        .position(|l| {
            l.contains("seccomp(SECCOMP_SET_MODE_FILTER") && l.trim_end().ends_with("= 0")
        })
        .unwrap_or_else(|| panic!("no seccomp filter in:\n{trace}"));
    assert!(
        filtered > jailed,
        "the allow-list comes after the ruleset:\n{trace}"
    );
    // From then on, no file opens (Cranelift needs none; a try is refused)
    // and nothing is executed.
    for line in trace.lines().skip(jailed + 1) {
        if line.contains("openat(") {
            assert!(
                line.contains("EACCES") || line.contains("EPERM"),
                "opened after the jail: {line}"
            );
        }
        assert!(!line.contains("execve("), "executed after the jail: {line}");
    }
}
