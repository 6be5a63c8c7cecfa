//! WASI 0.3: `wasi:http/service` components (built with wit-bindgen's async
//! bindings, `guests/hello3` and `guests/service3`) deploy and serve next to
//! 0.2 ones, under the same contract: a fresh instance per request, bodies
//! streamed both ways, every deadline enforced — also on the guest's work
//! after its response.

use crate::support::{Wisp, accept, cron_runs, eventually, finished, send};
use bytes::Bytes;
use futures_util::future::join_all;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};
use wisp_test_artifacts as artifacts;

/// A host serving the 0.3 contract guest at `/s` with `query`, and the 0.2
/// hello world at `/hello`.
async fn service_host(query: &str) -> Wisp {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok(
        "s",
        artifacts::SERVICE3_COMPONENT,
        &format!("route=/s&{query}"),
    )
    .await;
    wisp
}

/// True once function `s` has no request in flight, within `limit`.
async fn nothing_in_flight(wisp: &Wisp, limit: Duration) -> bool {
    eventually(limit, async || {
        wisp.metric("wisp_in_flight_requests", &[("function", "s")])
            .await
            == 0.0
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_0_3_component_deploys_serves_and_shows_its_abi() {
    let wisp = Wisp::start();
    let report = wisp
        .deploy_ok("hello3", artifacts::HELLO3_COMPONENT, "route=/hello3")
        .await;
    assert_eq!(report["abi"], "wasi-http-0.3", "{report}");
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let response = wisp.get("/hello3").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.text(), "Hello, WASI 0.3!\n");
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");
    let info = wisp.admin_get("/v1/functions/hello3").await.json();
    assert_eq!(info["versions"][0]["abi"], "wasi-http-0.3", "{info}");
    let listing = wisp.cli(&["ls"]);
    assert!(
        crate::support::stdout(&listing).contains("wasi-http-0.3"),
        "{}",
        crate::support::stdout(&listing)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_gets_a_fresh_instance_also_under_concurrency() {
    let wisp = service_host("max-concurrency=64").await;
    for _ in 0..10 {
        assert_eq!(wisp.get("/s/count").await.text(), "1");
        // Sequential requests find the sandbox prepared after the last one
        // (a fresh instance too: made ahead, used once).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let used = wisp.metric("wisp_prepared_sandboxes_used_total", &[]).await;
    assert!(used >= 5.0, "0.3 sandboxes are prepared ahead: {used} used");
    let answers = join_all((0..64).map(|_| wisp.get("/s/count"))).await;
    for response in answers {
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.text(), "1");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_and_response_bodies_stream_through_the_guest() {
    let wisp = service_host("").await;
    let body: Bytes = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
    let url = wisp.url("/s/echo");
    let response = send(Method::POST, &url, &[], body.clone()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.body.len(), body.len());
    assert!(response.body == body, "the echoed body differs");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_never_ends_its_body_is_cut_off_at_the_deadline() {
    let wisp = service_host("timeout=1s").await;
    let client: Client<_, http_body_util::Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    let response = client
        .get(wisp.url("/s/forever").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the head was sent");
    let body = tokio::time::timeout(Duration::from_secs(20), response.into_body().collect())
        .await
        .expect("the body ends within the deadline and slack");
    assert!(
        body.is_err(),
        "a body cut off by the deadline must end in an error, not look whole"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(wisp.get("/hello").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_loop_is_stopped_and_a_trap_or_an_error_code_is_a_500() {
    let wisp = service_host("timeout=1s").await;
    let started = Instant::now();
    let response = wisp.get("/s/spin").await;
    assert_eq!(
        response.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        response.text()
    );
    assert_eq!(response.json()["limit"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(15));
    let trapped = wisp.get("/s/trap").await;
    assert_eq!(
        trapped.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        trapped.text()
    );
    let refused = wisp.get("/s/error").await;
    assert_eq!(
        refused.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        refused.text()
    );
    assert_eq!(refused.json()["kind"], "guest-error");
    assert!(
        refused.text().contains("the guest said no"),
        "{}",
        refused.text()
    );
    assert_eq!(wisp.get("/s/count").await.text(), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn work_after_the_response_keeps_the_instance_until_the_deadline() {
    let wisp = service_host("timeout=2s").await;
    let started = Instant::now();
    let response = wisp.get("/s/linger").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "answered; still working");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the response waited for the guest's later work"
    );
    // The guest still runs (its instance is not torn down under it) …
    let in_flight = wisp
        .metric("wisp_in_flight_requests", &[("function", "s")])
        .await;
    assert_eq!(in_flight, 1.0, "the lingering guest counts as running");
    // … until its deadline ends it.
    assert!(
        nothing_in_flight(&wisp, Duration::from_secs(15)).await,
        "the lingering guest was never stopped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_fuel_and_body_limits_hold_for_0_3() {
    let wisp =
        service_host("memory=32MiB&fuel=50000000&max-request-body=1KiB&max-response-body=1KiB")
            .await;
    let bomb = wisp.get("/s/alloc").await;
    assert_eq!(
        bomb.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        bomb.text()
    );
    assert_eq!(bomb.json()["limit"], "memory", "{}", bomb.text());
    let spin = wisp.get("/s/spin").await;
    assert_eq!(spin.json()["limit"], "fuel", "{}", spin.text());
    let too_big = send(
        Method::POST,
        &wisp.url("/s/echo"),
        &[],
        Bytes::from(vec![7u8; 4096]),
    )
    .await;
    assert_eq!(
        too_big.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        too_big.text()
    );
    // The echoed body is the response: 1 KiB goes through, more never does.
    let fits = send(
        Method::POST,
        &wisp.url("/s/echo"),
        &[],
        Bytes::from(vec![7u8; 1000]),
    )
    .await;
    assert_eq!(fits.status, StatusCode::OK);
    assert_eq!(fits.body.len(), 1000);
    assert_eq!(wisp.get("/s/count").await.text(), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_0_3_client_reaches_only_the_allow_list() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let allowed = format!("http://{}", wisp.public);
    wisp.deploy_ok(
        "s",
        artifacts::SERVICE3_COMPONENT,
        &format!("route=/s&allow-outbound={allowed}"),
    )
    .await;
    let reached = wisp
        .get(&format!("/s/fetch?http://{}/hello", wisp.public))
        .await;
    assert_eq!(reached.text(), "status 200", "an allowed origin is reached");
    let admin = wisp.admin_url("/v1/functions");
    let admin = admin.trim_start_matches("http://");
    let refused = wisp.get(&format!("/s/fetch?http://{admin}")).await;
    assert!(
        refused.text().starts_with("denied: ") && refused.text().contains("Denied"),
        "the admin API is not on the allow-list: {}",
        refused.text()
    );
    assert!(
        wisp.log().contains("outbound request denied"),
        "the denial is logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trailers_pass_through_a_0_3_guest() {
    use http_body_util::StreamBody;
    let wisp = service_host("").await;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc123".parse().unwrap());
    let frames = vec![
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(
            b"part one, ",
        ))),
        Ok(http_body::Frame::data(Bytes::from_static(b"part two"))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    // HTTP/2 (h2c): trailers travel both ways without negotiation.
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = http::Request::post(wisp.url("/s/echo"))
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let collected = response.into_body().collect().await.unwrap();
    let echoed_trailers = collected.trailers().cloned();
    assert_eq!(collected.to_bytes(), "part one, part two");
    let echoed_trailers = echoed_trailers.expect("the request's trailers came back");
    assert_eq!(echoed_trailers["x-checksum"], "abc123");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_0_3_guest_is_metered_and_its_output_logged() {
    let wisp = service_host("").await;
    for _ in 0..5 {
        assert_eq!(wisp.get("/s/count").await.status, StatusCode::OK);
    }
    assert_eq!(
        wisp.get("/s/trap").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let usage = wisp.usage("s", 6).await;
    assert_eq!(usage["requests"], 6, "{usage}");
    for field in ["wall_seconds", "cpu_seconds", "memory_gb_seconds"] {
        assert!(usage[field].as_f64().unwrap() > 0.0, "{field}: {usage}");
    }
    let statuses = wisp
        .metric(
            "wisp_requests_total",
            &[("function", "s"), ("status_class", "2xx")],
        )
        .await;
    assert_eq!(statuses, 5.0);
    let logs = wisp
        .admin_get("/v1/functions/s/logs?limit=1000")
        .await
        .text();
    assert!(
        logs.contains("the guest trapped on purpose"),
        "the guest's stderr reaches its logs: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_0_3_guest_imports_key_value_config_and_secrets() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "state",
        artifacts::STATE3_COMPONENT,
        "route=/state&config=greeting%3Dhi",
    )
    .await;
    assert_eq!(wisp.get("/state").await.text(), "hits=1 greeting=hi");
    // Fresh instances, lasting state: the bucket keeps counting.
    assert_eq!(wisp.get("/state").await.text(), "hits=2 greeting=hi");
    let stored = wisp.admin_get("/v1/functions/state/kv/hits").await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text());
    // A secret reaches a 0.3 guest through `wasi:config` too, shadowing the
    // config value of the same name.
    let set = wisp.cli_with_stdin(&["secret", "set", "state", "greeting"], b"s3cret-3\n");
    assert!(set.status.success(), "{set:?}");
    assert_eq!(wisp.get("/state").await.text(), "hits=3 greeting=s3cret-3");
}

#[tokio::test(flavor = "multi_thread")]
async fn work_after_the_response_holds_the_function_s_concurrency_slot() {
    let wisp = service_host("max-concurrency=1&timeout=3s").await;
    assert_eq!(wisp.get("/s/linger").await.status, StatusCode::OK);
    // The lingering instance still runs: the one slot is taken, so the
    // next request waits its second for it and is turned away.
    let busy = wisp.get("/s/count").await;
    assert_eq!(
        busy.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        busy.text()
    );
    assert_eq!(busy.json()["limit"], "concurrency", "{}", busy.text());
    assert!(
        nothing_in_flight(&wisp, Duration::from_secs(15)).await,
        "the lingering guest was never stopped"
    );
    assert_eq!(wisp.get("/s/count").await.text(), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_making_handles_without_end_is_stopped_and_the_host_stays_small() {
    let wisp = service_host("timeout=10s").await;
    assert_eq!(wisp.get("/s/count").await.text(), "1");
    let before = wisp.rss_bytes();
    let started = Instant::now();
    let hoarder = wisp.get("/s/handles").await;
    let took = started.elapsed();
    assert_eq!(
        hoarder.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        hoarder.text()
    );
    assert!(
        took < Duration::from_secs(8),
        "the handle limit, not the deadline, stops it: {took:?}"
    );
    let grown = wisp.rss_bytes().saturating_sub(before);
    assert!(
        grown < 128 << 20,
        "a guest's handles grew the host by {} MiB",
        grown >> 20
    );
    assert_eq!(wisp.get("/s/count").await.text(), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn writers_dropped_at_once_end_the_response_cleanly() {
    let wisp = service_host("").await;
    let empty = wisp.get("/s/dropped").await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text());
    assert!(empty.body.is_empty());
    // The request body is dropped unread: the response is still whole.
    let unread = send(
        Method::POST,
        &wisp.url("/s/dropped"),
        &[],
        Bytes::from(vec![1u8; 1 << 20]),
    )
    .await;
    assert_eq!(unread.status, StatusCode::OK, "{}", unread.text());
    assert!(
        nothing_in_flight(&wisp, Duration::from_secs(10)).await,
        "an instance whose handles were dropped was never torn down"
    );
    assert_eq!(wisp.get("/s/count").await.text(), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_readers_of_huge_0_3_output_hold_bounded_memory_and_are_cut_off() {
    let wisp = Wisp::start_with(&["--write-timeout", "2s"]);
    wisp.deploy_ok(
        "big",
        artifacts::SERVICE3_COMPONENT,
        "route=/big&timeout=60s",
    )
    .await;
    crate::hardening::slow_readers_are_cut_off(&wisp, "big", |kib| format!("/big/big?{kib}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn async_calls_cron_and_chained_calls_run_0_3_guests() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "s",
        artifacts::SERVICE3_COMPONENT,
        "route=/s&async=on&allow-outbound=http://state.wisp.internal",
    )
    .await;
    let id = accept(&wisp, "/s/count", &[], "").await;
    let call = finished(&wisp, &id, Duration::from_secs(20)).await;
    assert_eq!(call["state"], "done", "{call}");
    assert_eq!(call["response"]["body"], "1", "{call}");

    // A cron tick runs the 0.3 state guest, which counts its runs.
    wisp.deploy_ok(
        "state",
        artifacts::STATE3_COMPONENT,
        "route=/state&cron=*%20*%20*%20*%20*%20*",
    )
    .await;
    assert!(
        eventually(Duration::from_secs(15), async || {
            cron_runs(&wisp.log(), "state").len() >= 2
        })
        .await,
        "fewer than 2 ticks in 15 s:\n{}",
        wisp.log()
    );
    // A 0.3 caller chains to a 0.3 callee in-process.
    let chained = wisp.get("/s/fetch?http://state.wisp.internal/").await;
    assert_eq!(chained.text(), "status 200");
    let runs = wisp
        .metric(
            "wisp_trigger_runs_total",
            &[("function", "state"), ("trigger", "chain")],
        )
        .await;
    assert_eq!(runs, 1.0);
    let hits = wisp.get("/state").await.text();
    let counted: u64 = hits
        .strip_prefix("hits=")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{hits}"));
    assert!(counted >= 4, "ticks, the chained call and this one: {hits}");
}

/// Random requests through the 0.3 path (fresh and reused instances): a
/// random method, random headers, a body of random size split into random
/// frames, and sometimes trailers, all echoed back whole by the guest; a
/// trap or error code between them (in fresh instances) must not disturb
/// the others. Seeded
/// (`WISP_FUZZ_SEED` replays a failure; `WISP_FUZZ_REQUESTS`, default 96,
/// runs longer).
#[tokio::test(flavor = "multi_thread")]
async fn random_requests_stream_through_0_3_guests_whole() {
    use http_body_util::StreamBody;
    let seed = std::env::var("WISP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let requests: usize = std::env::var("WISP_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(96);
    let mut rng = fastrand::Rng::with_seed(seed);
    let wisp = service_host("").await;
    wisp.deploy_ok(
        "r",
        artifacts::SERVICE3_COMPONENT,
        "route=/r&reuse=50&reuse-concurrency=4",
    )
    .await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    const METHODS: [&str; 5] = ["POST", "PUT", "PATCH", "DELETE", "X-CUSTOM"];
    let mut batch = Vec::new();
    for i in 0..requests {
        let route = if rng.bool() { "/s" } else { "/r" };
        // Traps and error codes only in fresh instances: in a reused one,
        // a trap also fails the requests sharing it (as documented).
        let case = if route == "/s" { rng.u8(..20) } else { 2 };
        let path = match case {
            0 => format!("{route}/trap"),
            1 => format!("{route}/error"),
            _ => format!("{route}/echo"),
        };
        let size = match rng.u8(..4) {
            0 => 0,
            1 => rng.usize(..64),
            2 => rng.usize(..8192),
            _ => rng.usize(..(256 << 10)),
        };
        let body: Vec<u8> = (0..size).map(|_| rng.u8(..)).collect();
        let mut frames = Vec::new();
        let mut rest = &body[..];
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rng.usize(1..=rest.len().min(70_000)));
            frames.push(Ok::<_, std::convert::Infallible>(http_body::Frame::data(
                Bytes::copy_from_slice(chunk),
            )));
            rest = tail;
        }
        let trailers = rng.bool().then(|| {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-sum", format!("{}", body.len()).parse().unwrap());
            trailers
        });
        if let Some(trailers) = &trailers {
            frames.push(Ok(http_body::Frame::trailers(trailers.clone())));
        }
        let mut request = http::Request::builder()
            .method(METHODS[rng.usize(..METHODS.len())])
            .uri(wisp.url(&path));
        for n in 0..rng.usize(..6) {
            let value: String = (0..rng.usize(..40))
                .map(|_| char::from(rng.u8(b' '..=b'~')))
                .collect();
            request = request.header(format!("x-random-{n}"), value.trim());
        }
        let request = request
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .unwrap();
        let client = client.clone();
        batch.push(async move {
            let context = format!("seed {seed}, request {i}: {path}, {size} bytes");
            let response = client.request(request).await.unwrap_or_else(|e| {
                panic!("{context}: {e}");
            });
            let status = response.status();
            let collected = response.into_body().collect().await;
            match case {
                0 | 1 => assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{context}"),
                _ => {
                    assert_eq!(status, StatusCode::OK, "{context}");
                    let collected = collected.unwrap_or_else(|e| panic!("{context}: {e}"));
                    let echoed_trailers = collected.trailers().cloned();
                    assert!(collected.to_bytes() == body, "{context}: the body differs");
                    if let Some(trailers) = trailers {
                        assert_eq!(
                            echoed_trailers.as_ref().map(|t| &t["x-sum"]),
                            Some(&trailers["x-sum"]),
                            "{context}"
                        );
                    }
                }
            }
        });
        if batch.len() == 8 {
            join_all(batch.drain(..)).await;
        }
    }
    join_all(batch).await;
    assert_eq!(wisp.get("/s/count").await.text(), "1", "seed {seed}");
}
