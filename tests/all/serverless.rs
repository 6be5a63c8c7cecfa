//! The Serverless Framework deploys to wisp: `serverless` 3 from npm with
//! the provider plugin of `sdk/serverless-wisp`, against a real `wisp
//! serve` that requires an admin token — deploy (stages as name and route
//! prefixes, routes from `http`/`httpApi` events, settings), info, invoke,
//! logs, deploy function, rollback, rollback function, pruning what the
//! file no longer lists, remove, and a key wisp cannot honour refused by
//! name with nothing deployed.

use crate::support::{Wisp, send, stderr, stdout};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use wisp_test_artifacts as artifacts;

const TOKEN: &str = "sls-admin-token-0123456789";

/// The plugin's directory (its `node_modules` holds the framework).
fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/serverless-wisp")
}

/// The framework, installed by `scripts/install-deps.sh`; its absence is
/// a loud failure, not a skip.
fn framework() -> PathBuf {
    let bin = plugin_dir().join("node_modules/.bin/serverless");
    assert!(
        bin.exists(),
        "the Serverless Framework is not installed at {}: run scripts/install-deps.sh (npm ci in sdk/serverless-wisp)",
        bin.display()
    );
    bin
}

/// A service directory: `serverless.yml`, the two `.wasm` files (`hello`'s
/// made by its `build` command), and the plugin as npm would link it.
fn service(yml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("serverless.yml"), yml).unwrap();
    std::fs::copy(artifacts::SDK_API_COMPONENT, dir.path().join("api.wasm")).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::copy(
        artifacts::HELLO_COMPONENT,
        dir.path().join("src/hello.wasm"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("node_modules")).unwrap();
    std::os::unix::fs::symlink(
        plugin_dir().canonicalize().unwrap(),
        dir.path().join("node_modules/serverless-wisp"),
    )
    .unwrap();
    dir
}

const SERVICE: &str = r#"
service: shop
frameworkVersion: '3'
provider:
  name: wisp
  endpoint: ${env:WISP_ENDPOINT}
  token: ${env:WISP_TOKEN}
  url: ${env:WISP_URL}
  environment:
    GREETING: Howdy
plugins:
  - serverless-wisp
