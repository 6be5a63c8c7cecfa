//! Density and speed: a function's code loads on its first request and is evicted,
//! least recently used first, past `--max-loaded`; evicted code loads again
//! (and a corrupt artifact is caught then) while every function keeps
//! serving; concurrent first requests load it once; a sandbox prepared
//! ahead serves one request and is never reused.

use crate::support::{Wisp, files_under, send};
use bytes::Bytes;
use futures_util::future::join_all;
use http::{Method, StatusCode};
use wisp_test_artifacts as artifacts;

/// The functions the tests deploy, each its own binary (a CGI module, 0.2
/// and 0.3 components), and what each answers on `GET` of its route.
const FUNCTIONS: [(&str, &str, &str); 4] = [
    ("hello", artifacts::HELLO_COMPONENT, "Hello, world!\n"),
    ("cgi", artifacts::CGI_HELLO_MODULE, "Hello from CGI!"),
    ("counter", artifacts::COUNTER_COMPONENT, "1"),
    ("echo", artifacts::ECHO_COMPONENT, ""),
];

async fn deploy_all(wisp: &Wisp) {
    for (name, path, _) in FUNCTIONS {
        wisp.deploy_ok(name, path, &format!("route=/{name}")).await;
    }
}

async fn assert_serves(wisp: &Wisp, name: &str, answer: &str) {
    let response = wisp.get(&format!("/{name}")).await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{name}: {}",
        response.text()
    );
    assert!(
        response.text().starts_with(answer),
        "{name} answered {:?}",
        response.text()
    );
}

/// Versions whose code is in memory now, across every function.
async fn resident_versions(wisp: &Wisp) -> usize {
    let mut resident = 0;
    for (name, _, _) in FUNCTIONS {
        let info = wisp
            .admin_get(&format!("/v1/functions/{name}"))
            .await
            .json();
        let versions = info["versions"].as_array().unwrap();
        assert!(versions.iter().all(|v| v["loaded"] == true), "{info}");
        resident += versions.iter().filter(|v| v["resident"] == true).count();
    }
    resident
}

