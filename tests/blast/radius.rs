//! Blast radius: while hostile guests are hammered concurrently, a steady
//! stream of requests to a well-behaved function all succeed, and the host's
//! memory comes back near its baseline afterwards.

use crate::support::{Wisp, eventually};
use http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wisp_test_artifacts as artifacts;

const ATTACKS: &[&str] = &[
    "/h/loop",
    "/h/alloc",
    "/h/recurse",
    "/h/panic",
    "/h/unreachable",
    "/h/sleep-forever",
    "/h/huge-response",
    "/h/exit",
    "/h/stderr?kib=512",
    "/hc/loop",
    "/hc/malformed",
    "/hc/big?kib=4096",
];

#[tokio::test(flavor = "multi_thread")]
async fn hostile_guests_do_not_hurt_a_well_behaved_neighbour() {
    let wisp = Arc::new(Wisp::start());
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let limits = "timeout=2s&memory=64MiB&max-response-body=1MiB";
    wisp.deploy_ok(
        "h",
        artifacts::HOSTILE_COMPONENT,
        &format!("route=/h&{limits}"),
    )
    .await;
    wisp.deploy_ok(
        "hc",
        artifacts::HOSTILE_CGI_MODULE,
        &format!("route=/hc&{limits}"),
    )
    .await;

    // Warm up every path once so the baseline includes used pool slots.
    for attack in ATTACKS {
        attack_once(&wisp.url(attack)).await;
    }
    // The baseline is taken once every warm-up guest has ended (the endless
    // response's guest outlives its client for a moment).
    assert!(
        eventually(Duration::from_secs(30), async || {
            wisp.metric("wisp_pool_slots_in_use", &[]).await == 0.0
        })
        .await,
        "warm-up guests still running"
    );
    let baseline = wisp.rss_bytes();

    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    for attack in ATTACKS.iter().chain(ATTACKS) {
        let (wisp, stop) = (wisp.clone(), stop.clone());
        attackers.push(tokio::spawn(async move {
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed) {
                attack_once(&wisp.url(attack)).await;
                sent += 1;
            }
            sent
        }));
    }
    let neighbour = {
        let (wisp, stop) = (wisp.clone(), stop.clone());
        tokio::spawn(async move {
            let mut served = 0usize;
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let response = wisp.get("/hello").await;
                if response.status == StatusCode::OK && response.text() == "Hello, world!\n" {
                    served += 1;
                } else {
                    failures.push(format!("{}: {}", response.status, response.text()));
                }
            }
            (served, failures)
        })
    };
    // The attack lasts 10 s: this sleep is the test's input, not a wait.
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    let (served, failures) = neighbour.await.unwrap();
    let mut attacks_sent = 0;
    for attacker in attackers {
        attacks_sent += attacker.await.unwrap();
    }
    assert!(
        failures.is_empty(),
        "the neighbour saw failures: {failures:?}"
    );
    assert!(
        served >= 20,
        "the neighbour was starved: {served} requests in 10 s"
    );
    assert!(
        attacks_sent >= ATTACKS.len() * 2,
        "the attackers did not run"
    );

    // Every attack's guest ends (within its 2 s timeout), and what they held
    // is given back.
    assert!(
        eventually(Duration::from_secs(30), async || {
            wisp.metric("wisp_pool_slots_in_use", &[]).await == 0.0
        })
        .await,
        "attack guests still running"
    );
    let mut after = 0;
    let settled = eventually(Duration::from_secs(10), async || {
        after = wisp.rss_bytes();
        after < baseline + (96 << 20)
    })
    .await;
    assert!(
        settled,
        "host RSS went from {} MiB to {} MiB and stayed there",
        baseline >> 20,
        after >> 20
    );
    assert_eq!(wisp.get("/hello").await.status, StatusCode::OK);
    eprintln!(
        "blast radius: {served} neighbour requests, {attacks_sent} attacks, RSS {} MiB -> {} MiB",
        baseline >> 20,
        after >> 20
    );
}

/// Sends one attack; any outcome is fine for an attacker (the endless
/// response errors mid-body), only the neighbour's matter.
async fn attack_once(url: &str) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    if let Ok(response) = client.get(url.parse().unwrap()).await {
        let _ = response.into_body().collect().await;
    }
}
