//! Events end to end: cron schedules fire synthetic `POST`s through the
//! normal request path of a real `wisp serve`.

use crate::support::{Wisp, cron_runs, eventually, send, stdout};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::time::Duration;
use wisp_test_artifacts as artifacts;

#[tokio::test(flavor = "multi_thread")]
async fn a_one_second_schedule_runs_once_a_tick() {
    let wisp = Wisp::start();
    // Each tick increments `ticks` in the function's own bucket.
    wisp.deploy_ok(
        "ticker",
        artifacts::KV_DRAFT_COMPONENT,
        "route=/ticker&cron=*%20*%20*%20*%20*%20*&cron-path=/%3Fop%3Dincr%26key%3Dticks",
    )
    .await;
    assert!(
        eventually(Duration::from_secs(15), async || {
            cron_runs(&wisp.log(), "ticker").len() >= 3
        })
        .await,
        "fewer than 3 ticks in 15 s:\n{}",
        wisp.log()
    );
    // One run per tick: never two in one second (a loaded machine may run
    // a tick late, or miss one, but never bunches them).
    let runs = cron_runs(&wisp.log(), "ticker");
    for pair in runs.windows(2) {
        assert!(
            pair[1].duration_since(pair[0]) >= jiff::SignedDuration::from_millis(500),
            "two runs less than half a tick apart: {runs:?}"
        );
    }
    let ticks: u32 = wisp.get("/ticker?key=ticks").await.text().parse().unwrap();
    assert!(ticks >= 3, "the guest counted {ticks} ticks");
    let runs = wisp
        .metric(
            "wisp_trigger_runs_total",
            &[("function", "ticker"), ("trigger", "cron")],
        )
        .await;
    let info = wisp.admin_get("/v1/functions/ticker").await.json();
    let schedule = &info["schedules"][0];
    assert_eq!(schedule["schedule"], "* * * * * *");
    assert_eq!(schedule["target"], "/ticker/?op=incr&key=ticks");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let next = schedule["next_run_unix"].as_u64().unwrap();
    assert!(
        (now - 5..=now + 2).contains(&next),
        "next run {next}, now {now}"
    );
    let listed = wisp.cli(&["ls"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(
            "ticker runs on cron `* * * * * *` (POST /ticker/?op=incr&key=ticks), next at"
        ),
        "{listed}"
    );
    assert!(runs >= 3.0, "{runs}");

    // Ticks missed while the host was down are not replayed: after three
    // seconds down, the runs resume one per tick, without a burst.
    let mut wisp = wisp;
    assert!(tokio::task::block_in_place(|| wisp.terminate()).success());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let wisp = tokio::task::block_in_place(|| wisp.restart_stopped());
    assert!(
        eventually(Duration::from_secs(15), async || {
            cron_runs(&wisp.log(), "ticker").len() >= 2
        })
        .await,
        "{}",
        wisp.log()
    );
    let resumed = cron_runs(&wisp.log(), "ticker");
    assert!(
        resumed[1].duration_since(resumed[0]) >= jiff::SignedDuration::from_millis(500),
        "missed ticks were replayed at start: {resumed:?}"
    );
}

#[tokio::test]
async fn a_tick_is_skipped_while_the_last_run_is_still_going() {
    let wisp = Wisp::start();
    // Every second, a run that takes 2.5 s.
    wisp.deploy_ok(
        "slow",
        artifacts::SLEEP_COMPONENT,
        "route=/slow&timeout=10s&cron=*%20*%20*%20*%20*%20*&cron-path=/%3Fms%3D2500",
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), async || {
            wisp.metrics()
                .await
                .text
                .contains("wisp_trigger_skipped_total{function=\"slow\",trigger=\"cron\"}")
        })
        .await,
        "no tick was skipped:\n{}",
        wisp.log()
    );
    let metrics = wisp.metrics().await;
    let runs = metrics.sum("wisp_trigger_runs_total", &[("function", "slow")]);
    let skipped = metrics.sum("wisp_trigger_skipped_total", &[("function", "slow")]);
    assert!(
        skipped >= 1.0 && runs >= 1.0,
        "runs {runs}, skipped {skipped}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tick_tells_the_guest_its_trigger_and_schedule() {
    let wisp = Wisp::start();
    // The echo guest writes the request headers of each tick to its log.
    wisp.deploy_ok(
        "seen",
        artifacts::ECHO_COMPONENT,
        "route=/seen&cron=*%20*%20*%20*%20*%20*&cron-path=/%3Flog-headers",
    )
    .await;
    let mut logs = String::new();
    assert!(
        eventually(Duration::from_secs(15), async || {
            logs = stdout(&tokio::task::block_in_place(|| wisp.cli(&["logs", "seen"])));
            logs.contains("header x-wisp-schedule:")
        })
        .await,
        "no tick logged its headers in 15 s:\n{logs}\n{}",
        wisp.log()
    );
    assert!(
        logs.contains("header x-wisp-schedule: * * * * * *"),
        "{logs}"
    );
    assert!(logs.contains("header x-wisp-trigger: cron"), "{logs}");
}

#[tokio::test]
async fn a_bad_schedule_is_refused_naming_the_field() {
    let wisp = Wisp::start();
    let wasm = std::fs::read(artifacts::HELLO_COMPONENT).unwrap();
    let refused = wisp
        .deploy("bad", wasm, "route=/bad&cron=0%2025%20*%20*%20*")
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.error().contains("field `hour` (`25`)"),
        "{}",
        refused.text()
    );
}

