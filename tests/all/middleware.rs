//! HTTP middleware for WASI 0.3 (the `middleware` setting): `wasi:http/
//! middleware` functions composed in front of a function at deploy, each
//! request still in fresh instances, with the function's capabilities; a
//! middleware redeployed makes a new version of every function using it.

use crate::support::{Wisp, send, stdout};
use bytes::Bytes;
use http::{Method, StatusCode};
use wisp_test_artifacts as artifacts;

/// `GET path` with `Authorization: Bearer token`.
async fn get_as(wisp: &Wisp, path: &str, token: &str) -> crate::support::Response {
    let authorization = format!("Bearer {token}");
    send(
        Method::GET,
        &wisp.url(path),
        &[("authorization", authorization.as_str())],
        Bytes::new(),
    )
    .await
}

async fn with_middleware_functions() -> Wisp {
    let wisp = Wisp::start();
    wisp.deploy_ok("auth", artifacts::AUTH3_COMPONENT, "route=/auth")
        .await;
    wisp.deploy_ok("tag", artifacts::TAG3_COMPONENT, "route=/tag")
        .await;
    wisp
}

#[tokio::test(flavor = "multi_thread")]
async fn middleware_rejects_or_adds_a_header_and_follows_its_redeploys() {
    let wisp = with_middleware_functions().await;
    // On its own, a middleware has nothing behind it, and says so.
    let alone = get_as(&wisp, "/auth", "letmein").await;
    assert_eq!(alone.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        alone.text().contains("no function behind it"),
        "{}",
        alone.text()
    );
    assert_eq!(wisp.get("/auth").await.status, StatusCode::UNAUTHORIZED);

    let report = wisp
        .deploy_ok(
            "app",
            artifacts::STATE3_COMPONENT,
            "route=/app&middleware=auth&middleware=tag&config=auth-token%3Dopensesame",
        )
        .await;
    assert_eq!(report["abi"], "wasi-http-0.3", "{report}");
    assert_eq!(
        report["settings"]["middleware"],
        serde_json::json!(["auth", "tag"]),
        "{report}"
    );
    // The auth middleware answers by itself: the function never runs.
    for token in ["", "letmein"] {
        let refused = get_as(&wisp, "/app", token).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{token}");
        assert!(refused.text().contains("the auth middleware said no"));
    }
    // With the function's own token, the request passes both layers, and
    // the tag middleware marks the function's response.
    let passed = get_as(&wisp, "/app", "opensesame").await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.text());
    assert_eq!(passed.header("x-tagged"), Some("yes"));
    assert!(passed.text().starts_with("hits=1 "), "{}", passed.text());
    let again = get_as(&wisp, "/app", "opensesame").await;
    assert!(again.text().starts_with("hits=2 "), "{}", again.text());

    // Redeploying a middleware composes every function using it again.
    let redeployed = wisp.deploy_ok("tag", artifacts::TAG3_COMPONENT, "").await;
    assert_eq!(
        redeployed["recomposed"],
        serde_json::json!(["app v2"]),
        "{redeployed}"
    );
    let versions = wisp.cli(&["versions", "app"]);
    assert!(stdout(&versions).contains("v2"), "{}", stdout(&versions));
    let info = wisp.admin_get("/v1/functions/app").await.json();
    assert_eq!(info["versions"].as_array().unwrap().len(), 2, "{info}");
    let still = get_as(&wisp, "/app", "opensesame").await;
    assert_eq!(still.header("x-tagged"), Some("yes"));
    assert!(still.text().starts_with("hits=3 "), "{}", still.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn middleware_that_does_not_fit_is_refused_naming_why() {
    let wisp = with_middleware_functions().await;
    wisp.deploy_ok("hello3", artifacts::HELLO3_COMPONENT, "route=/hello3")
        .await;
    let wasm = |path: &str| std::fs::read(path).unwrap();
    for (binary, query, needle) in [
        // The auth middleware reads `wasi:config`; this function does not
        // import it, so the middleware may not either.
        (
            artifacts::SERVICE3_COMPONENT,
            "route=/s&middleware=auth",
            "`wasi:config/store@0.2.0-rc.1`",
        ),
        (
            artifacts::SERVICE3_COMPONENT,
            "route=/s&middleware=nope",
            "a deployed function",
        ),
        (
            artifacts::SERVICE3_COMPONENT,
            "route=/s&middleware=hello3",
            "`wasi:http/middleware`",
        ),
        (
            artifacts::SERVICE3_COMPONENT,
            "route=/s&middleware=s",
            "its own middleware",
        ),
        (
            artifacts::HELLO_COMPONENT,
            "route=/s&middleware=tag",
            "WASI 0.3",
        ),
    ] {
        let refused = wisp.deploy("s", wasm(binary), query).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            refused.text()
        );
        assert!(
            refused.error().contains("`middleware`") && refused.error().contains(needle),
            "{query}: {}",
            refused.error()
        );
        assert_eq!(
            wisp.admin_get("/v1/functions/s").await.status,
            StatusCode::NOT_FOUND,
            "{query}: nothing deployed"
        );
    }
}
