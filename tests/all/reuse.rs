//! Opt-in instance reuse for WASI 0.3 components (`reuse`,
//! `reuse-concurrency`, `reuse-idle`): one instance serves many requests,
//! its memory surviving between them, until its count, an idle spell, a
//! trap or a deadline ends it; the next request then gets a new one.

use crate::support::{Wisp, stdout};
use futures_util::future::join_all;
use http::StatusCode;
use std::time::Duration;
use wisp_test_artifacts as artifacts;

/// The counts `n` sequential requests of `/s/count` answer.
async fn counts(wisp: &Wisp, n: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let response = wisp.get("/s/count").await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        seen.push(response.text().parse().unwrap());
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_serves_its_count_of_requests_then_a_new_one_takes_over() {
    let wisp = Wisp::start();
    let report = wisp
        .deploy_ok(
            "s",
            artifacts::SERVICE3_COMPONENT,
            "route=/s&reuse=3&reuse-idle=500ms",
        )
        .await;
    assert_eq!(report["settings"]["reuse"], 3, "{report}");
    // The guest's memory survives between the requests of one instance.
    assert_eq!(counts(&wisp, 7).await, [1, 2, 3, 1, 2, 3, 1]);
    // Idle past `reuse-idle`, the instance is dropped.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(counts(&wisp, 2).await, [1, 2]);
    let listed = wisp.cli(&["ls"]);
    assert!(
        stdout(&listed).contains(
            "s reuses each instance for up to 3 requests (1 at once, dropped after 500ms idle)"
        ),
        "{}",
        stdout(&listed)
    );
    let usage = wisp.admin_get("/v1/functions/s/usage").await.json();
    assert_eq!(usage["usage"]["requests"], 9, "{usage}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_or_a_deadline_ends_the_instance_and_the_next_request_gets_a_new_one() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "s",
        artifacts::SERVICE3_COMPONENT,
        "route=/s&reuse=100&timeout=1s",
    )
    .await;
    assert_eq!(counts(&wisp, 2).await, [1, 2]);
    let trapped = wisp.get("/s/trap").await;
    assert_eq!(trapped.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(counts(&wisp, 2).await, [1, 2], "a new instance");
    let spun = wisp.get("/s/spin").await;
    assert_eq!(spun.status, StatusCode::GATEWAY_TIMEOUT, "{}", spun.text());
    assert_eq!(spun.json()["limit"], "timeout");
    assert_eq!(counts(&wisp, 1).await, [1], "a new instance");
    // A guest error answers that request alone; the instance goes on.
    let refused = wisp.get("/s/error").await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(refused.json()["kind"], "guest-error", "{}", refused.text());
    assert_eq!(counts(&wisp, 1).await, [2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_share_instances_within_the_host_s_slots() {
    let wisp = Wisp::start_with(&["--max-instances", "4"]);
    wisp.deploy_ok(
        "s",
        artifacts::SERVICE3_COMPONENT,
        "route=/s&reuse=1000&reuse-concurrency=8&reuse-idle=30s",
    )
    .await;
    let mut answers = Vec::new();
    for _wave in 0..2 {
        let responses = join_all((0..32).map(|_| wisp.get("/s/count"))).await;
        for response in responses {
            assert_eq!(response.status, StatusCode::OK, "{}", response.text());
            answers.push(response.text().parse::<u64>().unwrap());
        }
    }
    // At most four instances (the host's slots), so at most four requests
    // were any instance's first.
    let firsts = answers.iter().filter(|&&n| n == 1).count();
    assert!(firsts <= 4, "{firsts} instances: {answers:?}");
    // And instances were shared: some request was not its instance's first.
    assert!(answers.iter().any(|&n| n > 1), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reuse_is_refused_for_anything_but_a_0_3_component() {
    let wisp = Wisp::start();
    for (name, binary) in [
        ("p2", artifacts::HELLO_COMPONENT),
        ("cgi", artifacts::CGI_HELLO_MODULE),
    ] {
        let refused = wisp
            .deploy(
                name,
                std::fs::read(binary).unwrap(),
                &format!("route=/{name}&reuse=10"),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{}",
            refused.text()
        );
        assert!(
            refused.error().contains("`reuse`") && refused.error().contains("WASI 0.3"),
            "{}",
            refused.error()
        );
        let missing = wisp.admin_get(&format!("/v1/functions/{name}")).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }
    let bad = wisp
        .deploy(
            "s",
            std::fs::read(artifacts::SERVICE3_COMPONENT).unwrap(),
            "route=/s&reuse=0",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error().contains("`off`"), "{}", bad.error());
    // Several requests in one instance cannot make chained calls: a call
    // could not tell which request's depth and budget it spends.
    let chaining = wisp
        .deploy(
            "s",
            std::fs::read(artifacts::SERVICE3_COMPONENT).unwrap(),
            "route=/s&reuse=10&reuse-concurrency=2&allow-outbound=http://*.wisp.internal",
        )
        .await;
    assert_eq!(
        chaining.status,
        StatusCode::BAD_REQUEST,
        "{}",
        chaining.text()
    );
    assert!(
        chaining.error().contains("`reuse-concurrency`"),
        "{}",
        chaining.error()
    );
    wisp.deploy_ok(
        "s",
        artifacts::SERVICE3_COMPONENT,
        "route=/s&reuse=10&allow-outbound=http://*.wisp.internal",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reused_instances_stream_bodies_and_cut_off_one_that_never_ends() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "s",
        artifacts::SERVICE3_COMPONENT,
        "route=/s&reuse=10&timeout=1s&memory=32MiB",
    )
    .await;
    let body: bytes::Bytes = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    let echoed =
        crate::support::send(http::Method::POST, &wisp.url("/s/echo"), &[], body.clone()).await;
    assert_eq!(echoed.status, StatusCode::OK);
    assert!(echoed.body == body, "the echoed body differs");
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let response = client
        .get(wisp.url("/s/forever").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the head was sent");
    let cut = tokio::time::timeout(
        Duration::from_secs(20),
        http_body_util::BodyExt::collect(response.into_body()),
    )
    .await
    .expect("the body ends within the deadline and slack");
    assert!(cut.is_err(), "a body cut off must end in an error");
    // Memory is capped per instance: the breach is a 500, counted as one.
    let bomb = wisp.get("/s/alloc").await;
    assert_eq!(bomb.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        crate::support::eventually(Duration::from_secs(5), async || {
            wisp.metric(
                "wisp_limit_breaches_total",
                &[("function", "s"), ("limit", "memory")],
            )
            .await
                == 1.0
        })
        .await,
        "{}",
        wisp.metrics().await.text
    );
    assert_eq!(counts(&wisp, 1).await, [1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_in_a_shared_instance_cuts_off_the_bodies_it_was_still_sending() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "s",
        artifacts::SERVICE3_COMPONENT,
        "route=/s&reuse=10&reuse-concurrency=4&timeout=30s",
    )
    .await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let streaming = client
        .get(wisp.url("/s/forever").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(streaming.status(), StatusCode::OK);
    let started = std::time::Instant::now();
    // The same instance takes the next request, which traps.
    assert_eq!(
        wisp.get("/s/trap").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let body = tokio::time::timeout(
        Duration::from_secs(20),
        http_body_util::BodyExt::collect(streaming.into_body()),
    )
    .await
    .expect("the body ends when its instance does");
    assert!(
        body.is_err(),
        "a body its failed instance stopped must end in an error, not look whole"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cut off with its instance, not at its 30 s deadline"
    );
}