functions:
  api:
    wasm: api.wasm
    timeout: 5
    events:
      - http:
          path: /api/{proxy+}
          method: any
  hello:
    wasm: hello.wasm
    build: cp src/hello.wasm hello.wasm
    memorySize: 64
    settings:
      max-concurrency: 4
    events:
      - httpApi: GET /hello
      - schedule: cron(0 12 ? * 2#1 *)
"#;

/// Runs `serverless ARGS` in `dir` against `wisp`, with the framework's
/// telemetry and notifications off and a home of its own.
fn sls(wisp: &Wisp, dir: &Path, args: &[&str]) -> Output {
    let home = dir.join(".home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new(framework())
        .args(args)
        .args(["--stage", "test"])
        .current_dir(dir)
        .env("HOME", &home)
        .env("SLS_TELEMETRY_DISABLED", "1")
        .env("SLS_NOTIFICATIONS_MODE", "off")
        .env("SLS_INTERACTIVE_SETUP_DISABLE", "1")
        .env("CI", "1")
        .env("WISP_ENDPOINT", format!("http://{}", wisp.admin))
        .env("WISP_TOKEN", TOKEN)
        .env("WISP_URL", format!("http://{}", wisp.public))
        .env_remove("WISP_ADMIN_TOKEN")
        .env_remove("WISP_ADMIN_URL")
        .output()
        .expect("run serverless")
}

/// Runs `serverless ARGS`: whether it succeeded, and what it printed on
/// both streams.
fn sls_printed(wisp: &Wisp, dir: &Path, args: &[&str]) -> (bool, String) {
    let output = sls(wisp, dir, args);
    let printed = format!("{}{}", stdout(&output), stderr(&output));
    (output.status.success(), printed)
}

/// Runs `serverless ARGS` and panics with its output unless it succeeds;
/// returns what it printed.
fn sls_ok(wisp: &Wisp, dir: &Path, args: &[&str]) -> String {
    let (succeeded, printed) = sls_printed(wisp, dir, args);
    assert!(succeeded, "serverless {args:?} failed:\n{printed}");
    printed
}

/// Writes `yml` as the service's file and runs `serverless deploy`, which
/// must fail; returns what it printed.
fn deploy_refused(wisp: &Wisp, dir: &Path, yml: &str) -> String {
    std::fs::write(dir.join("serverless.yml"), yml).unwrap();
    let (succeeded, printed) = sls_printed(wisp, dir, &["deploy"]);
    assert!(!succeeded, "{printed}");
    printed
}

/// A request to the admin API with the token.
async fn admin_send(
    wisp: &Wisp,
    method: Method,
    path: &str,
    body: Bytes,
) -> crate::support::Response {
    let bearer = format!("Bearer {TOKEN}");
    send(
        method,
        &wisp.admin_url(path),
        &[("authorization", &bearer)],
        body,
    )
    .await
}

/// `GET` on the admin API with the token.
async fn admin(wisp: &Wisp, path: &str) -> crate::support::Response {
    admin_send(wisp, Method::GET, path, Bytes::new()).await
}

/// The version that serves `path` now.
async fn serving(wisp: &Wisp, path: &str) -> String {
    let response = wisp.get(path).await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{path}: {}",
        response.text()
    );
    response.header("x-wisp-version").unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_serverless_framework_deploys_invokes_rolls_back_and_removes() {
    let wisp = Wisp::start_with_env(&[], &[("WISP_ADMIN_TOKEN", TOKEN)]);
    let dir = service(SERVICE);
    // Deployed by hand, not by this service: pruning and remove leave it.
    let other = wisp
        .deploy(
            "shop-test-other",
            std::fs::read(artifacts::HELLO_COMPONENT).unwrap(),
            "route=/other",
        )
        .await;
    assert_eq!(
        other.status,
        StatusCode::UNAUTHORIZED,
        "the host requires its token"
    );
    let other = admin_send(
        &wisp,
        Method::PUT,
        "/v1/functions/shop-test-other?route=/other",
        Bytes::from(std::fs::read(artifacts::HELLO_COMPONENT).unwrap()),
    )
    .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text());

    let deployed = sls_ok(&wisp, dir.path(), &["deploy"]);
    assert!(deployed.contains("shop-test-api v1"), "{deployed}");
    assert!(
        deployed.contains(&format!("http://{}/test/hello", wisp.public)),
        "the deploy names each function's URL: {deployed}"
    );
    // The stage prefixes names and routes; `/api/{proxy+}` is served by
    // `/api` and everything under it; provider and function settings apply.
    assert_eq!(
        wisp.get("/test/api/hello/Ada").await.text(),
        "Howdy, Ada!\n"
    );
    assert_eq!(wisp.get("/test/hello").await.text(), "Hello, world!\n");
    let hello = admin(&wisp, "/v1/functions/shop-test-hello").await.json();
    let settings = &hello["versions"][0]["settings"];
    assert_eq!(settings["memory"], "64MiB", "{hello}");
    assert_eq!(settings["max-concurrency"], 4, "{hello}");
    assert_eq!(
        settings["env"],
        serde_json::json!({"GREETING": "Howdy"}),
        "{hello}"
    );
    // AWS's schedule expression as wisp's cron (its weekdays count from 1).
    assert_eq!(
        settings["cron"],
        serde_json::json!(["0 12 * * 1#1"]),
        "{hello}"
    );
    assert_eq!(
        hello["versions"][0]["origin"], "serverless:shop/test",
        "{hello}"
    );
    let api = admin(&wisp, "/v1/functions/shop-test-api").await.json();
    assert_eq!(api["versions"][0]["settings"]["timeout"], "5s", "{api}");

    let info = sls_ok(&wisp, dir.path(), &["info"]);
    assert!(
        info.contains(&format!(
            "shop-test-api http://{}/test/api (v1=100%",
            wisp.public
        )),
        "{info}"
    );

    let invoked = sls_ok(&wisp, dir.path(), &["invoke", "-f", "hello"]);
    assert!(invoked.contains("Hello, world!"), "{invoked}");

    let created = send(
        Method::POST,
        &wisp.url("/test/api/items"),
        &[],
        Bytes::from(r#"{"name": "saucer", "price_cents": 300}"#),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let logs = sls_ok(
        &wisp,
        dir.path(),
        &["logs", "-f", "api", "--startTime", "1h"],
    );
    assert!(logs.contains("creating item `saucer`"), "{logs}");
    let filtered = sls_ok(
        &wisp,
        dir.path(),
        &["logs", "-f", "api", "--filter", "no such text"],
    );
    assert!(!filtered.contains("saucer"), "{filtered}");

    // A second deploy makes v2 of each; rollback restores v1 of each.
    sls_ok(&wisp, dir.path(), &["deploy"]);
    assert_eq!(serving(&wisp, "/test/hello").await, "2");
    sls_ok(&wisp, dir.path(), &["rollback"]);
    assert_eq!(serving(&wisp, "/test/hello").await, "1");
    assert_eq!(serving(&wisp, "/test/api/items").await, "1");
    let one = sls_ok(&wisp, dir.path(), &["deploy", "function", "-f", "hello"]);
    assert!(one.contains("shop-test-hello v3"), "{one}");
    assert_eq!(serving(&wisp, "/test/hello").await, "3");
    assert_eq!(
        serving(&wisp, "/test/api/items").await,
        "1",
        "only hello was deployed"
    );
    sls_ok(
        &wisp,
        dir.path(),
        &[
            "rollback",
            "function",
            "-f",
            "hello",
            "--function-version",
            "2",
        ],
    );
    assert_eq!(serving(&wisp, "/test/hello").await, "2");

    // A function dropped from the file goes at the next deploy; one this
    // service never deployed stays.
    let without_hello = SERVICE.split("  hello:").next().unwrap();
    std::fs::write(dir.path().join("serverless.yml"), without_hello).unwrap();
    let pruned = sls_ok(&wisp, dir.path(), &["deploy"]);
    assert!(pruned.contains("removed shop-test-hello"), "{pruned}");
    assert_eq!(
        admin(&wisp, "/v1/functions/shop-test-hello").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(serving(&wisp, "/other").await, "1");

    let removed = sls_ok(&wisp, dir.path(), &["remove"]);
    assert!(removed.contains("removed shop-test-api"), "{removed}");
    assert_eq!(
        admin(&wisp, "/v1/functions/shop-test-api").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        serving(&wisp, "/other").await,
        "1",
        "remove left what it did not deploy"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn what_wisp_cannot_honour_is_refused_by_name_and_nothing_is_deployed() {
    let wisp = Wisp::start_with_env(&[], &[("WISP_ADMIN_TOKEN", TOKEN)]);
    // An AWS function (`handler`, `runtime`) beside a good one.
    let aws = SERVICE.replace(
        "  hello:\n    wasm: hello.wasm\n",
        "  hello:\n    handler: handler.hello\n    runtime: nodejs20.x\n",
    );
    let dir = service(SERVICE);
    let printed = deploy_refused(&wisp, dir.path(), &aws);
    assert!(
        printed.contains("functions.hello.handler: wisp cannot honour it"),
        "{printed}"
    );
    assert!(
        printed.contains("wasm:"),
        "the refusal says what to give: {printed}"
    );
    let list = admin(&wisp, "/v1/functions").await.json();
    assert_eq!(list, serde_json::json!([]), "nothing was deployed");

    // Two routes for one function, and an event type wisp has no trigger for.
    let two_routes = SERVICE.replace(
        "      - httpApi: GET /hello\n",
        "      - httpApi: GET /hello\n      - http: GET /hi\n",
    );
    let printed = deploy_refused(&wisp, dir.path(), &two_routes);
    assert!(
        printed.contains("wisp serves a function at one route"),
        "{printed}"
    );
    let sqs = SERVICE.replace(
        "      - httpApi: GET /hello\n",
        "      - sqs: arn:aws:sqs:eu-west-1:1:queue\n",
    );
    let printed = deploy_refused(&wisp, dir.path(), &sqs);
    assert!(printed.contains("sqs"), "{printed}");
    assert_eq!(
        admin(&wisp, "/v1/functions").await.json(),
        serde_json::json!([])
    );

    // A wrong token is the host's 401, said as such.
    let wrong_token = SERVICE.replace("${env:WISP_TOKEN}", "wrong");
    let printed = deploy_refused(&wisp, dir.path(), &wrong_token);
    assert!(printed.contains("admin token"), "{printed}");
    assert!(
        !printed.contains(TOKEN),
        "the token is never printed: {printed}"
    );
}
