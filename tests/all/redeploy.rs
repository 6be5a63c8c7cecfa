//! What a new user meets when deploying a function again: a redeploy keeps
//! the settings it does not change, a preview (`--no-traffic`) changes
//! nothing that serves, and `--route` is needed only to create a function.
//! Each runs the real `wisp deploy` against a real `wisp serve`.

use crate::support::{Wisp, stderr, stdout};
use http::StatusCode;
use wisp_test_artifacts as artifacts;

/// Runs `wisp deploy` and insists it succeeded; returns its output.
fn deploy(wisp: &Wisp, args: &[&str]) -> String {
    let mut all = vec!["deploy"];
    all.extend_from_slice(args);
    let output = tokio::task::block_in_place(|| wisp.cli(&all));
    assert!(
        output.status.success(),
        "wisp {all:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// The settings of version `number` of `name`, as the admin API shows them.
async fn settings(wisp: &Wisp, name: &str, number: u64) -> serde_json::Value {
    let info = wisp
        .admin_get(&format!("/v1/functions/{name}"))
        .await
        .json();
    info["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["number"] == number)
        .unwrap_or_else(|| panic!("no v{number}: {info}"))["settings"]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redeploy_keeps_the_settings_it_does_not_give_unless_reset() {
    let wisp = Wisp::start();
    let wasm = artifacts::ECHO_COMPONENT;
    deploy(
        &wisp,
        &[
            "echo",
            wasm,
            "--route",
            "/echo",
            "--timeout",
            "2s",
            "--allow-outbound",
            "http://hello.wisp.internal",
            "--config",
            "greeting=Howdy",
        ],
    );
    let kept = deploy(&wisp, &["echo", wasm]);
    assert!(
        kept.contains("settings kept from v1: timeout, allow-outbound, config"),
        "{kept}"
    );
    let v2 = settings(&wisp, "echo", 2).await;
    assert_eq!(v2["timeout"], "2s", "{v2}");
    assert_eq!(
        v2["allow-outbound"][0], "http://hello.wisp.internal",
        "{v2}"
    );
    assert_eq!(v2["config"]["greeting"], "Howdy", "{v2}");

    // A setting given replaces that one only.
    deploy(&wisp, &["echo", wasm, "--timeout", "5s"]);
    let v3 = settings(&wisp, "echo", 3).await;
    assert_eq!(v3["timeout"], "5s");
    assert_eq!(v3["config"]["greeting"], "Howdy");

    // `--reset-settings` starts from the defaults.
    let reset = deploy(&wisp, &["echo", wasm, "--reset-settings"]);
    assert!(!reset.contains("kept from"), "{reset}");
    let v4 = settings(&wisp, "echo", 4).await;
    assert_eq!(v4["timeout"], "30s", "{v4}");
    assert!(v4.get("config").is_none(), "{v4}");

    // The admin API says what it kept, too.
    let wasm_bytes = crate::support::guest(wasm);
    let answer = wisp.deploy("echo", wasm_bytes, "memory=64MiB").await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let report = answer.json();
    assert_eq!(report["kept_from"], 4);
    assert_eq!(report["route"], "/echo", "the route is kept as well");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_deploy_changes_nothing_that_serves() {
    let wisp = Wisp::start();
    let wasm = artifacts::HELLO_COMPONENT;
    deploy(&wisp, &["h2", wasm, "--route", "/moved"]);
    let refused = tokio::task::block_in_place(|| {
        wisp.cli(&["deploy", "h2", wasm, "--route", "/moved2", "--no-traffic"])
    });
    assert!(!refused.status.success(), "{}", stdout(&refused));
    let message = stderr(&refused);
    assert!(
        message.contains("--move-route") && message.contains("/moved"),
        "{message}"
    );
    assert_eq!(wisp.get("/moved").await.status, StatusCode::OK);
    assert_eq!(wisp.get("/moved2").await.status, StatusCode::NOT_FOUND);
    let info = wisp.admin_get("/v1/functions/h2").await.json();
    assert_eq!(info["route"], "/moved");
    assert_eq!(info["versions"].as_array().unwrap().len(), 1, "{info}");

    // A preview at the same route: v2 takes no traffic, and nothing moves.
    let preview = deploy(&wisp, &["h2", wasm, "--no-traffic"]);
    assert!(preview.contains("h2 v2"), "{preview}");
    let served = wisp.get("/moved").await;
    assert_eq!(served.header("x-wisp-version"), Some("1"));

    // Moving is explicit, and said.
    let moved = deploy(
        &wisp,
        &[
            "h2",
            wasm,
            "--route",
            "/moved2",
            "--move-route",
            "--no-traffic",
        ],
    );
    assert!(moved.contains("moved from /moved to /moved2"), "{moved}");
    assert_eq!(wisp.get("/moved").await.status, StatusCode::NOT_FOUND);
    let there = wisp.get("/moved2").await;
    assert_eq!(there.status, StatusCode::OK);
    assert_eq!(
        there.header("x-wisp-version"),
        Some("1"),
        "traffic did not move"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_route_is_needed_only_to_create_a_function() {
    let wisp = Wisp::start();
    let wasm = artifacts::HELLO_COMPONENT;
    let missing = tokio::task::block_in_place(|| wisp.cli(&["deploy", "hello", wasm]));
    assert!(!missing.status.success());
    let message = stderr(&missing);
    assert!(
        message.contains("route") && message.contains("is new"),
        "{message}"
    );
    assert!(wisp.admin_get("/v1/functions/hello").await.status == StatusCode::NOT_FOUND);
    deploy(&wisp, &["hello", wasm, "--route", "/hello"]);
    // The README's blue/green step, as written.
    let preview = deploy(&wisp, &["hello", wasm, "--no-traffic"]);
    assert!(preview.contains("at /hello"), "{preview}");
    assert_eq!(wisp.get("/hello").await.header("x-wisp-version"), Some("1"));
}
