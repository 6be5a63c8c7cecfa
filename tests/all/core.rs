//! The host core end to end: deploy and invoke each guest over real HTTP,
//! both ABIs, redeploys under load, deletes, rejections, restarts, HTTP/2.

use crate::support::{Wisp, eventually, guest, required_guest, send};
use bytes::Bytes;
use futures_util::future::join_all;
use http::{Method, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use wisp_test_artifacts as artifacts;

#[tokio::test(flavor = "multi_thread")]
async fn hello_component_serves_its_greeting() {
    let wisp = Wisp::start();
    let report = wisp
        .deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    assert_eq!(report["abi"], "wasi-http");
    assert_eq!(report["version"], 1);
    assert_eq!(report["compiled"], true);
    for path in ["/hello", "/hello/", "/hello/deeper?x=1"] {
        let response = wisp.get(path).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert_eq!(response.text(), "Hello, world!\n");
        assert_eq!(response.header("x-wisp-version"), Some("1"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_streams_the_body_and_reports_the_request() {
    let wisp = Wisp::start();
    wisp.deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo")
        .await;
    let response = send(
        Method::POST,
        &wisp.url("/echo/items?colour=blue"),
        &[("x-custom", "value-1")],
        Bytes::from_static(b"ping body"),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "ping body");
    assert_eq!(response.header("x-echo-method"), Some("POST"));
    assert_eq!(
        response.header("x-echo-path"),
        Some("/echo/items?colour=blue")
    );
    assert_eq!(response.header("x-echo-header-x-custom"), Some("value-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mb_echo_streams_without_buffering_in_the_host() {
    use http_body_util::{BodyExt, StreamBody};
    let wisp = Wisp::start();
    wisp.deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo")
        .await;
    // Warm up so the baseline includes a used instance slot.
    assert_eq!(wisp.get("/echo").await.status, StatusCode::OK);
    let baseline = wisp.peak_rss_bytes();

    const CHUNK: usize = 64 << 10;
    const CHUNKS: usize = 800; // 50 MiB
    let frames = (0..CHUNKS).map(|i| {
        let byte = (i % 251) as u8;
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![byte; CHUNK])))
    });
    let body = StreamBody::new(futures_util::stream::iter(frames));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let request = http::Request::post(wisp.url("/echo")).body(body).unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = 0usize;
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            for (offset, byte) in data.iter().enumerate() {
                let index = (received + offset) / CHUNK;
                assert_eq!(
                    *byte,
                    (index % 251) as u8,
                    "byte {} corrupted",
                    received + offset
                );
            }
            received += data.len();
        }
    }
    assert_eq!(received, CHUNK * CHUNKS);
    let growth = wisp.peak_rss_bytes().saturating_sub(baseline);
    assert!(
        growth < 25 << 20,
        "peak RSS grew by {} MiB while echoing 50 MiB: the host buffered the body",
        growth >> 20
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cgi_guest_gets_meta_variables_and_stdin() {
    let wisp = Wisp::start();
    let report = wisp
        .deploy_ok("cgi", artifacts::CGI_HELLO_MODULE, "route=/cgi")
        .await;
    assert_eq!(report["abi"], "cgi");
    let response = send(
        Method::POST,
        &wisp.url("/cgi/sub/path?a=1&b=2"),
        &[],
        Bytes::from_static(b"form-data"),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert_eq!(response.header("x-cgi-method"), Some("POST"));
    let text = response.text();
    assert!(text.starts_with("Hello from CGI!\n"), "{text}");
    assert!(text.contains("path_info=/sub/path\n"), "{text}");
    assert!(text.contains("query=a=1&b=2\n"), "{text}");
    assert!(text.contains("body=form-data\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn c_cgi_guest_reads_query_and_post_body() {
    let module = required_guest(artifacts::CGI_C_MODULE);
    let wisp = Wisp::start();
    wisp.deploy_ok("c", module, "route=/c").await;
    let response = send(
        Method::POST,
        &wisp.url("/c?name=Ada&x=1"),
        &[],
        Bytes::from_static(b"payload=42"),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.header("x-written-in"), Some("C"));
    let text = response.text();
    assert!(text.starts_with("Hello, Ada, from C!\n"), "{text}");
    assert!(text.contains("query=name=Ada&x=1\n"), "{text}");
    assert!(text.contains("body_bytes=10\nbody=payload=42\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_state_survives_between_requests_even_concurrently() {
    let wisp = Wisp::start();
    wisp.deploy_ok("counter", artifacts::COUNTER_COMPONENT, "route=/counter")
        .await;
    for _ in 0..20 {
        assert_eq!(wisp.get("/counter").await.text(), "1");
    }
    let answers = join_all((0..100).map(|_| wisp.get("/counter"))).await;
    for response in answers {
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.text(), "1");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redeploy_under_load_drops_nothing() {
    let wisp = Arc::new(Wisp::start());
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (wisp, stop, served) = (wisp.clone(), stop.clone(), served.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let response = wisp.get("/app").await;
                if response.status != StatusCode::OK {
                    failures.push(format!("{}: {}", response.status, response.text()));
                }
                served.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    // A slow request started on v2 must finish on v2 after v3, v4 and v5 are
    // deployed. Its head comes first and names the version that took it.
    wisp.deploy_ok("app", artifacts::SLEEP_COMPONENT, "route=/app")
        .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    // Long enough that a loaded machine still redeploys three times
    // before it ends; the in-flight gauge below is what proves the overlap.
    let slow = client
        .get(wisp.url("/app?ms=12000&head=first").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(slow.status(), StatusCode::OK);
    assert_eq!(slow.headers()["x-wisp-version"], "2");
    for (i, wasm) in [
        artifacts::COUNTER_COMPONENT,
        artifacts::HELLO_COMPONENT,
        artifacts::COUNTER_COMPONENT,
    ]
    .into_iter()
    .enumerate()
    {
        let report = wisp.deploy_ok("app", wasm, "route=/app").await;
        assert_eq!(report["version"], i + 3);
        let after = wisp.get("/app").await;
        assert_eq!(
            after.header("x-wisp-version"),
            Some((i + 3).to_string().as_str())
        );
    }
    // The redeploys happened while the v2 request ran: its body, which
    // comes when its guest ends, has not come yet.
    use http_body_util::BodyExt;
    let mut slow = slow.into_body();
    let unfinished = tokio::time::timeout(Duration::from_millis(1), slow.frame()).await;
    assert!(
        unfinished.is_err(),
        "the slow v2 request ended before the three redeploys did"
    );
    let body = slow.collect().await.unwrap().to_bytes();
    assert_eq!(
        &body[..],
        b"slept 12000 ms\n",
        "the in-flight request finished on its own version"
    );
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let failures = worker.await.unwrap();
        assert!(
            failures.is_empty(),
            "requests failed during redeploys: {failures:?}"
        );
    }
    assert!(served.load(Ordering::Relaxed) > 10);
    assert_eq!(
        wisp.get("/app").await.text(),
        "1",
        "the last deploy (counter) serves"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_the_function() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let removed = send(
        Method::DELETE,
        &wisp.admin_url("/v1/functions/hello"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK);
    let gone = wisp.get("/hello").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        wisp.admin_get("/v1/functions/hello").await.status,
        StatusCode::NOT_FOUND
    );
    let again = send(
        Method::DELETE,
        &wisp.admin_url("/v1/functions/hello"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.error().contains("`hello`"), "{}", again.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_get_a_json_404() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    for path in ["/", "/helloworld", "/other/hello"] {
        let response = wisp.get(path).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert!(response.error().contains(path), "{}", response.text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn longest_route_prefix_wins() {
    let wisp = Wisp::start();
    wisp.deploy_ok("root", artifacts::COUNTER_COMPONENT, "route=/")
        .await;
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    assert_eq!(wisp.get("/hello/x").await.text(), "Hello, world!\n");
    assert_eq!(wisp.get("/anything").await.text(), "1");
}

/// Every rejected upload gets a clear JSON error and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn bad_uploads_are_rejected_and_change_nothing() {
    let wisp = Wisp::start_with(&["--max-upload", "512KiB"]);
    wisp.deploy_ok("keep", artifacts::HELLO_COMPONENT, "route=/keep")
        .await;
    let before = wisp.admin_get("/v1/functions").await.json();
    let files_before = crate::support::files_under(&wisp.data_dir());

    let no_handler = wat::parse_str("(component)").unwrap();
    let no_start = wat::parse_str(r#"(module (func (export "main")))"#).unwrap();
    let bad_import = wat::parse_str(
        r#"(module (import "acme" "launch_rockets" (func)) (func (export "_start")) (memory (export "memory") 1))"#,
    )
    .unwrap();
    let big = vec![0u8; 4 << 20];
    /// Name, upload, query, expected status, kind, and a phrase of the message.
    type Case = (
        &'static str,
        Vec<u8>,
        &'static str,
        StatusCode,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "text",
            b"hello, I am not wasm".to_vec(),
            "route=/x",
            StatusCode::BAD_REQUEST,
            "not-wasm",
            "not WebAssembly",
        ),
        (
            "broken",
            guest(artifacts::HELLO_COMPONENT)[..1000].to_vec(),
            "route=/x",
            StatusCode::BAD_REQUEST,
            "invalid-wasm",
            "not valid WebAssembly",
        ),
        (
            "nohandler",
            no_handler,
            "route=/x",
            StatusCode::BAD_REQUEST,
            "missing-export",
            "wasi:http/incoming-handler",
        ),
        (
            "nostart",
            no_start,
            "route=/x",
            StatusCode::BAD_REQUEST,
            "missing-export",
            "_start",
        ),
        (
            "import",
            bad_import,
            "route=/x",
            StatusCode::BAD_REQUEST,
            "unsupported-import",
            "acme::launch_rockets",
        ),
        (
            "huge",
            big,
            "route=/x",
            StatusCode::BAD_REQUEST,
            "upload-too-large",
            "512KiB",
        ),
        (
            "Bad Name",
            guest(artifacts::HELLO_COMPONENT),
            "route=/x",
            StatusCode::BAD_REQUEST,
            "invalid-name",
            "invalid function name",
        ),
        (
            "taken",
            guest(artifacts::HELLO_COMPONENT),
            "route=/keep",
            StatusCode::CONFLICT,
            "route-taken",
            "`keep`",
        ),
        (
            "badroute",
            guest(artifacts::HELLO_COMPONENT),
            "route=nope",
            StatusCode::BAD_REQUEST,
            "invalid-settings",
            "route",
        ),
        (
            "noroute",
            guest(artifacts::HELLO_COMPONENT),
            "",
            StatusCode::BAD_REQUEST,
            "invalid-settings",
            "route",
        ),
        (
            "keep",
            b"not wasm either".to_vec(),
            "route=/keep",
            StatusCode::BAD_REQUEST,
            "not-wasm",
            "not WebAssembly",
        ),
    ];
    for (name, wasm, query, status, kind, needle) in cases {
        let name_in_url = name.replace(' ', "%20");
        let response = wisp.deploy(&name_in_url, wasm, query).await;
        assert_eq!(response.status, status, "{name}: {}", response.text());
        let body = response.json();
        assert_eq!(body["kind"], kind, "{name}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{name}: `{message}` should mention `{needle}`"
        );
    }
    assert_eq!(wisp.admin_get("/v1/functions").await.json(), before);
    assert_eq!(wisp.get("/keep").await.text(), "Hello, world!\n");
    let files_after = crate::support::files_under(&wisp.data_dir());
    assert_eq!(
        files_after, files_before,
        "a rejected upload left files behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_serves_everything_without_recompiling() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("cgi", artifacts::CGI_HELLO_MODULE, "route=/cgi")
        .await;
    assert_eq!(wisp.admin_get("/healthz").await.json()["compilations"], 2);
    let wisp = wisp.restart();
    let health = wisp.admin_get("/healthz").await.json();
    assert_eq!(
        health["compilations"], 0,
        "a restart must only load artifacts"
    );
    assert_eq!(health["functions"], 2);
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");
    assert!(wisp.get("/cgi").await.text().starts_with("Hello from CGI!"));
    assert_eq!(wisp.admin_get("/healthz").await.json()["compilations"], 0);
    assert_eq!(wisp.metric("wisp_code_loads_total", &[]).await, 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_cleartext_is_served() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("cgi", artifacts::CGI_HELLO_MODULE, "route=/cgi")
        .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<Bytes>>();
    for (path, expected) in [("/hello", "Hello, world!\n"), ("/cgi", "Hello from CGI!\n")] {
        let request = http::Request::get(wisp.url(path))
            .body(http_body_util::Full::default())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
        use http_body_util::BodyExt;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).starts_with(expected));
    }
}

/// Starts a 3 s request, stops the server with `stop` (a signal) once the
/// request is running, and checks that the server exits 0 and the request
/// still completes.
async fn a_signal_finishes_requests_in_flight(stop: fn(&mut Wisp) -> std::process::ExitStatus) {
    let mut wisp = Wisp::start();
    wisp.deploy_ok("sleep", artifacts::SLEEP_COMPONENT, "route=/sleep")
        .await;
    let url = wisp.url("/sleep?ms=3000");
    let in_flight = tokio::spawn(async move { send(Method::GET, &url, &[], Bytes::new()).await });
    assert!(
        eventually(Duration::from_secs(10), async || {
            wisp.metric("wisp_in_flight_requests", &[("function", "sleep")])
                .await
                >= 1.0
        })
        .await,
        "the request never started"
    );
    let status = tokio::task::block_in_place(|| stop(&mut wisp));
    assert!(status.success(), "exit status {status}");
    let response = in_flight.await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "slept 3000 ms\n");
    assert!(wisp.log().contains("finishing requests in flight"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_requests_in_flight_then_exits_zero() {
    a_signal_finishes_requests_in_flight(Wisp::terminate).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_finishes_requests_in_flight_then_exits_zero() {
    a_signal_finishes_requests_in_flight(Wisp::interrupt).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_deploys_lists_invokes_and_removes() {
    let wisp = Wisp::start();
    let deploy = tokio::task::block_in_place(|| {
        wisp.cli(&[
            "deploy",
            "hello",
            artifacts::HELLO_COMPONENT,
            "--route",
            "/hello",
        ])
    });
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    assert!(String::from_utf8_lossy(&deploy.stdout).contains("deployed hello v1"));
    let ls = tokio::task::block_in_place(|| wisp.cli(&["ls"]));
    let table = String::from_utf8_lossy(&ls.stdout).into_owned();
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    assert!(
        table.contains("hello") && table.contains("/hello") && table.contains("v1"),
        "{table}"
    );
    let invoke = tokio::task::block_in_place(|| wisp.cli(&["invoke", "hello", "/anything"]));
    assert_eq!(String::from_utf8_lossy(&invoke.stdout), "Hello, world!\n");
    let rm = tokio::task::block_in_place(|| wisp.cli(&["rm", "hello"]));
    assert!(rm.status.success());
    assert_eq!(wisp.get("/hello").await.status, StatusCode::NOT_FOUND);
    let rm_again = tokio::task::block_in_place(|| wisp.cli(&["rm", "hello"]));
    assert!(!rm_again.status.success());
    assert!(String::from_utf8_lossy(&rm_again.stderr).contains("no function named `hello`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_reports_an_unreachable_host_clearly() {
    let output = std::process::Command::new(crate::support::WISP)
        // Port 0 can never be listened on: a connection to it is always refused.
        .args(["ls", "--admin", "http://127.0.0.1:0"])
        .env_remove("WISP_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach the wisp admin API"),
        "{stderr}"
    );
}
