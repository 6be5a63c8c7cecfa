//! The review's defects of the host library, end to end: metric series go
//! with the versions they describe, and compiling never holds up the admin
//! calls of other functions.

use crate::support::{Wisp, eventually};
use std::collections::BTreeSet;
use std::time::Duration;
use wisp_test_artifacts as artifacts;

/// The series in a `/metrics` text: every sample line without its value.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_and_remove_cycles_leave_metrics_the_same_size() {
    let wisp = Wisp::start();
    wisp.deploy_ok("keep", artifacts::CGI_HELLO_MODULE, "route=/keep")
        .await;
    assert_eq!(wisp.get("/keep").await.status, 200);
    let before = wisp.admin_get("/metrics").await.text();
    assert!(
        before.contains(r#"function="keep""#),
        "the series to compare are there: {before}"
    );
    for cycle in 0..30 {
        wisp.deploy_ok("churn", artifacts::CGI_HELLO_MODULE, "route=/churn")
            .await;
        // A second version, so retention and removal both drop series.
        wisp.deploy_ok("churn", artifacts::CGI_HELLO_MODULE, "route=/churn")
            .await;
        let served = wisp.get("/churn").await;
        assert_eq!(served.status, 200, "cycle {cycle}: {}", served.text());
        let during = wisp.admin_get("/metrics").await.text();
        assert!(
            during.contains(r#"function="churn""#),
            "cycle {cycle}: the deployed function has series"
        );
        let removed = crate::support::send(
            http::Method::DELETE,
            &wisp.admin_url("/v1/functions/churn"),
            &[],
            bytes::Bytes::new(),
        )
        .await;
        assert_eq!(removed.status, 200, "{}", removed.text());
    }
    let after = wisp.admin_get("/metrics").await.text();
    assert!(!after.contains(r#"function="churn""#), "{after}");
    assert_eq!(
        series(&after),
        series(&before),
        "the same series before and after 30 cycles"
    );
    assert_eq!(after.lines().count(), before.lines().count());
}

/// A CGI module with `_start` and `count` small functions: it takes Cranelift
/// a while to compile (about 0.1 ms per function on the reference machine).
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_compile_does_not_hold_up_other_functions_admin_calls() {
    let wisp = Wisp::start();
    wisp.deploy_ok("other", artifacts::CGI_HELLO_MODULE, "route=/other")
        .await;
    let wasm = crate::support::costly_to_compile(40_000);
    let url = wisp.admin_url("/v1/functions/slow?route=/slow");
    let slow = tokio::spawn(async move {
        crate::support::send(http::Method::PUT, &url, &[], wasm.into()).await
    });
    // The upload has arrived and its compile begun once a compile worker
    // runs.
    assert!(
        eventually(Duration::from_secs(30), async || wisp.compile_workers() > 0).await,
        "no compile worker started"
    );

    let ls = tokio::task::block_in_place(|| wisp.cli(&["ls"]));
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    let rm = tokio::task::block_in_place(|| wisp.cli(&["rm", "other"]));
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    // What proves they did not wait is the deploy still compiling: had
    // either waited behind it, the deploy would have finished first. No
    // wall-clock figure is asserted (a loaded machine may be slow at both).
    assert!(
        !slow.is_finished(),
        "the slow deploy was still compiling while ls and rm answered"
    );

    let deployed = slow.await.unwrap();
    assert_eq!(deployed.status, 201, "{}", deployed.text());
    assert_eq!(wisp.get("/other").await.status, 404);
}
