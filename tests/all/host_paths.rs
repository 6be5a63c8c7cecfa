//! The host's file system as API clients see it: an error never names a
//! path the host chose (its data dir, an artifact, a temp file, a directory
//! granted to a guest) — the host log has those — and a function is granted
//! the host's root directory only when the operator started the host with
//! `--allow-root-dir`.

use crate::support::{Response, Wisp, files_under};
use http::StatusCode;
use std::path::{Component, Path};
use wisp_test_artifacts as artifacts;

/// Asserts that `response` is a JSON error of `status` and `kind` whose
/// message contains `needle`, and that no part of `host_path` appears
/// anywhere in the body.
fn assert_error_hiding(
    response: &Response,
    status: StatusCode,
    kind: &str,
    needle: &str,
    host_path: &Path,
) {
    assert_eq!(response.status, status, "{}", response.text());
    let body = response.json();
    assert_eq!(body["kind"], kind, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "`{message}` should say `{needle}`"
    );
    assert!(message.contains("see the host log"), "{message}");
    let text = response.text();
    // Every part of the path: short ones (`/t`) would match ordinary words.
    for part in host_path.components().filter_map(|c| match c {
        Component::Normal(part) => part.to_str().filter(|p| p.len() >= 3),
        _ => None,
    }) {
        assert!(
            !text.contains(part),
            "the response names `{part}` of `{}`: {text}",
            host_path.display()
        );
    }
}

/// Replaces the directory `dir` by a regular file, so that creating files in
/// it fails with `ENOTDIR` — for root too, whom permission bits do not stop.
fn replace_by_a_file(dir: &Path) {
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::write(dir, b"not a directory").unwrap();
}

/// Puts a directory where `file` would go, so renaming onto it or removing
/// it as a file fails with `EISDIR`.
fn block_with_a_directory(file: &Path) {
    let _ = std::fs::remove_file(file);
    std::fs::create_dir(file).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_errors_name_no_path_of_the_data_dir() {
    let wisp = Wisp::start();
    let data = wisp.data_dir();
    let wasm = std::fs::read(artifacts::HELLO_COMPONENT).unwrap();
    let tmp = data.join("artifacts/tmp");

    // Storing the upload fails: its temp file cannot be created.
    replace_by_a_file(&tmp);
    let stored = wisp.deploy("hello", wasm.clone(), "route=/hello").await;
    assert_error_hiding(
        &stored,
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage",
        "storing the upload of `hello` failed",
        &tmp,
    );
    assert_eq!(
        wisp.admin_get("/v1/functions/hello").await.status,
        StatusCode::NOT_FOUND,
        "nothing was deployed"
    );
    let log = wisp.log();
    assert!(
        log.contains(&format!("creating `{}/", tmp.display())),
        "the host log keeps the detail:\n{log}"
    );
    std::fs::remove_file(&tmp).unwrap();
    std::fs::create_dir(&tmp).unwrap();

    // Saving the record fails: a directory stands where it goes.
    let record = data.join("functions/hello.json");
    block_with_a_directory(&record);
    let saved = wisp.deploy("hello", wasm.clone(), "route=/hello").await;
    assert_error_hiding(
        &saved,
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage",
        "saving the record of `hello` failed",
        &record,
    );
    assert_eq!(
        wisp.admin_get("/v1/functions/hello").await.status,
        StatusCode::NOT_FOUND,
        "nothing was deployed"
    );
    std::fs::remove_dir(&record).unwrap();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");

    // Removing the record fails the same way.
    block_with_a_directory(&record);
    let removed = crate::support::send(
        http::Method::DELETE,
        &wisp.admin_url("/v1/functions/hello"),
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_error_hiding(
        &removed,
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage",
        "removing the record of `hello` failed",
        &record,
    );
    assert_eq!(
        wisp.get("/hello").await.text(),
        "Hello, world!\n",
        "a failed removal changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_directory_that_cannot_be_opened_is_not_named_to_the_client() {
    let granted = tempfile::tempdir().unwrap();
    let host_dir = granted.path().join("static");
    std::fs::create_dir(&host_dir).unwrap();
    let wisp = Wisp::start();
    let query = format!("route=/h&dir={}:/data", host_dir.display());
    wisp.deploy_ok("h", artifacts::HOSTILE_COMPONENT, &query)
        .await;
    std::fs::remove_dir(&host_dir).unwrap();

    let response = wisp.get("/h/fs?path=/data/x").await;
    assert_error_hiding(
        &response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "opening the directory granted to function `h` at `/data` failed",
        &host_dir,
    );
    let log = wisp.log();
    assert!(
        log.contains(&host_dir.display().to_string()),
        "the host log names the directory:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn granting_the_root_directory_is_refused_without_the_flag() {
    let link_dir = tempfile::tempdir().unwrap();
    let link = link_dir.path().join("to-root");
    std::os::unix::fs::symlink("/", &link).unwrap();
    let wisp = Wisp::start();
    let wasm = std::fs::read(artifacts::HOSTILE_COMPONENT).unwrap();
    let via_link = format!("{}:/host", link.display());
    for value in ["/:/host", "/./:/host", "//:/host", &via_link] {
        let response = wisp
            .deploy("r", wasm.clone(), &format!("route=/r&dir={value}"))
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{value}");
        let body = response.json();
        assert_eq!(body["kind"], "invalid-settings", "{body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(&format!("`{value}`")), "{message}");
        assert!(
            message
                .contains("granting the host's root directory needs `wisp serve --allow-root-dir`"),
            "{message}"
        );
    }
    assert_eq!(
        wisp.admin_get("/v1/functions/r").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(
        files_under(&wisp.data_dir().join("artifacts")).is_empty(),
        "a refused deploy stores nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_root_directory_is_granted_only_on_a_host_that_allows_it() {
    let outside = tempfile::tempdir().unwrap();
    let file = outside.path().join("anywhere.txt");
    std::fs::write(&file, "read through the root").unwrap();
    let mut wisp = Wisp::start_with(&["--allow-root-dir"]);
    wisp.deploy_ok("r", artifacts::HOSTILE_COMPONENT, "route=/r&dir=/:/host")
        .await;
    let read = wisp
        .get(&format!("/r/fs?path=/host{}", file.display()))
        .await
        .json();
    assert_eq!(read[0]["read"], "read through the root", "{read}");

    // The same stored version on a host without the flag is not loaded.
    wisp.kill9();
    let wisp = wisp.restart_stopped_with(&[]);
    let log = wisp.log();
    assert!(
        log.lines().any(|l| l.contains("version not loaded")
            && l.contains("`/:/host`")
            && l.contains("`wisp serve --allow-root-dir`")),
        "no load problem names the flag:\n{log}"
    );
    let refused = wisp
        .get(&format!("/r/fs?path=/host{}", file.display()))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text()
    );
    assert!(!refused.text().contains("read through the root"));
    let info = wisp.admin_get("/v1/functions/r").await.json();
    assert_eq!(info["versions"][0]["loaded"], false, "{info}");
}
