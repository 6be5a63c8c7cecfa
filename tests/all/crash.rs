//! Crash safety and bad data on disk: a host killed mid-deploy restarts with
//! each function whole (old or new), corrupt artifacts are caught, another
//! engine's artifacts are recompiled from their sources, and a
//! record damaged by hand makes its function unavailable, saying why — in
//! the log (naming the file) and in `wisp ls` — until it is repaired.

use crate::support::{Wisp, files_under};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::path::Path;
use std::time::Duration;
use wisp_test_artifacts as artifacts;

/// Files under the data dir's `artifacts/tmp`.
fn temp_files(data: &Path) -> Vec<std::path::PathBuf> {
    files_under(&data.join("artifacts/tmp"))
}

fn count(data: &Path, dir: &str, extension: &str) -> usize {
    files_under(&data.join("artifacts").join(dir))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_during_deploy_leaves_each_function_whole() {
    for delay_ms in [0u64, 40, 120, 250, 400, 700] {
        let mut wisp = Wisp::start();
        wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
            .await;
        let url = wisp.admin_url("/v1/functions/app?route=/app");
        let wasm = Bytes::from(std::fs::read(artifacts::ECHO_COMPONENT).unwrap());
        let deploy = tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<Bytes>>();
            let request = http::Request::builder()
                .method(Method::PUT)
                .uri(url)
                .body(http_body_util::Full::new(wasm))
                .unwrap();
            let _ = client.request(request).await;
        });
        // When the kill lands is the test's input: each delay cuts the deploy
        // at another step.
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        wisp.kill9();
        let _ = deploy.await;

        let data = wisp.data_dir();
        let wisp = wisp.restart_stopped();
        let response = wisp.get("/app").await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "after a kill at {delay_ms} ms: {}",
            response.text()
        );
        match response.header("x-wisp-version") {
            Some("1") => assert_eq!(response.text(), "Hello, world!\n", "v1 is hello"),
            Some("2") => assert_eq!(response.header("x-echo-method"), Some("GET"), "v2 is echo"),
            other => panic!("unexpected version {other:?} after a kill at {delay_ms} ms"),
        }
        assert!(
            temp_files(&data).is_empty(),
            "temp files survived a restart: {:?}",
            temp_files(&data)
        );
        let versions = wisp.admin_get("/v1/functions/app").await.json()["versions"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(
            count(&data, "sources", "wasm"),
            versions,
            "only the sources of recorded versions remain"
        );
        assert_eq!(
            count(&data, "compiled", "cwasm"),
            versions,
            "only the artifacts of recorded versions remain"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_or_truncated_artifacts_are_rebuilt_from_source() {
    let mut wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("cgi", artifacts::CGI_HELLO_MODULE, "route=/cgi")
        .await;
    wisp.kill9();
    let data = wisp.data_dir();
    let mut artifacts_on_disk: Vec<_> = files_under(&data.join("artifacts/compiled"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    artifacts_on_disk.sort();
    assert_eq!(artifacts_on_disk.len(), 2);
    // One truncated, one with a flipped byte and its length unchanged.
    let first = std::fs::read(&artifacts_on_disk[0]).unwrap();
    std::fs::write(&artifacts_on_disk[0], &first[..first.len() / 2]).unwrap();
    let mut second = std::fs::read(&artifacts_on_disk[1]).unwrap();
    let middle = second.len() / 2;
    second[middle] ^= 0xff;
    std::fs::write(&artifacts_on_disk[1], &second).unwrap();

    let wisp = wisp.restart_stopped();
    assert_eq!(
        wisp.admin_get("/healthz").await.json()["compilations"],
        2,
        "both were rebuilt"
    );
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");
    assert!(wisp.get("/cgi").await.text().starts_with("Hello from CGI!"));
    assert!(wisp.log().contains("corrupt"), "the corruption is logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unrecoverable_function_is_reported_and_the_rest_still_serve() {
    let mut wisp = Wisp::start();
    let report = wisp
        .deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("cgi", artifacts::CGI_HELLO_MODULE, "route=/cgi")
        .await;
    wisp.kill9();
    let data = wisp.data_dir();
    let source = report["source"].as_str().unwrap();
    std::fs::write(
        data.join(format!("artifacts/sources/{source}.wasm")),
        b"garbage",
    )
    .unwrap();
    let compiled = files_under(&data.join("artifacts/compiled"));
    assert_eq!(
        compiled.len(),
        4,
        "an artifact and its checksum per function: {compiled:?}"
    );
    for artifact in compiled {
        std::fs::write(artifact, b"garbage").unwrap();
    }
    std::fs::write(data.join("functions/zzz.json"), b"{ this is not a record").unwrap();

    let wisp = wisp.restart_stopped();
    assert!(
        wisp.get("/cgi").await.text().starts_with("Hello from CGI!"),
        "cgi was rebuilt from its source"
    );
    assert_eq!(
        wisp.admin_get("/healthz").await.json()["compilations"],
        1,
        "only cgi could be rebuilt"
    );
    let broken = wisp.get("/hello").await;
    assert_eq!(
        broken.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        broken.text()
    );
    assert!(
        broken.json()["error"]
            .as_str()
            .unwrap()
            .contains("could not be loaded")
    );
    let info = wisp.admin_get("/v1/functions/hello").await.json();
    assert_eq!(info["versions"][0]["loaded"], false);
    let log = wisp.log();
    assert!(log.contains("version not loaded"), "{log}");
    assert!(log.contains("unreadable record skipped"), "{log}");
}

/// Stops `wisp`, lets `damage` edit its data dir, and starts a new server on it.
fn restart_after(mut wisp: Wisp, damage: impl FnOnce(&Path)) -> Wisp {
    wisp.kill9();
    damage(&wisp.data_dir());
    wisp.restart_stopped()
}

/// Rewrites the record of `name` through `edit`.
fn edit_record(data: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = data.join(format!("functions/{name}.json"));
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut record);
    std::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
}

fn cli_ok(wisp: &Wisp, args: &[&str]) -> String {
    let output = tokio::task::block_in_place(|| wisp.cli(args));
    assert!(
        output.status.success(),
        "wisp {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Why `wisp ls --json` says `name` is unavailable, if it does.
fn unavailable(wisp: &Wisp, name: &str) -> Option<String> {
    let functions: serde_json::Value =
        serde_json::from_str(&cli_ok(wisp, &["ls", "--json"])).unwrap();
    let function = functions
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("`{name}` is not listed: {functions}"));
    function["unavailable"].as_str().map(str::to_owned)
}

/// Asserts that `name` is unavailable for a reason containing `needle`: in
/// `wisp ls --json`, in the `wisp ls` table, in a warning naming its record
/// file, and to requests on `path` (503) and through `wisp invoke`.
async fn assert_unavailable(wisp: &Wisp, name: &str, path: &str, needle: &str) {
    let reason =
        unavailable(wisp, name).unwrap_or_else(|| panic!("`{name}` is not marked unavailable"));
    assert!(reason.contains(needle), "{reason}");
    let table = cli_ok(wisp, &["ls"]);
    assert!(
        table.contains(&format!("{name} is unavailable: {reason}")),
        "{table}"
    );
    let record = wisp.data_dir().join(format!("functions/{name}.json"));
    let log = wisp.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains(&record.display().to_string())
            && l.contains(needle)),
        "no warning names `{}` with `{needle}`:\n{log}",
        record.display()
    );
    let response = wisp.get(path).await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.text()
    );
    assert_eq!(response.json()["kind"], "unavailable");
    let invoked = tokio::task::block_in_place(|| wisp.cli(&["invoke", name]));
    assert!(!invoked.status.success(), "a damaged function was invoked");
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_naming_a_missing_version_is_reported_until_repaired() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let wisp = restart_after(wisp, |data| {
        edit_record(data, "hello", |r| {
            r["traffic"] = serde_json::json!([{"version": 9, "weight": 100}]);
        });
    });
    assert_unavailable(&wisp, "hello", "/hello", "there is no version 9").await;

    cli_ok(&wisp, &["traffic", "hello", "v1=100"]);
    assert_eq!(unavailable(&wisp, "hello"), None);
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_not_summing_to_100_are_reported_until_repaired() {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    wisp.deploy_ok("app", artifacts::COUNTER_COMPONENT, "route=/app")
        .await;
    let wisp = restart_after(wisp, |data| {
        edit_record(data, "app", |r| {
            r["traffic"] =
                serde_json::json!([{"version": 1, "weight": 50}, {"version": 2, "weight": 40}]);
        });
    });
    assert_unavailable(&wisp, "app", "/app", "weights sum to 90, not 100").await;

    cli_ok(&wisp, &["traffic", "app", "v1=50", "v2=50"]);
    assert_eq!(unavailable(&wisp, "app"), None);
    assert_eq!(wisp.get("/app").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_claimed_by_two_functions_serves_neither_until_one_leaves() {
    let wisp = Wisp::start();
    wisp.deploy_ok("a", artifacts::HELLO_COMPONENT, "route=/a")
        .await;
    wisp.deploy_ok("b", artifacts::COUNTER_COMPONENT, "route=/b")
        .await;
    let wisp = restart_after(wisp, |data| {
        edit_record(data, "b", |r| r["route"] = "/a".into());
    });
    assert_unavailable(&wisp, "a", "/a", "also claimed by function `b`").await;
    assert_unavailable(&wisp, "b", "/a", "also claimed by function `a`").await;
    assert_eq!(wisp.get("/b").await.status, StatusCode::NOT_FOUND);

    cli_ok(&wisp, &["rm", "b"]);
    assert_eq!(unavailable(&wisp, "a"), None);
    assert_eq!(wisp.get("/a").await.text(), "Hello, world!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_whose_source_is_missing_is_reported_with_the_file() {
    let wisp = Wisp::start();
    let report = wisp
        .deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let source = format!(
        "artifacts/sources/{}.wasm",
        report["source"].as_str().unwrap()
    );
    let wisp = restart_after(wisp, |data| {
        std::fs::remove_file(data.join(&source)).unwrap()
    });
    assert_unavailable(&wisp, "hello", "/hello", &source).await;

    // A new version takes the traffic; retiring the damaged one repairs it.
    wisp.deploy_ok("hello", artifacts::COUNTER_COMPONENT, "route=/hello")
        .await;
    assert!(unavailable(&wisp, "hello").is_some(), "v1 is still damaged");
    cli_ok(&wisp, &["retire", "hello", "v1"]);
    assert_eq!(unavailable(&wisp, "hello"), None);
    assert_eq!(wisp.get("/hello").await.text(), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_engine_recompiles_from_source() {
    let mut wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.kill9();
    // Artifacts are keyed by the engine's compatibility fingerprint (with
    // the source's hash). What an engine with another fingerprint left is
    // an artifact and checksum under another key: this engine's key is
    // renamed to one it would never compute.
    let compiled = wisp.data_dir().join("artifacts/compiled");
    let ours = files_under(&compiled);
    assert_eq!(ours.len(), 2, "an artifact and its checksum: {ours:?}");
    let key = ours[0].file_stem().unwrap().to_str().unwrap().to_owned();
    assert_eq!(key.len(), 64, "a blake3 hex key: {key}");
    let other: String = key.chars().rev().collect();
    assert_ne!(other, key);
    for extension in ["cwasm", "sum"] {
        std::fs::rename(
            compiled.join(format!("{key}.{extension}")),
            compiled.join(format!("{other}.{extension}")),
        )
        .unwrap();
    }

    let wisp = wisp.restart_stopped();
    assert_eq!(
        wisp.admin_get("/healthz").await.json()["compilations"],
        1,
        "hello was recompiled from its stored source"
    );
    assert_eq!(wisp.metric("wisp_compilations_total", &[]).await, 1.0);
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");
    // Compiled again under this engine's key; the other engine's is collected.
    let now: Vec<_> = files_under(&compiled)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(now, [format!("{key}.cwasm"), format!("{key}.sum")]);
}
