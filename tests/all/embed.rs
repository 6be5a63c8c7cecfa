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
