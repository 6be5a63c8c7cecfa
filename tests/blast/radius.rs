//! Blast radius: while hostile guests are hammered concurrently, a steady
//! stream of requests to a well-behaved function all succeed, and the host's
//! memory comes back near its baseline afterwards.

use crate::support::{Wisp, eventually};
use http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wisp_test_artifacts as artifacts;

/// Each attack, and the status that shows it ran as meant (`None`: any
/// answer will do — an endless response, say, fails mid-body).
const ATTACKS: &[(&str, Option<u16>)] = &[
    ("/h/loop", Some(504)),
    ("/h/alloc", Some(500)),
    ("/h/recurse", Some(500)),
    ("/h/panic", Some(500)),
    ("/h/unreachable", Some(500)),
    ("/h/sleep-forever", Some(504)),
    ("/h/huge-response", None),
    ("/h/exit", Some(500)),
    ("/h/stderr?kib=512", Some(200)),
    ("/hc/loop", Some(504)),
    ("/hc/malformed", Some(502)),
    ("/hc/big?kib=4096", None),
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
    for (attack, _) in ATTACKS {
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
    for &(attack, meant) in ATTACKS.iter().chain(ATTACKS) {
        let (wisp, stop) = (wisp.clone(), stop.clone());
        attackers.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(status) = attack_once(&wisp.url(attack)).await {
                    answered.push(status);
                }
            }
            (attack, meant, answered)
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
        let (attack, meant, answered) = attacker.await.unwrap();
        // Each attack really ran: answered, and with the status its guest's
        // misbehaviour earns (not, say, a 404 or a 503 that never ran it).
        assert!(!answered.is_empty(), "{attack} was never answered");
        if let Some(meant) = meant {
            assert!(
                answered.contains(&meant) && !answered.contains(&404),
                "{attack} should be answered {meant}: {answered:?}"
            );
        }
        attacks_sent += answered.len();
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

/// Sends one attack and reads its answer to the end (the endless response
/// errors mid-body, which is fine); its status, if it was answered.
async fn attack_once(url: &str) -> Option<u16> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let response = client.get(url.parse().unwrap()).await.ok()?;
    let status = response.status().as_u16();
    // The body's end (or its error) is part of the attack, not its outcome.
    let _ends = response.into_body().collect().await;
    Some(status)
}
