//! Limits and capabilities, each against a guest written to break them: every
//! breach ends that request with a clear status and JSON error, and the host
//! keeps serving.

use crate::support::{Response, Wisp, eventually, send};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::time::{Duration, Instant};
use wisp_test_artifacts as artifacts;

/// Asserts a JSON error response with `status`, `kind` and a message
/// containing `needle`.
fn assert_error(response: &Response, status: StatusCode, kind: &str, needle: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["kind"], kind, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "`{message}` should mention `{needle}`"
    );
}

fn assert_limit(response: &Response, status: StatusCode, limit: &str, needle: &str) {
    assert_error(response, status, "limit-exceeded", needle);
    assert_eq!(response.json()["limit"], limit);
}

async fn still_serving(wisp: &Wisp) {
    let response = wisp.get("/hello").await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "the host stopped serving: {}",
        response.text()
    );
}

async fn hostile_host(query: &str) -> Wisp {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok(
        "h",
        artifacts::HOSTILE_COMPONENT,
        &format!("route=/h&{query}"),
    )
    .await;
    wisp
}

#[tokio::test(flavor = "multi_thread")]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let wisp = hostile_host("timeout=1s").await;
    let started = Instant::now();
    let response = wisp.get("/h/loop").await;
    assert_limit(
        &response,
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        "time limit of 1s",
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the loop was not interrupted"
    );
    still_serving(&wisp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_sleeping_forever_is_stopped_at_the_deadline() {
    let wisp = hostile_host("timeout=1s").await;
    let response = wisp.get("/h/sleep-forever").await;
    assert_limit(&response, StatusCode::GATEWAY_TIMEOUT, "timeout", "1s");
    still_serving(&wisp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cgi_loop_is_stopped_at_the_deadline() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("hc", artifacts::HOSTILE_CGI_MODULE, "route=/hc&timeout=1s")
        .await;
    let response = wisp.get("/hc/loop").await;
    assert_limit(&response, StatusCode::GATEWAY_TIMEOUT, "timeout", "1s");
    still_serving(&wisp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_hits_the_memory_limit() {
    let wisp = hostile_host("memory=32MiB").await;
    let response = wisp.get("/h/alloc").await;
    assert_limit(
        &response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "memory",
        "memory limit of 32MiB",
    );
    still_serving(&wisp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cgi_memory_bomb_hits_the_memory_limit() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok(
        "hc",
        artifacts::HOSTILE_CGI_MODULE,
        "route=/hc&memory=32MiB",
    )
    .await;
    let response = wisp.get("/hc/alloc").await;
    assert_limit(
        &response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "memory",
        "memory limit of 32MiB",
    );
    let peak = wisp.usage("hc", 1).await["peak_memory_bytes"]
        .as_u64()
        .unwrap();
    assert!(
        peak <= 32 << 20 && peak > 16 << 20,
        "the bomb grew to {peak} bytes, not up to its 32 MiB"
    );
    still_serving(&wisp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fuel_meters_instructions_and_stops_a_loop() {
    let wisp = hostile_host("fuel=2000000").await;
    let response = wisp.get("/h/loop").await;
    assert_limit(
        &response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "fuel",
        "ran out of fuel",
    );
    // A normal request fits in the same budget.
    assert_eq!(wisp.get("/h/env").await.status, StatusCode::OK);
    let metrics = wisp.admin_get("/metrics").await.text();
    let fuel_line = metrics
        .lines()
        .find(|l| l.starts_with("wisp_guest_fuel_total{function=\"h\""))
        .unwrap_or_else(|| panic!("no fuel series in:\n{metrics}"));
    let burned: f64 = fuel_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(burned >= 2_000_000.0, "{fuel_line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn traps_panics_and_stack_overflows_are_500s() {
    let wisp = hostile_host("").await;
    assert_error(
        &wisp.get("/h/panic").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "trap",
        "unreachable",
    );
    assert_error(
        &wisp.get("/h/unreachable").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "trap",
        "unreachable",
    );
    assert_error(
        &wisp.get("/h/recurse").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "trap",
        "call stack exhausted",
    );
    assert_error(
        &wisp.get("/h/stack-smash").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "trap",
        "out of bounds",
    );
    still_serving(&wisp).await;
    assert!(
        wisp.log().contains("hostile guest panicked on purpose"),
        "the panic message is logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_zero_exit_is_a_500_naming_the_status() {
    let wisp = hostile_host("").await;
    wisp.deploy_ok("hc", artifacts::HOSTILE_CGI_MODULE, "route=/hc")
        .await;
    // A component's `exit(3)` reaches the host as `wasi:cli/exit` with an error (status 1).
    assert_error(
        &wisp.get("/h/exit").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "exit",
        "exited with status 1",
    );
    assert_error(
        &wisp.get("/hc/exit").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "exit",
        "status 3",
    );
    still_serving(&wisp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_cgi_response_is_a_502() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("hc", artifacts::HOSTILE_CGI_MODULE, "route=/hc")
        .await;
    let response = wisp.get("/hc/malformed").await;
    assert_error(
        &response,
        StatusCode::BAD_GATEWAY,
        "bad-cgi-response",
        "no blank line",
    );
    still_serving(&wisp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_response_is_cut_off_at_the_limit() {
    use http_body_util::BodyExt;
    let wisp = hostile_host("max-response-body=1MiB").await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let request = http::Request::get(wisp.url("/h/huge-response"))
        .body(Default::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = 0usize;
    let mut cut_off = false;
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), body.frame())
        .await
        .unwrap()
    {
        match frame {
            Ok(frame) => received += frame.data_ref().map_or(0, |d| d.len()),
            Err(_) => {
                cut_off = true;
                break;
            }
        }
    }
    assert!(
        cut_off,
        "the response ended cleanly after {received} bytes instead of being cut off"
    );
    assert!(
        received <= 1 << 20,
        "received {received} bytes, more than the 1 MiB limit"
    );
    still_serving(&wisp).await;
    assert!(
        wisp.log()
            .contains("response body exceeds the function's limit")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_length_over_the_limit_is_a_500_before_any_byte() {
    let wisp = hostile_host("max-response-body=1MiB").await;
    let fits = wisp.get("/h/declare?bytes=1048576").await;
    assert_eq!(fits.status, StatusCode::OK, "{}", fits.text());
    assert_eq!(fits.body.len(), 1 << 20);
    let response = wisp.get("/h/declare?bytes=1048577").await;
    assert_limit(
        &response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "response-body",
        "limit of 1MiB",
    );
    assert!(!response.text().contains("zzz"), "{}", response.text());
    still_serving(&wisp).await;
}

/// Reads `path` of a function deployed with `timeout=2s` whose body streams
/// a `tick` line every 100 ms forever, after `padding` bytes of something
/// else; checks that the response starts, streams, and is cut off (not ended
/// cleanly) at the deadline, and that the deadline is counted as a breach of
/// `function`.
async fn assert_cut_off_at_the_deadline(wisp: &Wisp, path: &str, function: &str, padding: usize) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let started = Instant::now();
    let response = client.get(wisp.url(path).parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = Vec::new();
    let cut_off = loop {
        match tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("the stream was neither cut off nor ended within 30 s")
        {
            Some(Ok(frame)) => {
                received.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d));
            }
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    let elapsed = started.elapsed();
    assert!(
        cut_off,
        "the response ended cleanly, as if complete, after {} bytes",
        received.len()
    );
    assert!(received.len() >= padding, "{} bytes", received.len());
    let ticks = &received[padding..];
    // About 20 ticks in 2 s; at least a few, even on a loaded machine.
    assert!(ticks.len() >= 3 * 5, "only {} bytes of ticks", ticks.len());
    assert!(
        ticks.chunks(5).all(|t| t == &b"tick\n"[..t.len()]),
        "{}",
        String::from_utf8_lossy(ticks)
    );
    // Cut at the 2 s deadline: not before it, and long before the 30 s wait.
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(15),
        "cut off after {elapsed:?}"
    );
    let timeouts = [("function", function), ("limit", "timeout")];
    assert!(
        eventually(Duration::from_secs(10), async || {
            wisp.metric("wisp_limit_breaches_total", &timeouts).await == 1.0
        })
        .await,
        "the deadline is not counted as a timeout breach: {}",
        wisp.metrics().await.text
    );
    still_serving(wisp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_cuts_off_a_response_still_streaming() {
    let wisp = hostile_host("timeout=2s").await;
    assert_cut_off_at_the_deadline(&wisp, "/h/drip?ms=100", "h", 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_cuts_off_a_cgi_response_still_streaming() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("hc", artifacts::HOSTILE_CGI_MODULE, "route=/hc&timeout=2s")
        .await;
    assert_cut_off_at_the_deadline(&wisp, "/hc/drip?ms=100", "hc", 128 << 10).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cgi_response_over_the_limit_is_a_500() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "hc",
        artifacts::HOSTILE_CGI_MODULE,
        "route=/hc&max-response-body=64KiB",
    )
    .await;
    let fits = wisp.get("/hc/big?kib=32").await;
    assert_eq!(fits.status, StatusCode::OK);
    assert_eq!(fits.body.len(), 32 << 10);
    let response = wisp.get("/hc/big?kib=200").await;
    assert_limit(
        &response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "response-body",
        "64KiB",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_over_the_limit_get_413() {
    use http_body_util::StreamBody;
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "echo",
        artifacts::ECHO_COMPONENT,
        "route=/echo&max-request-body=4KiB",
    )
    .await;
    wisp.deploy_ok(
        "cgi",
        artifacts::CGI_HELLO_MODULE,
        "route=/cgi&max-request-body=4KiB",
    )
    .await;
    let small = send(
        Method::POST,
        &wisp.url("/echo"),
        &[],
        Bytes::from(vec![b'a'; 4096]),
    )
    .await;
    assert_eq!(small.status, StatusCode::OK);
    for path in ["/echo", "/cgi"] {
        let declared = send(
            Method::POST,
            &wisp.url(path),
            &[],
            Bytes::from(vec![b'a'; 5000]),
        )
        .await;
        assert_limit(
            &declared,
            StatusCode::PAYLOAD_TOO_LARGE,
            "request-body",
            "4KiB",
        );
    }
    // Chunked, no Content-Length: caught while streaming. The buffering CGI
    // guest never starts, so the answer is 413; the streaming echo has already
    // answered 200 by the time the body passes the limit, so its response is
    // cut off instead of completing.
    for (path, expect_413) in [("/cgi", true), ("/echo", false)] {
        use http_body_util::BodyExt;
        let frames = (0..5).map(|_| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'b'; 1024])))
        });
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let request = http::Request::post(wisp.url(path))
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .unwrap();
        let response = client.request(request).await.unwrap();
        if expect_413 {
            assert_eq!(
                response.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "{path} chunked"
            );
        } else if response.status() == StatusCode::OK {
            let body = response.into_body().collect().await;
            assert!(
                body.is_err(),
                "{path}: a body over the limit was echoed whole"
            );
        } else {
            assert_eq!(
                response.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "{path} chunked"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_beyond_the_limit_waits_then_gets_503() {
    let wisp = Wisp::start_with(&["--max-instances", "3"]);
    wisp.deploy_ok(
        "sleep",
        artifacts::SLEEP_COMPONENT,
        "route=/sleep&max-concurrency=2",
    )
    .await;
    wisp.deploy_ok("other", artifacts::SLEEP_COMPONENT, "route=/other")
        .await;
    // Per function: 2 run, the rest wait 1 s for a slot, then get 503.
    let attempts = futures_util::future::join_all((0..5).map(|_| wisp.get("/sleep?ms=2500"))).await;
    let ok = attempts
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let busy: Vec<&Response> = attempts
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(
        ok,
        2,
        "statuses: {:?}",
        attempts.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(busy.len(), 3);
    for response in busy {
        assert_limit(
            response,
            StatusCode::SERVICE_UNAVAILABLE,
            "concurrency",
            "function `sleep`",
        );
        assert_eq!(response.header("retry-after"), Some("1"));
    }
    // Host-wide: 3 instances in all.
    let attempts = futures_util::future::join_all(
        (0..2)
            .map(|_| wisp.get("/sleep?ms=2500"))
            .chain((0..3).map(|_| wisp.get("/other?ms=2500"))),
    )
    .await;
    let busy_host = attempts
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE && r.error().contains("this host"))
        .count();
    assert!(
        busy_host >= 1,
        "statuses: {:?}",
        attempts.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(
        wisp.get("/sleep?ms=1").await.status,
        StatusCode::OK,
        "slots are released"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guests_see_only_declared_env_vars() {
    let wisp = Wisp::start_with_env(&[], &[("WISP_TEST_SECRET", "hunter2")]);
    wisp.deploy_ok(
        "h",
        artifacts::HOSTILE_COMPONENT,
        "route=/h&env=GREETING=hi&env=MODE=test",
    )
    .await;
    wisp.deploy_ok(
        "hc",
        artifacts::HOSTILE_CGI_MODULE,
        "route=/hc&env=GREETING=hi",
    )
    .await;
    let seen = wisp.get("/h/env").await.json();
    let names: Vec<&String> = seen.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        ["GREETING", "MODE"],
        "a component sees only its declared env"
    );
    assert_eq!(seen["GREETING"], "hi");
    let cgi = wisp.get("/hc/env").await.text();
    assert!(cgi.contains("GREETING=hi\n"), "{cgi}");
    assert!(cgi.contains("REQUEST_METHOD=GET\n"), "{cgi}");
    for leaked in ["WISP_TEST_SECRET", "hunter2", "PATH=", "HOME="] {
        assert!(
            !cgi.contains(leaked),
            "the CGI guest saw `{leaked}`:\n{cgi}"
        );
    }
}

/// A granted directory with `hello.txt` and a symlink `escape` to a secret
/// outside it.
struct Files {
    outside: tempfile::TempDir,
    granted: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
        let granted = tempfile::tempdir().unwrap();
        let public = granted.path().join("public");
        std::fs::create_dir(&public).unwrap();
        std::fs::write(public.join("hello.txt"), "hello from the host").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), public.join("escape"))
            .unwrap();
        Files { outside, granted }
    }

    /// The directory granted to guests as `/data`.
    fn public(&self) -> std::path::PathBuf {
        self.granted.path().join("public")
    }

    /// Paths that lead out of `/data`, each of which must fail.
    fn escapes(&self) -> Vec<String> {
        vec![
            "/data/../secret.txt".to_owned(),
            "/data/../../etc/passwd".to_owned(),
            "/data/escape".to_owned(),
            self.outside.path().join("secret.txt").display().to_string(),
            "/etc/passwd".to_owned(),
            "../secret.txt".to_owned(),
        ]
    }

    /// The host's files are as they were: nothing written, nothing created.
    fn assert_untouched(&self) {
        assert_eq!(
            std::fs::read_to_string(self.public().join("hello.txt")).unwrap(),
            "hello from the host"
        );
        assert_eq!(
            std::fs::read_to_string(self.outside.path().join("secret.txt")).unwrap(),
            "top secret"
        );
        let mut listed: Vec<String> = std::fs::read_dir(self.public())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        listed.sort();
        assert_eq!(listed, ["escape", "hello.txt"], "a guest created a file");
        assert_eq!(
            std::fs::read_dir(self.granted.path()).unwrap().count(),
            1,
            "a guest created a file beside the granted directory"
        );
    }
}

/// The error a guest gets writing into a read-only grant.
fn is_denied_write(error: &str) -> bool {
    [
        "not permitted",
        "Permission denied",
        "Read-only file system",
    ]
    .iter()
    .any(|e| error.contains(e))
}

#[tokio::test(flavor = "multi_thread")]
async fn file_system_access_is_only_what_is_granted_read_only() {
    let files = Files::new();
    let wisp = Wisp::start();
    wisp.deploy_ok("nofs", artifacts::HOSTILE_COMPONENT, "route=/nofs")
        .await;
    let denied = wisp
        .get("/nofs/fs?path=/etc/passwd&path=secret.txt&path=/&create=/new.txt")
        .await
        .json();
    let denied = denied.as_array().unwrap();
    assert_eq!(denied.len(), 4, "one outcome per attempt: {denied:?}");
    for outcome in denied {
        assert!(
            outcome.get("error").is_some(),
            "without a grant the guest succeeded: {outcome}"
        );
    }

    let query = format!("route=/h&dir={}:/data", files.public().display());
    wisp.deploy_ok("h", artifacts::HOSTILE_COMPONENT, &query)
        .await;
    let escapes = files.escapes();
    let reads: String = escapes.iter().map(|p| format!("&path={p}")).collect();
    let outcomes = wisp
        .get(&format!(
            "/h/fs?path=/data/hello.txt{reads}&write=/data/hello.txt&create=/data/new.txt&create=/data/../created.txt"
        ))
        .await
        .json();
    let outcomes = outcomes.as_array().unwrap();
    assert_eq!(
        outcomes.len(),
        1 + escapes.len() + 3,
        "one outcome per attempt: {outcomes:?}"
    );
    assert_eq!(
        outcomes[0]["read"], "hello from the host",
        "{}",
        outcomes[0]
    );
    let (escaped, changes) = outcomes[1..].split_at(escapes.len());
    for outcome in escaped {
        assert!(
            outcome.get("error").is_some(),
            "escape succeeded: {outcome}"
        );
        assert!(!outcome.to_string().contains("top secret"));
    }
    // Writing the granted file, and creating one inside the grant: refused
    // as writes; creating one beside it: refused as an escape.
    for outcome in changes {
        let error = outcome["error"]
            .as_str()
            .unwrap_or_else(|| panic!("a write to a read-only directory succeeded: {outcome}"));
        if outcome["path"] != "/data/../created.txt" {
            assert!(is_denied_write(error), "{outcome}");
        }
    }
    files.assert_untouched();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cgi_guest_reads_what_is_granted_and_writes_nothing() {
    let files = Files::new();
    let wisp = Wisp::start();
    let query = format!("route=/hc&dir={}:/data", files.public().display());
    wisp.deploy_ok("hc", artifacts::HOSTILE_CGI_MODULE, &query)
        .await;
    let wisp = &wisp;
    let run = |attack: &str, path: &str| {
        let url = format!("/hc/{attack}?path={path}");
        async move {
            let response = wisp.get(&url).await;
            assert_eq!(
                response.status,
                StatusCode::OK,
                "{url}: {}",
                response.text()
            );
            response.text()
        }
    };
    assert_eq!(
        run("read", "/data/hello.txt").await,
        "read: hello from the host\n"
    );
    for escape in files.escapes() {
        let outcome = run("read", &escape).await;
        assert!(outcome.starts_with("error: "), "{escape}: {outcome}");
        assert!(!outcome.contains("top secret"), "{escape}: {outcome}");
    }
    for (attack, path) in [
        ("write", "/data/hello.txt"),
        ("create", "/data/new.txt"),
        ("create", "/data/../created.txt"),
    ] {
        let outcome = run(attack, path).await;
        let error = outcome
            .strip_prefix("error: ")
            .unwrap_or_else(|| panic!("{attack} {path} succeeded: {outcome}"));
        if path != "/data/../created.txt" {
            assert!(is_denied_write(error), "{attack} {path}: {outcome}");
        }
    }
    files.assert_untouched();
}

#[tokio::test(flavor = "multi_thread")]
async fn guests_cannot_open_sockets() {
    // Listeners the guest is pointed at: a connection or a datagram that got
    // through would be waiting here. Loopback delivers both before the
    // guest's `connect` or `send_to` returns, so before its answer.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let wisp = hostile_host("").await;
    for (kind, addr) in [
        ("tcp", tcp.local_addr().unwrap()),
        ("udp", udp.local_addr().unwrap()),
    ] {
        let outcome = wisp
            .get(&format!("/h/socket?kind={kind}&addr={addr}"))
            .await
            .json();
        assert_eq!(outcome["kind"], kind, "{outcome}");
        assert!(
            outcome.get("outcome").is_none(),
            "a {kind} socket got through: {outcome}"
        );
        assert_eq!(
            outcome["error_kind"], "PermissionDenied",
            "the {kind} attempt failed, but not as a denial: {outcome}"
        );
    }
    let accepted = tcp.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the guest connected: {accepted:?}"
    );
    let mut datagram = [0u8; 64];
    let received = udp.recv_from(&mut datagram);
    assert!(
        matches!(&received, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the guest sent a datagram: {received:?}"
    );
    still_serving(&wisp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_is_denied_unless_allowed() {
    let allowed = crate::upstream::Upstream::start("allowed upstream").await;
    let other = crate::upstream::Upstream::start("other upstream").await;
    let wisp = Wisp::start();
    let query = format!("route=/h&allow-outbound=http://{}", allowed.addr);
    wisp.deploy_ok("h", artifacts::HOSTILE_COMPONENT, &query)
        .await;

    let ok = wisp
        .get(&format!("/h/fetch?url=http://{}/x", allowed.addr))
        .await
        .json();
    assert_eq!(ok["status"], 200, "{ok}");
    assert_eq!(ok["body"], "allowed upstream");

    let denied = wisp
        .get(&format!("/h/fetch?url=http://{}/x", other.addr))
        .await
        .json();
    assert!(
        denied["error"]
            .as_str()
            .unwrap_or_default()
            .contains("HttpRequestDenied"),
        "{denied}"
    );
    let denied_https = wisp.get("/h/fetch?url=https://example.com/").await.json();
    assert!(
        denied_https["error"]
            .as_str()
            .unwrap_or_default()
            .contains("HttpRequestDenied"),
        "{denied_https}"
    );
    assert_eq!(other.hits(), 0, "the denied upstream was contacted");
    assert!(
        wisp.log().contains("outbound request denied"),
        "denials are logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_requires_the_token() {
    let wisp = Wisp::start_with(&["--admin-token", "s3cret"]);
    let wasm = std::fs::read(artifacts::HELLO_COMPONENT).unwrap();
    let anonymous = wisp.deploy("hello", wasm.clone(), "route=/hello").await;
    assert_error(
        &anonymous,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "token",
    );
    let url = wisp.admin_url("/v1/functions/hello?route=/hello");
    let wrong = send(
        Method::PUT,
        &url,
        &[("authorization", "Bearer s3creT")],
        wasm.clone().into(),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let right = send(
        Method::PUT,
        &url,
        &[("authorization", "Bearer s3cret")],
        wasm.into(),
    )
    .await;
    assert_eq!(right.status, StatusCode::CREATED, "{}", right.text());
    assert_eq!(
        wisp.admin_get("/v1/functions").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        wisp.admin_get("/healthz").await.status,
        StatusCode::OK,
        "health needs no token"
    );

    let without = tokio::task::block_in_place(|| wisp.cli(&["ls"]));
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("admin token"));
    let with = tokio::task::block_in_place(|| wisp.cli(&["ls", "--token", "s3cret"]));
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(String::from_utf8_lossy(&with.stdout).contains("hello"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_token_can_come_from_the_environment() {
    let wisp = Wisp::start_with_env(&[], &[("WISP_ADMIN_TOKEN", "from-env")]);
    let wasm = std::fs::read(artifacts::HELLO_COMPONENT).unwrap();
    let anonymous = wisp.deploy("hello", wasm.clone(), "route=/hello").await;
    assert_error(
        &anonymous,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "token",
    );
    let listed = send(
        Method::GET,
        &wisp.admin_url("/v1/functions"),
        &[("authorization", "Bearer from-env")],
        Bytes::new(),
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());

    // The CLI takes its token from the same variable.
    let token = [("WISP_ADMIN_TOKEN", "from-env")];
    let deploy = tokio::task::block_in_place(|| {
        wisp.cli_with_env(
            &[
                "deploy",
                "hello",
                artifacts::HELLO_COMPONENT,
                "--route",
                "/hello",
            ],
            &token,
        )
    });
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");
    let ls = tokio::task::block_in_place(|| wisp.cli_with_env(&["ls"], &token));
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    assert!(String::from_utf8_lossy(&ls.stdout).contains("hello"));
    let wrong = tokio::task::block_in_place(|| {
        wisp.cli_with_env(&["ls"], &[("WISP_ADMIN_TOKEN", "not-it")])
    });
    assert!(!wrong.status.success(), "a wrong token was accepted");
}

#[test]
fn serve_refuses_a_public_admin_listener_without_a_token() {
    let output = std::process::Command::new(crate::support::WISP)
        .args([
            "serve",
            "--admin-listen",
            "0.0.0.0:0",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(tempfile::tempdir().unwrap().path())
        .env_remove("WISP_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("beyond loopback without a token"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_an_empty_admin_token_even_on_loopback() {
    let flag: (&[&str], Option<&str>) = (&["--admin-token", ""], None);
    let env: (&[&str], Option<&str>) = (&[], Some(""));
    for (args, token_env) in [flag, env] {
        let data = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(crate::support::WISP);
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .env_remove("WISP_ADMIN_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(value) = token_env {
            command.env("WISP_ADMIN_TOKEN", value);
        }
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "wisp serve started with an empty admin token ({args:?}, env {token_env:?})"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = child.wait_with_output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("the admin token is empty") && stderr.contains("`--admin-token`"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_get_431() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let big = "a".repeat(100 << 10);
    let response = send(
        Method::GET,
        &wisp.url("/hello"),
        &[("x-big", &big)],
        Bytes::new(),
    )
    .await;
    assert_eq!(response.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    still_serving(&wisp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slowloris_client_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let wisp = Wisp::start_with(&["--header-timeout", "1s"]);
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let mut stream = tokio::net::TcpStream::connect(wisp.public).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    // The server must close the connection: read returns (EOF or a 408).
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the connection was held open for 15 s");
    assert!(started.elapsed() < Duration::from_secs(10));
    still_serving(&wisp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_are_rejected_naming_the_setting() {
    let wisp = Wisp::start();
    let wasm = std::fs::read(artifacts::HELLO_COMPONENT).unwrap();
    for (query, setting) in [
        ("route=/a&memory=lots", "memory"),
        ("route=/a&timeout=forever", "timeout"),
        ("route=/a&max-concurrency=-1", "max-concurrency"),
        ("route=/a&dir=/no/such/dir:/d", "dir"),
        ("route=/a&allow-outbound=gopher://x", "allow-outbound"),
        ("route=/a&colour=blue", "colour"),
    ] {
        let response = wisp.deploy("a", wasm.clone(), query).await;
        assert_error(
            &response,
            StatusCode::BAD_REQUEST,
            "invalid-settings",
            setting,
        );
    }
    let cli = tokio::task::block_in_place(|| {
        wisp.cli(&[
            "deploy",
            "a",
            artifacts::HELLO_COMPONENT,
            "--route",
            "/a",
            "--memory",
            "lots",
        ])
    });
    assert!(!cli.status.success());
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(
        stderr.contains("`--memory`") && stderr.contains("MiB"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn effective_settings_are_shown() {
    let wisp = Wisp::start();
    let deploy = tokio::task::block_in_place(|| {
        wisp.cli(&[
            "deploy",
            "h",
            artifacts::HOSTILE_COMPONENT,
            "--route",
            "/h",
            "--timeout",
            "2s",
            "--memory",
            "64MiB",
            "--max-concurrency",
            "8",
            "--env",
            "A=1",
            "--allow-outbound",
            "https://api.example.com",
            "--fuel",
            "5000000",
        ])
    });
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    let info = wisp.admin_get("/v1/functions/h").await.json();
    let settings = &info["versions"][0]["settings"];
    assert_eq!(settings["timeout"], "2s");
    assert_eq!(settings["memory"], "64MiB");
    assert_eq!(settings["max-concurrency"], 8);
    assert_eq!(settings["fuel"], 5000000);
    assert_eq!(settings["env"]["A"], "1");
    assert_eq!(settings["allow-outbound"][0], "https://api.example.com");
    assert_eq!(
        settings["max-request-body"], "100MiB",
        "defaults are shown too"
    );
    let ls = tokio::task::block_in_place(|| wisp.cli(&["ls"]));
    let table = String::from_utf8_lossy(&ls.stdout).into_owned();
    assert!(
        table.contains("64MiB") && table.contains("2s") && table.contains("5000000"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_deployed_with_no_settings_runs_under_the_documented_defaults() {
    let wisp = Wisp::start();
    wisp.deploy_ok("h", artifacts::HOSTILE_COMPONENT, "route=/h")
        .await;
    // The README's defaults, as literals: 128 MiB, 30 s, 256 at once, 100 MiB
    // bodies, no fuel, no env, no dirs, no outbound.
    let documented = serde_json::json!({
        "timeout": "30s",
        "memory": "128MiB",
        "max-concurrency": 256,
        "max-request-body": "100MiB",
        "max-response-body": "100MiB",
    });
    let info = wisp.admin_get("/v1/functions/h").await.json();
    assert_eq!(info["versions"][0]["settings"], documented, "{info}");
    let ls = tokio::task::block_in_place(|| wisp.cli(&["ls", "--json"]));
    let listed: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(listed[0]["versions"][0]["settings"], documented, "{listed}");
    // And what is shown is what is enforced.
    let response = wisp.get("/h/alloc").await;
    assert_limit(
        &response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "memory",
        "memory limit of 128MiB",
    );
}
