//! Crash safety and bad data on disk: a host killed mid-deploy restarts with
//! each function whole (old or new), and corrupt artifacts are caught.

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
    for artifact in files_under(&data.join("artifacts/compiled")) {
        std::fs::write(artifact, b"garbage").unwrap();
    }
    std::fs::write(data.join("functions/zzz.json"), b"{ this is not a record").unwrap();

    let wisp = wisp.restart_stopped();
    assert!(
        wisp.get("/cgi").await.text().starts_with("Hello from CGI!"),
        "cgi was rebuilt from its source"
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
