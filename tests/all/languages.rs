//! Functions in any language: the Rust SDK's example guests, JavaScript and
//! Python components built with their ecosystems' own tools, and `wisp new`
//! templates taken from nothing to a deployed function.

use crate::support::{Wisp, required_guest, send};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::path::Path;
use std::process::Command;
use wisp_test_artifacts as artifacts;

#[tokio::test(flavor = "multi_thread")]
async fn sdk_json_api_routes_parses_and_answers_json() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "api",
        artifacts::SDK_API_COMPONENT,
        "route=/api&env=GREETING=Howdy",
    )
    .await;

    let all = wisp.get("/api/items").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.header("content-type"), Some("application/json"));
    assert_eq!(all.json().as_array().unwrap().len(), 3);
    let cheap = wisp.get("/api/items?max_price=1000").await.json();
    assert_eq!(cheap.as_array().unwrap().len(), 1, "{cheap}");
    assert_eq!(cheap[0]["name"], "mug");

    let one = wisp.get("/api/items/2").await.json();
    assert_eq!(one["name"], "teapot");
    let missing = wisp.get("/api/items/99").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error(), "no item 99");
    let bad_id = wisp.get("/api/items/two").await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    let bad_query = wisp.get("/api/items?max_price=lots").await;
    assert_eq!(bad_query.status, StatusCode::BAD_REQUEST);

    let item = r#"{"name": "saucer", "price_cents": 300}"#;
    let created = send(
        Method::POST,
        &wisp.url("/api/items"),
        &[],
        Bytes::from(item),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.json()["id"], 4);
    let invalid = send(
        Method::POST,
        &wisp.url("/api/items"),
        &[],
        Bytes::from("{nope"),
    )
    .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert!(
        invalid.error().contains("invalid JSON"),
        "{}",
        invalid.text()
    );

    let wrong_method = send(Method::DELETE, &wisp.url("/api/items"), &[], Bytes::new()).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.header("allow").unwrap().contains("GET"));
    assert_eq!(wisp.get("/api/nowhere").await.status, StatusCode::NOT_FOUND);

    assert_eq!(wisp.get("/api/hello/Ada").await.text(), "Howdy, Ada!\n");
    let logs = wisp.admin_get("/v1/functions/api/logs").await.text();
    assert!(
        logs.contains("creating item `saucer`"),
        "the SDK's log line reached the host: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_static_site_serves_only_its_directory() {
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(site.path().join("style.css"), "h1 { color: red }").unwrap();
    let secret = site
        .path()
        .parent()
        .unwrap()
        .join(format!("secret-{}.txt", std::process::id()));
    std::fs::write(&secret, "do not serve").unwrap();
    let wisp = Wisp::start();
    let query = format!("route=/site&dir={}:/static", site.path().display());
    wisp.deploy_ok("site", artifacts::SDK_STATIC_COMPONENT, &query)
        .await;

    let home = wisp.get("/site/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert_eq!(home.text(), "<h1>home</h1>");
    assert_eq!(
        home.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let css = wisp.get("/site/style.css").await;
    assert_eq!(css.header("content-type"), Some("text/css"));
    assert_eq!(
        wisp.get("/site/missing.txt").await.status,
        StatusCode::NOT_FOUND
    );
    let name = secret.file_name().unwrap().to_str().unwrap();
    for escape in [
        format!("/site/../{name}"),
        format!("/site/..%2F{name}"),
        format!("/site/%2E%2E/{name}"),
    ] {
        let response = wisp.get(&escape).await;
        assert_ne!(response.status, StatusCode::OK, "{escape}");
        assert!(
            !response.text().contains("do not serve"),
            "{escape} leaked the file"
        );
    }
    std::fs::remove_file(secret).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_fetch_goes_through_the_allow_list() {
    sdk_fetch_through_the_allow_list(artifacts::SDK_FETCH_COMPONENT, "wasi-http").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_s_0_3_flavour_serves_and_fetches_through_the_allow_list() {
    sdk_fetch_through_the_allow_list(artifacts::SDK_FETCH3_COMPONENT, "wasi-http-0.3").await;
}

/// `guests/sdk-fetch` built as `binary` (of ABI `abi`) fetches an allowed
/// origin, and is denied another.
async fn sdk_fetch_through_the_allow_list(binary: &str, abi: &str) {
    let allowed = crate::upstream::Upstream::start("hello from upstream").await;
    let other = crate::upstream::Upstream::start("forbidden").await;
    let wisp = Wisp::start();
    let query = format!(
        "route=/fetch&allow-outbound=http://{}&allow-outbound=http://s.wisp.internal",
        allowed.addr
    );
    let report = wisp.deploy_ok("fetch", binary, &query).await;
    assert_eq!(report["abi"], abi, "{report}");
    // A chained call to a WASI 0.3 function, its body read whole by the
    // caller (a 0.3 caller reads it inside its own event loop).
    wisp.deploy_ok("s", artifacts::SERVICE3_COMPONENT, "route=/s")
        .await;
    let called = wisp.get("/fetch?call=s&path=/count").await.json();
    assert_eq!(called["status"], 200, "{called}");
    assert_eq!(called["body"], "1", "{called}");
    // A body the callee writes in 64 KiB steps after its head, each waiting
    // for the last to be read.
    let called = wisp.get("/fetch?call=s&path=/big%3F256").await;
    assert_eq!(called.status, StatusCode::OK, "{}", called.text());
    let called = called.json();
    assert_eq!(called["status"], 200, "{called}");
    assert_eq!(called["body"].as_str().map(str::len), Some(256 << 10));

    let ok = wisp
        .get(&format!("/fetch?url=http://{}/x", allowed.addr))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["body"], "hello from upstream");
    let denied = wisp
        .get(&format!("/fetch?url=http://{}/x", other.addr))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text());
    assert!(denied.error().contains("allow-list"), "{}", denied.text());
    assert_eq!(other.hits(), 0);
}

/// A `wasi:http` component in another language answers with JSON about the
/// request; checks that it saw the method, path, query and body.
async fn assert_describes_request(wisp: &Wisp, route: &str, greeting: &str) {
    let url = wisp.url(&format!("{route}/some/path?a=1&b=two"));
    let response = send(Method::POST, &url, &[], Bytes::from_static(b"payload")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["hello"], greeting, "{body}");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], format!("{route}/some/path"));
    assert_eq!(body["query"], "a=1&b=two");
    assert_eq!(body["body"], "payload");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_javascript_component_built_with_componentize_js_runs() {
    let component = required_guest(artifacts::JS_HELLO_COMPONENT);
    let wisp = Wisp::start();
    wisp.deploy_ok("js", component, "route=/js").await;
    assert_describes_request(&wisp, "/js", "Hello from JavaScript").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_component_built_with_componentize_py_runs() {
    let component = required_guest(artifacts::PYTHON_HELLO_COMPONENT);
    let wisp = Wisp::start();
    wisp.deploy_ok("py", component, "route=/py&env=GREETING=Hi")
        .await;
    assert_describes_request(&wisp, "/py", "Hi from Python").await;
}

/// Runs `wisp new NAME --lang LANG`, then its `build.sh` (and `npm ci`
/// for JavaScript), then deploys and invokes it with the CLI.
/// Where a template's function is built.
#[derive(PartialEq)]
enum Building {
    /// With its `build.sh`, here, then uploaded.
    Here,
    /// On the host: the tree is sent (`wisp deploy --source`) and built
    /// there, in the build jail.
    OnTheHost,
}

fn new_build_deploy_invoke(wisp: &Wisp, language: &str, name: &str) -> String {
    new_deploy_invoke(wisp, language, name, Building::Here)
}

fn new_deploy_invoke(wisp: &Wisp, language: &str, name: &str, building: Building) -> String {
    let parent = tempfile::tempdir().unwrap();
    let new = wisp.cli(&[
        "new",
        name,
        "--lang",
        language,
        "--dir",
        parent.path().to_str().unwrap(),
    ]);
    assert!(
        new.status.success(),
        "wisp new: {}",
        String::from_utf8_lossy(&new.stderr)
    );
    let dir = parent.path().join(name);
    if language == "js" {
        run_in(
            &dir,
            "npm",
            // From the template's lockfile, through the npm cache that
            // installing componentize-js for `guests/js` filled.
            &[
                "ci",
                "--prefer-offline",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ],
        );
    }
    let route = format!("/{name}");
    let deploy = if building == Building::OnTheHost {
        wisp.cli(&[
            "deploy",
            name,
            "--source",
            dir.to_str().unwrap(),
            "--route",
            &route,
        ])
    } else {
        // The Rust template's lockfile must be complete: the build may not
        // change it (so the template does not drift with crates.io).
        let build_args: &[&str] = if language == "rust" {
            &["--locked"]
        } else {
            &[]
        };
        run_in(&dir, "./build.sh", build_args);
        let wasm = dir.join(format!("{name}.wasm"));
        assert!(wasm.exists(), "build.sh made no {}", wasm.display());
        wisp.cli(&["deploy", name, wasm.to_str().unwrap(), "--route", &route])
    };
    assert!(
        deploy.status.success(),
        "deploy: {}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    let invoke = wisp.cli(&["invoke", name, "/?name=Ada"]);
    assert!(
        invoke.status.success(),
        "invoke: {}",
        String::from_utf8_lossy(&invoke.stdout)
    );
    String::from_utf8_lossy(&invoke.stdout).into_owned()
}

fn run_in(dir: &Path, program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        // The outer build's settings must not leak into the function's build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap_or_else(|e| panic!("running `{program}` in {}: {e}", dir.display()));
    assert!(
        output.status.success(),
        "`{program}` failed in {}:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rust_template_goes_from_nothing_to_a_deployed_function() {
    let wisp = Wisp::start();
    let answer = tokio::task::block_in_place(|| new_build_deploy_invoke(&wisp, "rust", "rusty"));
    assert_eq!(answer, "Hello, Ada, from rusty!\n");
    let info = wisp.admin_get("/v1/functions/rusty").await.json();
    assert_eq!(info["versions"][0]["abi"], "wasi-http-0.3", "{info}");
    let info = wisp.get("/rusty/info").await.json();
    assert_eq!(info["function"], "rusty");
    assert_eq!(info["path"], "/info");
    assert_visit_counter(&wisp, "/rusty/visits").await;
}

/// The template's `/visits` counts in the function's own key-value bucket.
async fn assert_visit_counter(wisp: &Wisp, path: &str) {
    for expected in ["visits: 1\n", "visits: 2\n"] {
        let response = wisp.get(path).await;
        assert_eq!(response.text(), expected, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_c_template_goes_from_nothing_to_a_deployed_function() {
    required_guest(artifacts::CGI_C_MODULE);
    let wisp = Wisp::start();
    let answer = tokio::task::block_in_place(|| new_build_deploy_invoke(&wisp, "c", "cfn"));
    assert!(answer.starts_with("Hello from cfn (C)!"), "{answer}");
    assert!(answer.contains("query=name=Ada"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_template_goes_from_nothing_to_a_deployed_function() {
    required_guest(artifacts::JS_HELLO_COMPONENT);
    let wisp = Wisp::start();
    let answer = tokio::task::block_in_place(|| new_build_deploy_invoke(&wisp, "js", "jsfn"));
    assert_eq!(answer, "Hello, Ada, from jsfn!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_template_goes_from_nothing_to_a_function_built_on_the_host() {
    required_guest(artifacts::PYTHON_HELLO_COMPONENT);
    let wisp = Wisp::start();
    let answer = tokio::task::block_in_place(|| {
        new_deploy_invoke(&wisp, "python", "pyfn", Building::OnTheHost)
    });
    assert_eq!(answer, "Hello, Ada, from pyfn!\n");
    assert_visit_counter(&wisp, "/pyfn/visits").await;
}
