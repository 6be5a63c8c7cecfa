//! Events end to end: cron schedules fire synthetic `POST`s through the
//! normal request path of a real `wisp serve`.

use crate::support::{Wisp, eventually};
use http::StatusCode;
use std::time::Duration;
use wisp_test_artifacts as artifacts;

#[tokio::test]
async fn a_one_second_schedule_runs_at_least_three_times_in_four_seconds() {
    let wisp = Wisp::start();
    // Each tick increments `ticks` in the function's own bucket.
    wisp.deploy_ok(
        "ticker",
        artifacts::KV_DRAFT_COMPONENT,
        "route=/ticker&cron=*%20*%20*%20*%20*%20*&cron-path=/%3Fop%3Dincr%26key%3Dticks",
    )
    .await;
    let started = std::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(10), async || {
            wisp.get("/ticker?key=ticks")
                .await
                .text()
                .parse::<u32>()
                .is_ok_and(|n| n >= 3)
        })
        .await,
        "fewer than 3 ticks in 10 s:\n{}",
        wisp.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "3 ticks took {:?}",
        started.elapsed()
    );
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
    assert!((now..=now + 2).contains(&next), "next run {next}, now {now}");
    let listed = wisp.cli(&["ls"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("ticker runs on cron `* * * * * *` (POST /ticker/?op=incr&key=ticks), next at"),
        "{listed}"
    );
    assert!(runs >= 3.0, "{runs}");
    let log = wisp.log();
    assert!(
        log.lines()
            .any(|l| l.contains("wisp::access") && l.contains("trigger=\"cron\"") && l.contains("/ticker/")),
        "{log}"
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
    assert!(skipped >= 1.0 && runs >= 1.0, "runs {runs}, skipped {skipped}");
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
