//! Embedding: a program builds a host from a config, deploys bytes and hands
//! it `http::Request`s — no CLI, no sockets.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wisp_host::{DeployRequest, Host, HostConfig};
use wisp_test_artifacts as artifacts;

#[tokio::test(flavor = "multi_thread")]
async fn a_program_embeds_the_host_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig {
        data_dir: dir.path().to_owned(),
        max_instances: 16,
        ..HostConfig::default()
    };
    let (host, problems) = Host::start(config).await.unwrap();
    assert!(problems.is_empty());
    let wasm = Bytes::from(std::fs::read(artifacts::HELLO_COMPONENT).unwrap());
    let report = host
        .deploy(DeployRequest::new("hello", "/hello", wasm))
        .await
        .unwrap();
    assert_eq!(report.version, 1);

    let request = http::Request::get("/hello")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = host.handle(request).await;
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"Hello, world!\n");

    let missing = host
        .handle(
            http::Request::get("/nope")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(missing.status(), 404);
    assert_eq!(host.functions().len(), 1);
}

/// A host with `max_instances` pool slots, no prepared sandboxes, serving
/// the hello component at `/hello`.
async fn hello_host(dir: &std::path::Path, max_instances: u32) -> Host {
    let config = HostConfig {
        data_dir: dir.to_owned(),
        max_instances,
        prepare: 0,
        ..HostConfig::default()
    };
    let (host, problems) = Host::start(config).await.unwrap();
    assert!(problems.is_empty());
    let wasm = Bytes::from(std::fs::read(artifacts::HELLO_COMPONENT).unwrap());
    host.deploy(DeployRequest::new("hello", "/hello", wasm))
        .await
        .unwrap();
    host
}

/// A finished sandbox is torn down in a task of its own; its pool slot
/// stays taken until then. On a one-thread runtime whose caller never
/// yields between requests, the next request must wait for that teardown,
/// never find the pool full.
#[tokio::test(flavor = "current_thread")]
async fn back_to_back_requests_on_a_small_pool_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let host = hello_host(dir.path(), 2).await;
    for i in 0..50 {
        let request = http::Request::get("/hello")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = host.handle(request).await;
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, 200, "request {i}: {body:?}");
        assert_eq!(&body[..], b"Hello, world!\n");
    }
}

/// An instantiation the pool has no room for is `503` (retry shortly), not
/// an internal error.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_instance_pool_is_a_retryable_503() {
    let dir = tempfile::tempdir().unwrap();
    let host = hello_host(dir.path(), 1).await;
    let held = host.instantiate("hello").await.unwrap();
    let Err(error) = host.instantiate("hello").await else {
        panic!("a second sandbox fit in a pool of one");
    };
    assert_eq!(error.status(), 503, "{error}");
    assert!(
        error.to_string().contains("instance pool is full"),
        "{error}"
    );
    drop(held);
    drop(host.instantiate("hello").await.unwrap());
}