#[tokio::test]
async fn a_function_calls_another_in_process_through_its_allow_list() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "front",
        artifacts::SDK_FETCH_COMPONENT,
        "route=/front&allow-outbound=http://back.wisp.internal&allow-outbound=http://mirror.wisp.internal",
    )
    .await;
    wisp.deploy_ok("back", artifacts::HELLO_COMPONENT, "route=/elsewhere")
        .await;
    let answer = wisp
        .get("/front?url=http://back.wisp.internal/any/path")
        .await
        .json();
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"], "Hello, world!\n");
    // Each hop is its own request: metered, counted and logged as `chain`.
    let metrics = wisp.metrics().await;
    let back_runs = metrics.sum(
        "wisp_trigger_runs_total",
        &[("function", "back"), ("trigger", "chain")],
    );
    assert_eq!(back_runs, 1.0);
    assert_eq!(wisp.usage("back", 1).await["requests"], 1);
    assert!(
        eventually(Duration::from_secs(5), async || wisp.log().lines().any(
            |l| l.contains("trigger=\"chain\"")
                && l.contains("function=\"back\"")
                && l.contains("path=\"/any/path\"")
        ))
        .await,
        "{}",
        wisp.log()
    );

    // The callee sees its path as if mounted at `/`, who called, and the
    // caller's request id and trace.
    wisp.deploy_ok("mirror", artifacts::ECHO_COMPONENT, "route=/mirror")
        .await;
    let front_url = wisp.url("/front?url=http://mirror.wisp.internal/p%3Fq%3D1");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mirrored = send(
        http::Method::GET,
        &front_url,
        &[("traceparent", traceparent)],
        bytes::Bytes::new(),
    )
    .await;
    let request_id = mirrored.header("x-request-id").unwrap().to_owned();
    let seen = &mirrored.json()["headers"];
    assert_eq!(seen["x-echo-path"], "/p?q=1", "{seen}");
    assert_eq!(seen["x-echo-header-x-wisp-caller"], "front", "{seen}");
    assert_eq!(seen["x-echo-header-traceparent"], traceparent, "{seen}");
    assert_eq!(
        seen["x-echo-header-x-request-id"],
        request_id.as_str(),
        "{seen}"
    );
    // The SDK's `wisp_sdk::call` takes the same path.
    let called = wisp
        .get("/front?call=mirror&path=/from/sdk%3Fx%3D2")
        .await
        .json();
    assert_eq!(called["status"], 200, "{called}");
    assert_eq!(
        called["headers"]["x-echo-path"], "/from/sdk?x=2",
        "{called}"
    );
    assert_eq!(called["headers"]["x-echo-header-x-wisp-caller"], "front");

    // Not in the allow-list: denied, and `back` does not run.
    wisp.deploy_ok(
        "stranger",
        artifacts::SDK_FETCH_COMPONENT,
        "route=/stranger",
    )
    .await;
    let denied = wisp.get("/stranger?url=http://back.wisp.internal/").await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text());
    let metrics = wisp.metrics().await;
    assert_eq!(
        metrics.sum("wisp_trigger_runs_total", &[("function", "back")]),
        1.0
    );
}

#[tokio::test]
async fn a_chain_that_loops_is_stopped_at_the_depth_limit_with_508() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "loop",
        artifacts::SDK_FETCH_COMPONENT,
        "route=/loop&allow-outbound=http://*.wisp.internal",
    )
    .await;
    // Ten nested calls of `loop` to itself: the ninth is refused.
    let mut url = "http://loop.wisp.internal/".to_owned();
    for _ in 0..10 {
        let encoded: String = form_urlencoded::byte_serialize(url.as_bytes()).collect();
        url = format!("http://loop.wisp.internal/?url={encoded}");
    }
    let encoded: String = form_urlencoded::byte_serialize(url.as_bytes()).collect();
    let answer = wisp.get(&format!("/loop?url={encoded}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let text = answer.text();
    assert!(text.contains("508 Loop Detected"), "{text}");
    let runs = wisp
        .metric(
            "wisp_trigger_runs_total",
            &[("function", "loop"), ("trigger", "chain")],
        )
        .await;
    assert_eq!(runs, 8.0, "the client's request and 8 chained calls ran");
}

#[tokio::test]
async fn a_callee_sees_the_authority_it_was_called_by_so_calling_itself_loops_to_508() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "fwd",
        artifacts::SDK_FETCH_COMPONENT,
        "route=/fwd&allow-outbound=http://fwd.wisp.internal",
    )
    .await;
    // Each run forwards the request to its own scheme, authority and path
    // (wasmtime's forwarding test guest does the same): every hop must see
    // `fwd.wisp.internal`, or the second hop calls an authority its
    // allow-list does not name and is denied (403) instead.
    let answer = send(
        Method::GET,
        &wisp.url("/fwd?forward"),
        &[("host", "fwd.wisp.internal")],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::LOOP_DETECTED,
        "{}",
        answer.text()
    );
    let runs = wisp
        .metric(
            "wisp_trigger_runs_total",
            &[("function", "fwd"), ("trigger", "chain")],
        )
        .await;
    assert_eq!(runs, 8.0, "the client's request and 8 chained calls ran");
}
