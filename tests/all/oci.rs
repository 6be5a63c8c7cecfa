//! Functions in OCI registries: `wisp push` publishes a deployed function
//! as a CNCF wasm OCI artifact to a real registry (Debian's
//! `docker-registry` on loopback), and `wisp deploy NAME oci://…` deploys
//! it back by tag and by digest.

use crate::services::Registry;
use crate::support::{Wisp, send, stderr, stdout};
use bytes::Bytes;
use http::{Method, StatusCode};
use wisp_test_artifacts as artifacts;

/// A registry API `GET` (manifests ask for the OCI media type).
async fn registry_get(registry: &Registry, path: &str) -> crate::support::Response {
    let url = format!("http://{}/v2/{path}", registry.host);
    let accept = [("accept", "application/vnd.oci.image.manifest.v1+json")];
    let response = send(Method::GET, &url, &accept, Bytes::new()).await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{url}: {}",
        response.text()
    );
    response
}

#[tokio::test]
async fn a_pushed_function_is_a_cncf_wasm_artifact_and_deploys_by_tag_and_by_digest() {
    let registry = Registry::start().await;
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let reference = format!("{}/fns/hello:v1", registry.host);

    let refused = wisp.cli(&["push", "hello", &reference]);
    assert!(!refused.status.success(), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("--insecure-registry"),
        "{}",
        stderr(&refused)
    );

    let pushed = wisp.cli(&["push", "hello", &reference, "--insecure-registry"]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let digest = stdout(&pushed)
        .lines()
        .find_map(|l| l.strip_prefix("digest ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no digest in: {}", stdout(&pushed)));
    assert!(digest.starts_with("sha256:"), "{digest}");

    // The artifact has the CNCF wasm media types, and its one layer is
    // exactly the deployed binary.
    let manifest = registry_get(&registry, "fns/hello/manifests/v1").await;
    let digest_of_manifest = format!("sha256:{}", sha256_hex(&manifest.body));
    assert_eq!(
        digest_of_manifest, digest,
        "the printed digest is the manifest's"
    );
    let manifest = manifest.json();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    let layer = registry_get(
        &registry,
        &format!("fns/hello/blobs/{}", layers[0]["digest"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        layer.body,
        std::fs::read(artifacts::HELLO_COMPONENT).unwrap()
    );
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = registry_get(&registry, &format!("fns/hello/blobs/{config_digest}"))
        .await
        .json();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2", "a component is a wasip2 artifact");

    // Deployed back by tag, then by digest: each version names the digest.
    let expected_origin = format!("oci://{}/fns/hello@{digest}", registry.host);
    let by_tag = format!("oci://{reference}");
    let by_digest = format!("oci://{}/fns/hello@{digest}", registry.host);
    for (name, source) in [("by-tag", &by_tag), ("by-digest", &by_digest)] {
        let route = format!("/{name}");
        let deployed = wisp.cli(&[
            "deploy",
            name,
            source,
            "--route",
            &route,
            "--insecure-registry",
        ]);
        assert!(deployed.status.success(), "{name}: {}", stderr(&deployed));
        assert!(
            stdout(&deployed).contains(&expected_origin),
            "{}",
            stdout(&deployed)
        );
        let served = wisp.get(&route).await;
        assert_eq!(served.status, StatusCode::OK);
        assert_eq!(
            served.body,
            wisp.get("/hello").await.body,
            "the same function"
        );
        let info = wisp
            .admin_get(&format!("/v1/functions/{name}"))
            .await
            .json();
        assert_eq!(info["versions"][0]["origin"], expected_origin.as_str());
    }

    // `--pin` publishes a version that is not the serving one.
    wisp.deploy_ok("hello", artifacts::ECHO_COMPONENT, "").await;
    let pinned = format!("{}/fns/hello:first", registry.host);
    let pushed = wisp.cli(&[
        "push",
        "hello",
        &pinned,
        "--pin",
        "v1",
        "--insecure-registry",
    ]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    assert!(
        stdout(&pushed).contains("pushed hello v1"),
        "{}",
        stdout(&pushed)
    );
    let latest = format!("{}/fns/hello:latest", registry.host);
    let pushed = wisp.cli(&["push", "hello", &latest, "--insecure-registry"]);
    assert!(
        stdout(&pushed).contains("pushed hello v2"),
        "{}",
        stdout(&pushed)
    );
    for (tag, binary) in [
        ("first", artifacts::HELLO_COMPONENT),
        ("latest", artifacts::ECHO_COMPONENT),
    ] {
        let manifest = registry_get(&registry, &format!("fns/hello/manifests/{tag}"))
            .await
            .json();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
        let layer = registry_get(&registry, &format!("fns/hello/blobs/{layer}")).await;
        assert_eq!(layer.body, std::fs::read(binary).unwrap(), "{tag}");
    }

    // Without the flag a plain-HTTP registry is refused, and nothing is
    // deployed.
    let refused = wisp.cli(&["deploy", "nope", &by_tag, "--route", "/nope"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--insecure-registry"),
        "{}",
        stderr(&refused)
    );
    let missing = wisp.admin_get("/v1/functions/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // A WASI command module is published as a wasip1 artifact.
    wisp.deploy_ok("cgi", artifacts::CGI_HELLO_MODULE, "route=/cgi")
        .await;
    let module_ref = format!("{}/fns/cgi:v1", registry.host);
    let pushed = wisp.cli(&["push", "cgi", &module_ref, "--insecure-registry"]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let manifest = registry_get(&registry, "fns/cgi/manifests/v1").await.json();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = registry_get(&registry, &format!("fns/cgi/blobs/{config_digest}"))
        .await
        .json();
    assert_eq!(config["os"], "wasip1");

    // A WASI 0.3 component travels the same way and serves as 0.3 again.
    wisp.deploy_ok("hello3", artifacts::HELLO3_COMPONENT, "route=/hello3")
        .await;
    let reference3 = format!("{}/fns/hello3:v1", registry.host);
    let pushed = wisp.cli(&["push", "hello3", &reference3, "--insecure-registry"]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let manifest = registry_get(&registry, "fns/hello3/manifests/v1")
        .await
        .json();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = registry_get(&registry, &format!("fns/hello3/blobs/{config_digest}"))
        .await
        .json();
    assert_eq!(config["os"], "wasip2", "a 0.3 component is a component");
    let source = format!("oci://{reference3}");
    let deployed = wisp.cli(&[
        "deploy",
        "pulled3",
        &source,
        "--route",
        "/pulled3",
        "--insecure-registry",
    ]);
    assert!(deployed.status.success(), "{}", stderr(&deployed));
    let info = wisp.admin_get("/v1/functions/pulled3").await.json();
    assert_eq!(info["versions"][0]["abi"], "wasi-http-0.3", "{info}");
    assert_eq!(wisp.get("/pulled3").await.text(), "Hello, WASI 0.3!\n");
}

/// SHA-256 of `bytes`, in hex, from the system's `sha256sum`.
fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_credentials_come_from_the_environment_and_are_never_shown() {
    use crate::services::{REGISTRY_PASSWORD, REGISTRY_USER};
    let registry = Registry::start_with_password().await;
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let reference = format!("{}/fns/hello:v1", registry.host);
    let cli = |args: &[&str], credentials: bool| {
        let env: &[(&str, &str)] = if credentials {
            &[
                ("WISP_REGISTRY_USERNAME", REGISTRY_USER),
                ("WISP_REGISTRY_PASSWORD", REGISTRY_PASSWORD),
            ]
        } else {
            &[]
        };
        tokio::task::block_in_place(|| wisp.cli_with_env(args, env))
    };
    let anonymous = cli(&["push", "hello", &reference, "--insecure-registry"], false);
    assert!(!anonymous.status.success(), "{}", stdout(&anonymous));
    let pushed = cli(&["push", "hello", &reference, "--insecure-registry"], true);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let source = format!("oci://{reference}");
    let refused = cli(
        &[
            "deploy",
            "copy",
            &source,
            "--route",
            "/copy",
            "--insecure-registry",
        ],
        false,
    );
    assert!(!refused.status.success(), "{}", stdout(&refused));
    let deployed = cli(
        &[
            "deploy",
            "copy",
            &source,
            "--route",
            "/copy",
            "--insecure-registry",
        ],
        true,
    );
    assert!(deployed.status.success(), "{}", stderr(&deployed));
    assert_eq!(wisp.get("/copy").await.text(), "Hello, world!\n");
    for output in [&anonymous, &pushed, &refused, &deployed] {
        let shown = format!("{}{}", stdout(output), stderr(output));
        assert!(!shown.contains(REGISTRY_PASSWORD), "{shown}");
    }
    let info = wisp.admin_get("/v1/functions/copy").await.text();
    assert!(!info.contains(REGISTRY_PASSWORD), "{info}");
    assert!(!wisp.log().contains(REGISTRY_PASSWORD));
}