#[tokio::test(flavor = "multi_thread")]
async fn evicted_code_loads_again_and_every_function_keeps_serving() {
    let wisp = Wisp::start_with(&["--max-loaded", "2"]);
    deploy_all(&wisp).await;
    assert!(
        resident_versions(&wisp).await <= 2,
        "deploys are evicted too"
    );
    let evicted_by_deploys = wisp.metric("wisp_code_evictions_total", &[]).await;
    assert_eq!(evicted_by_deploys, 2.0, "four deploys, two kept");
    for round in 0..3 {
        for (name, _, answer) in FUNCTIONS {
            assert_serves(&wisp, name, answer).await;
            assert!(
                resident_versions(&wisp).await <= 2,
                "round {round}: more than --max-loaded resident"
            );
        }
    }
    let metrics = wisp.metrics().await;
    // Round robin over four with room for two: every request loads.
    assert_eq!(metrics.sum("wisp_code_loads_total", &[]), 4.0 + 12.0);
    assert_eq!(metrics.sum("wisp_code_evictions_total", &[]), 2.0 + 12.0);
    assert_eq!(metrics.sum("wisp_code_resident", &[]), 2.0);
    assert_eq!(metrics.sum("wisp_compilations_total", &[]), 4.0);

    // The most recently used stays: repeated requests load nothing.
    for _ in 0..5 {
        assert_serves(&wisp, "echo", "").await;
    }
    assert_eq!(wisp.metric("wisp_code_loads_total", &[]).await, 16.0);

    // Least recently *used*, not first loaded: echo, loaded before hello
    // but used after it, stays when cgi needs room (first-in-first-out
    // would evict echo here, and load it again below).
    assert_serves(&wisp, "hello", "Hello, world!\n").await; // load: evicts hello3
    assert_serves(&wisp, "echo", "").await; // resident: used after hello now
    assert_serves(&wisp, "cgi", "Hello from CGI!").await; // load: evicts hello
    assert_serves(&wisp, "echo", "").await; // still resident
    assert_eq!(wisp.metric("wisp_code_loads_total", &[]).await, 18.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_loaded_bytes_keeps_only_what_fits_and_the_code_just_loaded() {
    // Every artifact is bigger than 1 KiB: only the one just used stays.
    let wisp = Wisp::start_with(&["--max-loaded", "100", "--max-loaded-bytes", "1KiB"]);
    deploy_all(&wisp).await;
    for (name, _, answer) in FUNCTIONS {
        assert_serves(&wisp, name, answer).await;
        assert_eq!(resident_versions(&wisp).await, 1, "after {name}");
    }
    let loads = wisp.metric("wisp_code_loads_total", &[]).await;
    assert_serves(&wisp, "echo", "").await;
    assert_eq!(
        wisp.metric("wisp_code_loads_total", &[]).await,
        loads,
        "the code just used stays, however big"
    );
    assert_serves(&wisp, "hello", "Hello, world!\n").await;
    assert_eq!(wisp.metric("wisp_code_loads_total", &[]).await, loads + 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_loads_no_code_until_a_function_is_called() {
    let wisp = Wisp::start();
    deploy_all(&wisp).await;
    let wisp = wisp.restart();
    assert_eq!(resident_versions(&wisp).await, 0, "nothing loaded at start");
    assert_eq!(wisp.metric("wisp_code_loads_total", &[]).await, 0.0);
    assert_serves(&wisp, "hello", "Hello, world!\n").await;
    assert_eq!(resident_versions(&wisp).await, 1);
    assert_eq!(wisp.metric("wisp_code_loads_total", &[]).await, 1.0);
    let metrics = wisp.metrics().await;
    assert!(
        metrics
            .text
            .contains("wisp_code_load_duration_seconds_count 1\n"),
        "the load's time is measured:\n{}",
        metrics.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_corrupt_artifact_of_an_evicted_function_is_caught_when_it_loads() {
    let wisp = Wisp::start_with(&["--max-loaded", "1"]);
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    assert_serves(&wisp, "hello", "Hello, world!\n").await;
    // Deploying cgi evicts hello's code.
    wisp.deploy_ok("cgi", artifacts::CGI_HELLO_MODULE, "route=/cgi")
        .await;
    let hello = wisp.admin_get("/v1/functions/hello").await.json();
    assert_eq!(hello["versions"][0]["resident"], false, "{hello}");
    let compiled = wisp.data_dir().join("artifacts/compiled");
    let key = {
        let listed = std::fs::read_dir(&compiled).unwrap();
        let mut artifacts: Vec<_> = listed
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        artifacts.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
        // The component's artifact is the bigger of the two.
        artifacts.pop().unwrap()
    };
    let mut bytes = std::fs::read(&key).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&key, &bytes).unwrap();

    assert_serves(&wisp, "hello", "Hello, world!\n").await;
    assert_eq!(
        wisp.metric("wisp_compilations_total", &[]).await,
        3.0,
        "hello was recompiled from its source when it loaded"
    );
    assert!(wisp.log().contains("corrupt"), "the corruption is logged");
    assert_eq!(files_under(&compiled).len(), 4, "two artifacts, two sums");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_requests_load_the_code_once() {
    let wisp = Wisp::start();
    wisp.deploy_ok("echo", artifacts::ECHO_COMPONENT, "route=/echo")
        .await;
    let wisp = wisp.restart();
    let url = wisp.url("/echo");
    let answers = join_all((0..32).map(|i| {
        let url = url.clone();
        async move { send(Method::POST, &url, &[], Bytes::from(format!("{i}"))).await }
    }))
    .await;
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.text(), i.to_string(), "each request its own answer");
    }
    assert_eq!(wisp.metric("wisp_code_loads_total", &[]).await, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prepared_sandbox_serves_one_request_and_is_never_reused() {
    let wisp = Wisp::start();
    wisp.deploy_ok("counter", artifacts::COUNTER_COMPONENT, "route=/counter")
        .await;
    // One at a time: each request finds the sandbox the last one left
    // prepared (when it is ready in time).
    for _ in 0..40 {
        assert_eq!(wisp.get("/counter").await.text(), "1");
    }
    let used = wisp.metric("wisp_prepared_sandboxes_used_total", &[]).await;
    assert!(used > 0.0, "no request found a prepared sandbox");
    // Many at once: at most one of them takes the prepared one.
    let answers = join_all((0..64).map(|_| wisp.get("/counter"))).await;
    for answer in answers {
        assert_eq!(answer.text(), "1", "a sandbox served two requests");
    }
    let made = wisp.metric("wisp_sandboxes_prepared_total", &[]).await;
    let used = wisp.metric("wisp_prepared_sandboxes_used_total", &[]).await;
    assert!(used <= made, "{used} used, {made} made");
}

#[tokio::test(flavor = "multi_thread")]
async fn preparing_can_be_turned_off() {
    let wisp = Wisp::start_with(&["--prepare", "0"]);
    wisp.deploy_ok("counter", artifacts::COUNTER_COMPONENT, "route=/counter")
        .await;
    for _ in 0..5 {
        assert_eq!(wisp.get("/counter").await.text(), "1");
    }
    assert_eq!(wisp.metric("wisp_sandboxes_prepared_total", &[]).await, 0.0);
}
