//! A function built with `wisp-sdk` is a standard `wasi:http/proxy`
//! component: the same `.wasm` runs unchanged on the reference host,
//! `wasmtime serve` (wasmtime-cli 48, installed by `scripts/install-deps.sh`).
//! There it is mounted at `/`, so its router sees the whole path (under wisp
//! it sees the path below its route, from the `x-wisp-path-info` header).

use crate::support::send;
use bytes::Bytes;
use http::{Method, StatusCode};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wisp_test_artifacts as artifacts;

/// A `wasmtime serve` process, killed on drop.
struct WasmtimeServe {
    child: Child,
    port: u16,
}

impl WasmtimeServe {
    /// Serves `wasm` on a free loopback port and waits until it accepts.
    async fn start(wasm: &str) -> WasmtimeServe {
        let version = Command::new("wasmtime").arg("--version").output();
        let version = match version {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
            _ => panic!(
                "this test needs `wasmtime` (wasmtime-cli 48) on PATH; install it with \
                 scripts/install-deps.sh (cargo install --locked wasmtime-cli@48.0.8)"
            ),
        };
        assert!(
            version.contains(" 48."),
            "expected wasmtime-cli 48, found {version}"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("wasmtime")
            .args([
                "serve",
                "-S",
                "cli",
                "--addr",
                &format!("127.0.0.1:{port}"),
                wasm,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = WasmtimeServe { child, port };
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("wasmtime serve did not accept connections within 30 s");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for WasmtimeServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sdk_function_runs_unchanged_on_wasmtime_serve() {
    let server = WasmtimeServe::start(artifacts::SDK_API_COMPONENT).await;
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
