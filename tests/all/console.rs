//! The web console in a real browser: Debian's Chromium, headless, driven
//! over the DevTools protocol (`chromiumoxide`) against a real `wisp serve`
//! with an admin token. Screenshots go to `target/console-screenshots/`.
//!
//! Needs `chromium` (installed by `scripts/install-deps.sh`); without it the
//! test fails, saying so.

use crate::support::{Wisp, eventually, send};
use bytes::Bytes;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Element, Page};
use futures_util::StreamExt;
use http::Method;
use std::path::PathBuf;
use std::time::Duration;
use wisp_test_artifacts as artifacts;

const TOKEN: &str = "console-test-token";

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shoot(page: &Page, name: &str) {
    page.save_screenshot(
        ScreenshotParams::builder().full_page(true).build(),
        screenshots().join(format!("{name}.png")),
    )
    .await
    .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
}

/// The element `selector` finds, waiting up to 10 s for it.
async fn element(page: &Page, selector: &str) -> Element {
    for _ in 0..100 {
        if let Ok(found) = page.find_element(selector).await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no `{selector}` on the page within 10 s");
}

/// Clicks `selector`.
async fn click(page: &Page, selector: &str) {
    element(page, selector).await.click().await.unwrap();
}

/// Clicks `selector` and types `text` into it.
async fn type_into(page: &Page, selector: &str, text: &str) {
    let found = element(page, selector).await;
    found.click().await.unwrap();
    found.type_str(text).await.unwrap();
}

/// The text of `selector`, once `check` accepts it (up to 10 s).
async fn text_when(page: &Page, selector: &str, check: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(found) = page.find_element(selector).await
            && let Ok(Some(text)) = found.inner_text().await
        {
            if check(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{selector}` never matched; last text: {last:?}");
}

const BEARER: (&str, &str) = ("authorization", "Bearer console-test-token");

/// Deploys `wasm` as `name` through the admin API, with the token.
async fn deploy(wisp: &Wisp, name: &str, wasm: &str, query: &str) {
    let url = wisp.admin_url(&format!("/v1/functions/{name}?{query}"));
    let body = Bytes::from(std::fs::read(wasm).unwrap());
    let response = send(Method::PUT, &url, &[BEARER], body).await;
    assert!(
        response.status.is_success(),
        "deploy {name}: {}",
        response.text()
    );
}

/// Goes to page `hash` of the console (a change of hash, not a load).
async fn visit(page: &Page, hash: &str) {
    page.evaluate(format!("location.hash = '{hash}'"))
        .await
        .unwrap_or_else(|e| panic!("visit {hash}: {e}"));
}

/// Starts Chromium with a profile of its own (tests run side by side).
async fn launch() -> (Browser, tokio::task::JoinHandle<()>, tempfile::TempDir) {
    let executable = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect(
            "Chromium is not installed: run scripts/install-deps.sh (Debian package `chromium`)",
        );
    let profile = tempfile::tempdir().expect("a profile directory");
    let config = BrowserConfig::builder()
        .chrome_executable(executable)
        .user_data_dir(profile.path())
        .no_sandbox()
        .window_size(1280, 900)
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .build()
        .expect("browser config");
    let (browser, mut handler) = Browser::launch(config).await.expect("launch Chromium");
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    (browser, events, profile)
}

#[tokio::test]
async fn the_console_signs_in_deploys_splits_traffic_and_tails_logs() {
    let wisp = Wisp::start_with(&["--admin-token", TOKEN]);
    deploy(&wisp, "noisy", artifacts::HOSTILE_COMPONENT, "route=/noisy").await;
    let (mut browser, events, _profile) = launch().await;
    let page = browser
        .new_page(wisp.admin_url("/"))
        .await
        .expect("open the console");

    // Signing in: a wrong token is refused, the right one opens the console.
    type_into(&page, "#token", "wrong").await;
    click(&page, "#login button").await;
    text_when(&page, "#login-error", |t| t.contains("not the admin token")).await;
    type_into(&page, "#token", TOKEN).await;
    click(&page, "#login button").await;
    let listed = text_when(&page, "#functions", |t| t.contains("noisy")).await;
    assert!(
        listed.contains("/noisy") && listed.contains("v1 100%"),
        "{listed}"
    );
    shoot(&page, "functions").await;
    text_when(&page, "#builders", |t| {
        t.contains("Builds from source: rust, c")
    })
    .await;

    // Deploying a .wasm through the form, then calling it over HTTP.
    visit(&page, "#/deploy").await;
    let input = element(&page, "#wasm").await;
    let wasm = std::fs::canonicalize(artifacts::HELLO_COMPONENT).unwrap();
    page.execute(
        SetFileInputFilesParams::builder()
            .file(wasm.to_string_lossy())
            .backend_node_id(input.backend_node_id)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    type_into(&page, "#name", "greeter").await;
    type_into(&page, "#route", "/greet").await;
    click(&page, "#deploy button").await;
    text_when(&page, "#result", |t| t.contains("Deployed greeter v1")).await;
    shoot(&page, "deploy").await;
    let greeting = wisp.get("/greet").await;
    assert_eq!(greeting.text(), "Hello, world!\n");
    // A bad upload shows the API's message.
    type_into(&page, "#name", "x").await;
    type_into(&page, "#settings", "timeout=forever").await;
    click(&page, "#deploy button").await;
    let refused = text_when(&page, "#result", |t| t.contains("timeout")).await;
    assert!(!refused.contains("Deployed"), "{refused}");

    // A second version, and a 50/50 split set in the UI, seen over HTTP.
    deploy(
        &wisp,
        "greeter",
        artifacts::ECHO_COMPONENT,
        "route=/greet&no-traffic=true",
    )
    .await;
    visit(&page, "#/functions/greeter").await;
    let v1 = element(&page, "#weight-v1").await;
    v1.click().await.unwrap();
    page.evaluate("document.querySelector('#weight-v1').value = '50'; document.querySelector('#weight-v2').value = '50';")
        .await
        .unwrap();
    click(&page, "#apply-traffic").await;
    text_when(&page, "#message", |t| t.contains("applied")).await;
    let info = send(
        Method::GET,
        &wisp.admin_url("/v1/functions/greeter"),
        &[BEARER],
        Bytes::new(),
    )
    .await
    .json();
    assert_eq!(info["traffic"].as_array().unwrap().len(), 2, "{info}");
    let mut versions = std::collections::HashSet::new();
    for _ in 0..40 {
        let response = wisp.get("/greet").await;
        versions.insert(response.header("x-wisp-version").unwrap().to_owned());
    }
    assert_eq!(versions.len(), 2, "both versions serve: {versions:?}");
    shoot(&page, "function").await;

    // A request's log line appears in the live tail. The tail may open
    // after a request is sent, so requests go on until one shows: no sleep
    // has to outlast the subscription.
    visit(&page, "#/functions/noisy").await;
    let tail = element(&page, "#log-tail").await;
    let shown = eventually(Duration::from_secs(20), async || {
        send(
            Method::GET,
            &wisp.url("/noisy/stderr?kib=1"),
            &[],
            Bytes::new(),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        tail.inner_text()
            .await
            .ok()
            .flatten()
            .is_some_and(|t| t.contains("v1 http stderr"))
    })
    .await;
    assert!(shown, "no request's log line reached the live tail");
    assert!(
        eventually(Duration::from_secs(10), async || {
            page.find_element("#charts polyline").await.is_ok()
        })
        .await,
        "charts are drawn"
    );
    shoot(&page, "logs").await;

    // A function built on the host: its page gives the push URL and the
    // last build's state and output.
    let source = tempfile::tempdir().unwrap();
    std::fs::write(
        source.path().join("main.c"),
        "#include <stdio.h>\nint main(void) { printf(\"Content-Type: text/plain\\r\\n\\r\\nbuilt\\n\"); }\n",
    )
    .unwrap();
    let built = wisp.cli_with_env(
        &[
            "deploy",
            "built",
            "--source",
            source.path().to_str().unwrap(),
        ],
        &[("WISP_ADMIN_TOKEN", TOKEN)],
    );
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    visit(&page, "#/functions/built").await;
    let push = text_when(&page, "#push-url", |t| t.contains("/git/built.git")).await;
    assert!(push.starts_with("git push http://"), "{push}");
    text_when(&page, "#build-state", |t| {
        t.contains("Last build: succeeded")
    })
    .await;
    text_when(&page, "#build-log", |t| {
        t.contains("clang --target=wasm32-wasi")
    })
    .await;
    shoot(&page, "build").await;

    browser.close().await.unwrap();
    events.abort();
}

#[tokio::test]
async fn a_tokenless_console_offers_no_sign_out_and_shows_settings_as_typed() {
    let wisp = Wisp::start();
    wisp.deploy_ok(
        "hello",
        artifacts::HELLO_COMPONENT,
        "route=/hello&config=greeting=Howdy&env=MODE=a%3Db&timeout=2s",
    )
    .await;
    let (mut browser, events, _profile) = launch().await;
    let page = browser
        .new_page(wisp.admin_url("/"))
        .await
        .expect("open the console");
    text_when(&page, "#functions", |t| t.contains("hello")).await;
    visit(&page, "#/functions/hello").await;
    let settings = text_when(&page, "#settings", |t| t.contains("greeting")).await;
    assert!(
        settings.contains("greeting=Howdy") && settings.contains("MODE=a=b"),
        "pairs shown as typed: {settings}"
    );
    assert!(!settings.contains("[object Object]"), "{settings}");
    let hidden: bool = page
        .evaluate("document.getElementById('sign-out').hidden")
        .await
        .unwrap()
        .into_value()
        .unwrap();
    assert!(hidden, "a host without a token has nobody to sign out");
    shoot(&page, "tokenless-function").await;
    browser.close().await.unwrap();
    events.abort();
}
