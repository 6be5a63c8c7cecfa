//! Versions over their life: which ones the public may pin (those serving
//! now and previews that never served, not those that lost their traffic),
//! what `wisp invoke` still reaches, and `wisp retire`, which removes a
//! version from every path at once.

use crate::support::{Response, Wisp, send, stderr, stdout};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::process::Output;
use wisp_test_artifacts as artifacts;

/// Runs a `wisp` client command against `wisp`.
fn cli(wisp: &Wisp, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| wisp.cli(args))
}

/// Runs a `wisp` client command and panics with its stderr unless it succeeds.
fn cli_ok(wisp: &Wisp, args: &[&str]) -> String {
    let output = cli(wisp, args);
    assert!(
        output.status.success(),
        "wisp {args:?}: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// A public request to `path` pinned to `version` by header.
async fn pin(wisp: &Wisp, path: &str, version: &str) -> Response {
    send(
        Method::GET,
        &wisp.url(path),
        &[("x-wisp-version", version)],
        Bytes::new(),
    )
    .await
}

/// Asserts that a public pin to `version` is answered exactly as a pin to a
/// version that never existed (v99): 404, same kind, same message shape.
async fn assert_hidden(wisp: &Wisp, path: &str, version: u32) {
    let hidden = pin(wisp, path, &version.to_string()).await;
    let absent = pin(wisp, path, "99").await;
    assert_eq!(
        hidden.status,
        StatusCode::NOT_FOUND,
        "v{version} is publicly pinnable: {}",
        hidden.text()
    );
    assert_eq!(hidden.json()["kind"], absent.json()["kind"]);
    assert_eq!(
        hidden.error(),
        absent.error().replace("99", &version.to_string()),
        "the answer must not tell a kept version from a missing one"
    );
    assert_eq!(hidden.header("x-wisp-version"), None);
}

/// Asserts that a public pin to `version` is served by it.
async fn assert_pinnable(wisp: &Wisp, path: &str, version: u32) -> Response {
    let pinned = pin(wisp, path, &format!("v{version}")).await;
    assert_eq!(
        pinned.status,
        StatusCode::OK,
        "v{version}: {}",
        pinned.text()
    );
    assert_eq!(
        pinned.header("x-wisp-version"),
        Some(version.to_string().as_str())
    );
    pinned
}

/// `wisp invoke NAME` pinned to `version`, with headers printed.
fn invoke(wisp: &Wisp, name: &str, version: u32) -> Output {
    let header = format!("x-wisp-version: {version}");
    cli(wisp, &["invoke", name, "/", "-i", "-H", &header])
}

/// Asserts that `wisp invoke` reaches `version` of `name`.
fn assert_invokable(wisp: &Wisp, name: &str, version: u32) {
    let output = invoke(wisp, name, version);
    assert!(
        output.status.success(),
        "wisp invoke {name} v{version}: {}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stdout(&output).contains(&format!("x-wisp-version: {version}\n")),
        "{}",
        stdout(&output)
    );
}

/// The version numbers `wisp ls --json` lists for `name`.
fn listed_versions(wisp: &Wisp, name: &str) -> Vec<u64> {
    let functions: serde_json::Value =
        serde_json::from_str(&cli_ok(wisp, &["ls", "--json"])).unwrap();
    functions
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("`{name}` is not listed: {functions}"))["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_that_lost_its_traffic_is_hidden_from_the_public_but_still_invokable() {
    let wisp = Wisp::start();
    for timeout in ["1s", "2s", "3s"] {
        wisp.deploy_ok(
            "hello",
            artifacts::HELLO_COMPONENT,
            &format!("route=/hello&timeout={timeout}"),
        )
        .await;
    }
    assert_hidden(&wisp, "/hello", 1).await;
    assert_hidden(&wisp, "/hello", 2).await;
    let current = assert_pinnable(&wisp, "/hello", 3).await;
    assert_eq!(current.text(), "Hello, world!\n");

    // The operator still reaches both, and they are kept for rollback.
    assert_invokable(&wisp, "hello", 1);
    assert_invokable(&wisp, "hello", 2);
    assert_eq!(listed_versions(&wisp, "hello"), [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_is_publicly_pinnable_until_it_is_promoted_and_then_demoted() {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    cli_ok(
        &wisp,
        &[
            "deploy",
            "app",
            artifacts::COUNTER_COMPONENT,
            "--route",
            "/app",
            "--no-traffic",
        ],
    );
    assert_eq!(wisp.get("/app").await.header("x-wisp-version"), Some("1"));
    assert_eq!(assert_pinnable(&wisp, "/app", 2).await.text(), "1");

    cli_ok(&wisp, &["traffic", "app", "v2=100"]);
    assert_pinnable(&wisp, "/app", 2).await;
    assert_hidden(&wisp, "/app", 1).await;

    cli_ok(&wisp, &["traffic", "app", "v1=100"]);
    assert_pinnable(&wisp, "/app", 1).await;
    assert_hidden(&wisp, "/app", 2).await;
    assert_invokable(&wisp, "app", 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_rollback_the_version_that_lost_traffic_is_hidden_from_the_public() {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    wisp.deploy_ok("app", artifacts::COUNTER_COMPONENT, "route=/app")
        .await;
    assert_hidden(&wisp, "/app", 1).await;

    let rollback = cli_ok(&wisp, &["rollback", "app"]);
    assert!(rollback.contains("rolled back to v1=100%"), "{rollback}");
    assert_eq!(wisp.get("/app").await.text(), "Hello, world!\n");
    assert_pinnable(&wisp, "/app", 1).await;
    assert_hidden(&wisp, "/app", 2).await;
    assert_invokable(&wisp, "app", 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn who_may_pin_what_survives_a_restart() {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app&timeout=2s")
        .await;
    wisp.deploy_ok(
        "app",
        artifacts::COUNTER_COMPONENT,
        "route=/app&no-traffic=true",
    )
    .await;
    let wisp = wisp.restart();
    assert_hidden(&wisp, "/app", 1).await;
    assert_pinnable(&wisp, "/app", 2).await;
    assert_eq!(
        assert_pinnable(&wisp, "/app", 3).await.text(),
        "1",
        "the preview stays a preview"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wisp.data_dir().join("functions/app.json")).unwrap())
            .unwrap();
    let held: Vec<bool> = record["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["held_traffic"].as_bool().unwrap())
        .collect();
    assert_eq!(held, [true, true, false], "{record}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retire_removes_a_version_from_every_path_durably() {
    let wisp = Wisp::start();
    let first = wisp
        .deploy_ok("app", artifacts::COUNTER_COMPONENT, "route=/app")
        .await;
    wisp.deploy_ok("app", artifacts::ECHO_COMPONENT, "route=/app")
        .await;
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    assert_invokable(&wisp, "app", 1);

    assert_eq!(cli_ok(&wisp, &["retire", "app", "v1"]), "retired app v1\n");
    let invoked = invoke(&wisp, "app", 1);
    assert!(!invoked.status.success());
    assert!(
        stderr(&invoked).contains("error: function `app` has no version 1"),
        "{}",
        stderr(&invoked)
    );
    assert_hidden(&wisp, "/app", 1).await;
    assert_eq!(listed_versions(&wisp, "app"), [2, 3]);
    let source = first["source"].as_str().unwrap();
    let stored = wisp
        .data_dir()
        .join(format!("artifacts/sources/{source}.wasm"));
    assert!(
        !stored.exists(),
        "the retired version's source was not collected"
    );
    let again = cli(&wisp, &["retire", "app", "1"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("function `app` has no version 1"),
        "{}",
        stderr(&again)
    );

    let wisp = wisp.restart();
    assert_eq!(listed_versions(&wisp, "app"), [2, 3]);
    assert!(!invoke(&wisp, "app", 1).status.success());
    let rollback = cli_ok(&wisp, &["rollback", "app"]);
    assert!(
        rollback.contains("rolled back to v2=100%"),
        "the rollback target was not v1, so it stays: {rollback}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retiring_the_rollback_target_leaves_nothing_to_roll_back_to() {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    wisp.deploy_ok("app", artifacts::COUNTER_COMPONENT, "route=/app")
        .await;
    let retired: serde_json::Value =
        serde_json::from_str(&cli_ok(&wisp, &["retire", "app", "1", "--json"])).unwrap();
    assert_eq!(
        retired,
        serde_json::json!({"function": "app", "retired": 1, "rollback_cleared": true})
    );
    let rollback = cli(&wisp, &["rollback", "app"]);
    assert!(!rollback.status.success());
    assert!(
        stderr(&rollback).contains("no previous traffic split"),
        "{}",
        stderr(&rollback)
    );
    assert_eq!(wisp.get("/app").await.text(), "1", "v2 still serves");
}

#[tokio::test(flavor = "multi_thread")]
async fn retiring_the_version_that_holds_traffic_is_refused_and_loses_nothing() {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    wisp.deploy_ok("app", artifacts::COUNTER_COMPONENT, "route=/app")
        .await;
    let before = wisp.admin_get("/v1/functions/app").await.json();

    let refused = cli(&wisp, &["retire", "app", "v2"]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("version 2 of function `app` holds traffic")
            && message.contains("shift traffic away first: `wisp traffic app v1=100`"),
        "{message}"
    );
    let api = send(
        Method::DELETE,
        &wisp.admin_url("/v1/functions/app/versions/v2"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(api.status, StatusCode::CONFLICT, "{}", api.text());
    assert_eq!(api.json()["kind"], "version-serving");

    assert_eq!(wisp.admin_get("/v1/functions/app").await.json(), before);
    assert_eq!(wisp.get("/app").await.text(), "1");
    assert_invokable(&wisp, "app", 1);
    assert_eq!(
        cli_ok(&wisp, &["rollback", "app"]),
        "app: rolled back to v1=100%\n"
    );

    // With no other version, the way out is a new deploy or `wisp rm`.
    wisp.deploy_ok("solo", artifacts::HELLO_COMPONENT, "route=/solo")
        .await;
    let only = cli(&wisp, &["retire", "solo", "v1"]);
    assert!(
        stderr(&only).contains("deploy a new version") && stderr(&only).contains("`wisp rm solo`"),
        "{}",
        stderr(&only)
    );
    assert_eq!(wisp.get("/solo").await.status, StatusCode::OK);
}
