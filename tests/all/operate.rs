//! Operating functions: `wisp up` and `wisp serve --manifest` from a
//! manifest, versions and traffic splits, blue/green and rollback under load
//! and with requests in flight, logs, metrics and metering.

use crate::support::{Wisp, eventually, finish, send, start_slow, stderr, stdout};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wisp_test_artifacts as artifacts;

fn write_manifest(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("wisp.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A manifest in `dir` of two functions: `hello`, built by copying the hello
/// component into place, and `cgi`, the prebuilt CGI module `cgi`.
fn two_function_manifest(dir: &std::path::Path, cgi: &str) -> std::path::PathBuf {
    write_manifest(
        dir,
        &format!(
            r#"version = 1

# The build copies a prebuilt guest into place.
[functions.hello]
build = "cp {hello} hello.wasm"
wasm = "hello.wasm"
route = "/hello"

[functions.cgi]
wasm = "{cgi}"
route = "/cgi"
memory = "32MiB"
env = {{ GREETING = "hi" }}
"#,
            hello = artifacts::HELLO_COMPONENT,
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn up_deploys_what_changed_and_nothing_twice() {
    let wisp = Wisp::start();
    let app = tempfile::tempdir().unwrap();
    let manifest = two_function_manifest(app.path(), artifacts::CGI_HELLO_MODULE);
    let file = manifest.to_str().unwrap();
    let first = tokio::task::block_in_place(|| wisp.cli(&["up", "-f", file]));
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("+ hello: created (v1)"),
        "{}",
        stdout(&first)
    );
    assert!(
        stdout(&first).contains("+ cgi: created (v1)"),
        "{}",
        stdout(&first)
    );
    assert!(
        app.path().join("hello.wasm").exists(),
        "the build command ran"
    );
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");

    let second = tokio::task::block_in_place(|| wisp.cli(&["up", "-f", file]));
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("= hello: unchanged"),
        "{}",
        stdout(&second)
    );
    assert!(
        stdout(&second).contains("= cgi: unchanged"),
        "{}",
        stdout(&second)
    );
    assert_eq!(
        wisp.admin_get("/v1/functions/hello").await.json()["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A settings change redeploys only that function.
    let changed = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("32MiB", "64MiB");
    std::fs::write(&manifest, changed).unwrap();
    let third = tokio::task::block_in_place(|| wisp.cli(&["up", "-f", file]));
    assert!(
        stdout(&third).contains("~ cgi: updated (v2)"),
        "{}",
        stdout(&third)
    );
    assert!(
        stdout(&third).contains("= hello: unchanged"),
        "{}",
        stdout(&third)
    );

    // Functions the manifest does not list stay, unless pruning.
    wisp.deploy_ok("extra", artifacts::COUNTER_COMPONENT, "route=/extra")
        .await;
    let kept = tokio::task::block_in_place(|| wisp.cli(&["up", "-f", file]));
    assert!(
        stdout(&kept).contains("? extra: not in the manifest"),
        "{}",
        stdout(&kept)
    );
    assert_eq!(wisp.get("/extra").await.status, StatusCode::OK);
    let pruned = tokio::task::block_in_place(|| wisp.cli(&["up", "-f", file, "--prune"]));
    assert!(
        stdout(&pruned).contains("- extra: removed"),
        "{}",
        stdout(&pruned)
    );
    assert_eq!(wisp.get("/extra").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_manifest_deploys_nothing_and_names_the_line() {
    let wisp = Wisp::start();
    let app = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        app.path(),
        &format!(
            "version = 1\n\n[functions.good]\nwasm = \"{}\"\nroute = \"/good\"\n\n[functions.bad]\nwasm = \"{}\"\nroute = \"/bad\"\ntimeout = \"soon\"\n",
            artifacts::HELLO_COMPONENT,
            artifacts::HELLO_COMPONENT,
        ),
    );
    let output =
        tokio::task::block_in_place(|| wisp.cli(&["up", "-f", manifest.to_str().unwrap()]));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("wisp.toml:10:"), "{message}");
    assert!(
        message.contains("`timeout`") && message.contains("function `bad`"),
        "{message}"
    );
    assert_eq!(
        wisp.admin_get("/v1/functions").await.json(),
        serde_json::json!([]),
        "nothing was deployed"
    );

    std::fs::write(
        &manifest,
        "version = 1\n[functions.x]\nwasm = \"x.wasm\"\nroute = \"/x\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let unknown =
        tokio::task::block_in_place(|| wisp.cli(&["up", "-f", manifest.to_str().unwrap()]));
    assert!(
        stderr(&unknown).contains("wisp.toml:5:") && stderr(&unknown).contains("colour"),
        "{}",
        stderr(&unknown)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn up_watch_rebuilds_and_redeploys_on_change() {
    let wisp = Wisp::start();
    let app = tempfile::tempdir().unwrap();
    std::fs::create_dir(app.path().join("src")).unwrap();
    std::fs::write(app.path().join("src/which"), artifacts::HELLO_COMPONENT).unwrap();
    let manifest = write_manifest(
        app.path(),
        r#"version = 1
[functions.app]
build = "cp \"$(cat src/which)\" app.wasm"
wasm = "app.wasm"
watch = ["src"]
route = "/app"
"#,
    );
    let mut command = Command::new(crate::support::WISP);
    command
        .args(["up", "--watch", "-f", manifest.to_str().unwrap()])
        .env("WISP_ADMIN_URL", wisp.admin_url(""))
        .stdout(Stdio::piped());
    let mut watcher = crate::support::Spawned::spawn(command, "wisp up --watch");
    let lines = BufReader::new(watcher.child().stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
                && line.contains(needle)
            {
                return;
            }
        }
        panic!("`wisp up --watch` never printed `{needle}`");
    };
    tokio::task::block_in_place(|| wait_for("+ app: created (v1)"));
    assert_eq!(wisp.get("/app").await.text(), "Hello, world!\n");
    std::fs::write(app.path().join("src/which"), artifacts::COUNTER_COMPONENT).unwrap();
    tokio::task::block_in_place(|| wait_for("~ app: updated (v2)"));
    assert_eq!(wisp.get("/app").await.text(), "1");
}

/// Versions of responses to `count` requests, by `x-wisp-version`.
async fn version_counts(wisp: &Wisp, path: &str, count: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..count {
        let response = wisp.get(path).await;
        assert_eq!(response.status, StatusCode::OK);
        *counts
            .entry(response.header("x-wisp-version").unwrap().to_owned())
            .or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn a_90_10_split_is_observed_and_headers_pin_versions() {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    wisp.deploy_ok("app", artifacts::COUNTER_COMPONENT, "route=/app")
        .await;
    let split = tokio::task::block_in_place(|| wisp.cli(&["traffic", "app", "v1=90", "v2=10"]));
    assert!(split.status.success(), "{}", stderr(&split));
    assert!(
        stdout(&split).contains("v1=90% v2=10%"),
        "{}",
        stdout(&split)
    );

    let counts = version_counts(&wisp, "/app", 1000).await;
    let v2 = counts.get("2").copied().unwrap_or(0);
    // Binomial(1000, 0.1): mean 100, sd 9.5; ±5 sd.
    assert!(
        (52..=148).contains(&v2),
        "v2 served {v2} of 1000 (expected about 100): {counts:?}"
    );
    assert_eq!(counts.get("1").copied().unwrap_or(0) + v2, 1000);

    for (pin, body) in [("1", "Hello, world!\n"), ("v2", "1")] {
        let pinned = send(
            Method::GET,
            &wisp.url("/app"),
            &[("x-wisp-version", pin)],
            Bytes::new(),
        )
        .await;
        assert_eq!(pinned.text(), body, "pinned to {pin}");
    }
    let unknown = send(
        Method::GET,
        &wisp.url("/app"),
        &[("x-wisp-version", "7")],
        Bytes::new(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.error().contains("no version 7"),
        "{}",
        unknown.text()
    );

    let bad = tokio::task::block_in_place(|| wisp.cli(&["traffic", "app", "v1=90", "v2=20"]));
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("sum to 110"), "{}", stderr(&bad));
    let versions = tokio::task::block_in_place(|| wisp.cli(&["versions", "app"]));
    let table = stdout(&versions);
    assert!(
        table.contains("v1")
            && table.contains("90%")
            && table.contains("v2")
            && table.contains("10%"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_switch_and_rollback_drop_nothing_under_load() {
    let wisp = Arc::new(Wisp::start());
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (wisp, stop) = (wisp.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let (mut served, mut failures) = (0usize, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let response = wisp.get("/app").await;
                if response.status == StatusCode::OK {
                    served += 1;
                } else {
                    failures.push(format!("{}: {}", response.status, response.text()));
                }
            }
            (served, failures)
        }));
    }
    // Green deployed without traffic: only a pinned request reaches it.
    let green = tokio::task::block_in_place(|| {
        wisp.cli(&[
            "deploy",
            "app",
            artifacts::COUNTER_COMPONENT,
            "--route",
            "/app",
            "--no-traffic",
        ])
    });
    assert!(green.status.success(), "{}", stderr(&green));
    assert_eq!(wisp.get("/app").await.header("x-wisp-version"), Some("1"));
    let pinned = send(
        Method::GET,
        &wisp.url("/app"),
        &[("x-wisp-version", "2")],
        Bytes::new(),
    )
    .await;
    assert_eq!(pinned.text(), "1");

    let switch = tokio::task::block_in_place(|| wisp.cli(&["traffic", "app", "v2=100"]));
    assert!(switch.status.success(), "{}", stderr(&switch));
    assert_eq!(version_counts(&wisp, "/app", 20).await.get("2"), Some(&20));

    let rollback = tokio::task::block_in_place(|| wisp.cli(&["rollback", "app"]));
    assert!(rollback.status.success(), "{}", stderr(&rollback));
    assert!(
        stdout(&rollback).contains("rolled back to v1=100%"),
        "{}",
        stdout(&rollback)
    );
    assert_eq!(version_counts(&wisp, "/app", 20).await.get("1"), Some(&20));

    stop.store(true, Ordering::Relaxed);
    let mut served = 0;
    for worker in workers {
        let (count, failures) = worker.await.unwrap();
        assert!(
            failures.is_empty(),
            "requests failed during the switch: {failures:?}"
        );
        served += count;
    }
    assert!(
        served > 20,
        "the load was too light to mean anything: {served}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_logs_are_kept_per_function_and_followed() {
    let wisp = Wisp::start();
    wisp.deploy_ok("h", artifacts::HOSTILE_COMPONENT, "route=/h")
        .await;
    let response = send(
        Method::GET,
        &wisp.url("/h/stderr?kib=2"),
        &[("x-request-id", "req-42")],
        Bytes::new(),
    )
    .await;
    assert_eq!(response.header("x-request-id"), Some("req-42"));
    let logs = tokio::task::block_in_place(|| wisp.cli(&["logs", "h"]));
    let text = stdout(&logs);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("req-42 stderr: xxx"))
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains(" v1 "), "{text}");

    let mut command = Command::new(crate::support::WISP);
    command
        .args(["logs", "h", "--follow", "-n", "0"])
        .env("WISP_ADMIN_URL", wisp.admin_url(""))
        .stdout(Stdio::piped());
    let mut follower = crate::support::Spawned::spawn(command, "wisp logs --follow");
    let lines = BufReader::new(follower.child().stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The follower may not be subscribed yet: send until a line arrives.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut followed = None;
    for _ in 0..20 {
        let sent = send(
            Method::GET,
            &wisp.url("/h/stderr?kib=1"),
            &[("traceparent", traceparent)],
            Bytes::new(),
        )
        .await;
        assert_eq!(
            sent.header("x-request-id"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        if let Ok(line) =
            tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_millis(500)))
        {
            followed = Some(line);
            break;
        }
    }
    let followed = followed.expect("`wisp logs --follow` printed nothing new within 10 s");
    assert!(
        followed.contains("4bf92f3577b34da6a3ce929d0e0e4736 stderr: xxx"),
        "{followed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_guest_output_stays_within_the_log_bound() {
    let wisp = Wisp::start();
    wisp.deploy_ok("h", artifacts::HOSTILE_COMPONENT, "route=/h")
        .await;
    wisp.deploy_ok("hc", artifacts::HOSTILE_CGI_MODULE, "route=/hc")
        .await;
    assert_eq!(wisp.get("/h/stderr?kib=1").await.status, StatusCode::OK);
    let baseline = wisp.rss_bytes();
    // 300 requests × 1 MiB of output each: 300 MiB printed.
    for _ in 0..150 {
        assert_eq!(wisp.get("/h/stderr?kib=1024").await.status, StatusCode::OK);
        assert_eq!(wisp.get("/hc/stderr?kib=1024").await.status, StatusCode::OK);
    }
    let page = wisp
        .admin_get("/v1/functions/h/logs?limit=100000")
        .await
        .text();
    let lines: Vec<serde_json::Value> = page
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let dropped = lines.last().unwrap()["dropped"].as_u64().unwrap_or(0);
    assert!(dropped > 0, "old lines were dropped");
    let kept: usize = lines
        .iter()
        .filter_map(|l| l["text"].as_str())
        .map(str::len)
        .sum();
    assert!(
        kept <= 1 << 20,
        "the log book holds {kept} bytes, over its 1 MiB bound"
    );
    assert!(
        kept >= 1 << 19,
        "the log book holds only {kept} bytes after a flood: the newest lines were not kept"
    );
    let growth = wisp.rss_bytes().saturating_sub(baseline);
    assert!(
        growth < 64 << 20,
        "host RSS grew {} MiB under a log flood",
        growth >> 20
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_as_prometheus_text_and_count_requests() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("h", artifacts::HOSTILE_COMPONENT, "route=/h&timeout=1s")
        .await;
    for _ in 0..25 {
        assert_eq!(wisp.get("/hello").await.status, StatusCode::OK);
    }
    for _ in 0..3 {
        assert_eq!(
            wisp.get("/h/panic").await.status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(
        wisp.get("/h/sleep-forever").await.status,
        StatusCode::GATEWAY_TIMEOUT
    );
    assert_eq!(wisp.get("/nowhere").await.status, StatusCode::NOT_FOUND);

    let text = wisp.admin_get("/metrics").await.text();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in:\n{text}"))
    };
    assert_eq!(
        value(
            "wisp_requests_total",
            &[("function", "hello"), ("status_class", "2xx")]
        ),
        25.0
    );
    assert_eq!(
        value(
            "wisp_requests_total",
            &[("function", "h"), ("status_class", "5xx")]
        ),
        4.0
    );
    assert_eq!(
        value(
            "wisp_limit_breaches_total",
            &[("function", "h"), ("limit", "timeout")]
        ),
        1.0
    );
    assert_eq!(value("wisp_unrouted_requests_total", &[]), 1.0);
    assert_eq!(value("wisp_functions_deployed", &[]), 2.0);
    assert_eq!(value("wisp_compilations_total", &[]), 2.0);
    assert_eq!(
        value("wisp_in_flight_requests", &[("function", "hello")]),
        0.0
    );
    assert!(value("wisp_guest_cpu_seconds_total", &[("function", "hello")]) > 0.0);
    let count = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("function") == Some("hello"))
            .map(|s| match &s.value {
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no histogram {name}"))
    };
    assert_eq!(count("wisp_request_duration_seconds"), 25.0);
    assert_eq!(count("wisp_instantiate_duration_seconds"), 25.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_grows_with_the_work_done() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok(
        "metered",
        artifacts::SLEEP_COMPONENT,
        "route=/metered&fuel=100000000",
    )
    .await;
    for _ in 0..10 {
        wisp.get("/hello").await;
    }
    let first = wisp.usage("hello", 10).await;
    assert_eq!(first["requests"], 10);
    for field in ["wall_seconds", "cpu_seconds", "memory_gb_seconds"] {
        assert!(first[field].as_f64().unwrap() > 0.0, "{field}: {first}");
    }
    for _ in 0..10 {
        wisp.get("/hello").await;
    }
    let second = wisp.usage("hello", 20).await;
    assert_eq!(second["requests"], 20);
    for field in ["wall_seconds", "cpu_seconds", "memory_gb_seconds"] {
        assert!(
            second[field].as_f64().unwrap() > first[field].as_f64().unwrap(),
            "{field} did not grow"
        );
    }
    assert_eq!(second["fuel"], 0, "an unmetered function burns no fuel");

    wisp.get("/metered?ms=1").await;
    let one = wisp.usage("metered", 1).await["fuel"].as_u64().unwrap();
    wisp.get("/metered?ms=1").await;
    let two = wisp.usage("metered", 2).await["fuel"].as_u64().unwrap();
    assert!(one > 0 && two > one, "fuel did not grow: {one} then {two}");
    let sleepy = wisp.usage("metered", 2).await;
    wisp.get("/metered?ms=300").await;
    let after = wisp.usage("metered", 3).await;
    let wall = after["wall_seconds"].as_f64().unwrap() - sleepy["wall_seconds"].as_f64().unwrap();
    let cpu = after["cpu_seconds"].as_f64().unwrap() - sleepy["cpu_seconds"].as_f64().unwrap();
    assert!(wall >= 0.3, "wall time counts the sleep: {wall}");
    assert!(
        cpu < wall / 2.0,
        "CPU time does not count the sleep: {cpu} of {wall}"
    );

    let cli = tokio::task::block_in_place(|| wisp.cli(&["usage", "hello"]));
    assert!(
        stdout(&cli).contains("requests           20"),
        "{}",
        stdout(&cli)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_lines_are_json_with_the_request() {
    let wisp = Wisp::start_with(&["--log-format", "json"]);
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    let response = send(
        Method::GET,
        &wisp.url("/hello/x"),
        &[("x-request-id", "abc-1")],
        Bytes::new(),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    let access_line = || {
        wisp.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["target"] == "wisp::access" && l["fields"]["request_id"] == "abc-1")
    };
    // The line is written when the response is over, just after the client
    // has it.
    assert!(
        eventually(Duration::from_secs(10), async || access_line().is_some()).await,
        "no JSON access line in:\n{}",
        wisp.log()
    );
    let line = access_line().unwrap();
    let fields = &line["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["path"], "/hello/x");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["version"], 1);
    assert!(fields["duration_us"].as_u64().is_some());
    assert!(fields["instantiate_us"].as_u64().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn old_versions_are_collected_but_never_one_with_traffic() {
    let wisp = Wisp::start_with(&["--keep-versions", "2"]);
    wisp.deploy_ok("app", artifacts::HELLO_COMPONENT, "route=/app")
        .await;
    for wasm in [
        artifacts::COUNTER_COMPONENT,
        artifacts::ECHO_COMPONENT,
        artifacts::SLEEP_COMPONENT,
    ] {
        wisp.deploy_ok("app", wasm, "route=/app&no-traffic=true")
            .await;
    }
    let info = wisp.admin_get("/v1/functions/app").await.json();
    let kept: Vec<u64> = info["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_u64().unwrap())
        .collect();
    assert_eq!(
        kept,
        [1, 3, 4],
        "the newest two plus v1, which holds the traffic: {info}"
    );
    let served = wisp.get("/app").await;
    assert_eq!(served.text(), "Hello, world!\n");
    assert_eq!(served.header("x-wisp-version"), Some("1"));
    let collected = send(
        Method::GET,
        &wisp.url("/app"),
        &[("x-wisp-version", "2")],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        collected.status,
        StatusCode::NOT_FOUND,
        "{}",
        collected.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_flight_requests_finish_on_their_version_across_a_switch_and_a_rollback() {
    let wisp = Wisp::start();
    wisp.deploy_ok("app", artifacts::SLEEP_COMPONENT, "route=/app")
        .await;
    wisp.deploy_ok(
        "app",
        artifacts::SLEEP_COMPONENT,
        "route=/app&timeout=20s&no-traffic=true",
    )
    .await;
    let in_flight = async |version: &str| {
        wisp.metric(
            "wisp_in_flight_requests",
            &[("function", "app"), ("version", version)],
        )
        .await
    };
    // Each slow request sleeps 8 s after its head: the switch and the
    // rollback happen while both run (checked below by the in-flight gauge).
    let on_v1 = start_slow(&wisp, "/app?ms=8000&head=first").await;
    assert_eq!(on_v1.headers()["x-wisp-version"], "1");

    let switch = tokio::task::block_in_place(|| wisp.cli(&["traffic", "app", "v2=100"]));
    assert!(switch.status.success(), "{}", stderr(&switch));
    assert_eq!(
        wisp.get("/app?ms=1").await.header("x-wisp-version"),
        Some("2")
    );
    assert_eq!(in_flight("1").await, 1.0, "the v1 request is still running");
    let on_v2 = start_slow(&wisp, "/app?ms=8000&head=first").await;
    assert_eq!(on_v2.headers()["x-wisp-version"], "2");

    let rollback = tokio::task::block_in_place(|| wisp.cli(&["rollback", "app"]));
    assert!(rollback.status.success(), "{}", stderr(&rollback));
    assert!(
        stdout(&rollback).contains("rolled back to v1=100%"),
        "{}",
        stdout(&rollback)
    );
    assert_eq!(
        wisp.get("/app?ms=1").await.header("x-wisp-version"),
        Some("1")
    );
    assert_eq!(in_flight("1").await, 1.0, "the v1 request is still running");
    assert_eq!(in_flight("2").await, 1.0, "the v2 request is still running");

    assert_eq!(finish(on_v1).await, "slept 8000 ms\n");
    assert_eq!(finish(on_v2).await, "slept 8000 ms\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_since_shows_only_recent_lines() {
    let wisp = Wisp::start();
    wisp.deploy_ok("h", artifacts::HOSTILE_COMPONENT, "route=/h")
        .await;
    let log_line = async |request_id: &str| {
        let response = send(
            Method::GET,
            &wisp.url("/h/stderr?kib=1"),
            &[("x-request-id", request_id)],
            Bytes::new(),
        )
        .await;
        assert_eq!(response.status, StatusCode::OK);
    };
    log_line("old-1").await;
    // The test's input: the first line ages past the 2 s window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    log_line("new-1").await;

    let all = tokio::task::block_in_place(|| wisp.cli(&["logs", "h"]));
    assert!(all.status.success(), "{}", stderr(&all));
    assert!(
        stdout(&all).contains("old-1 stderr:") && stdout(&all).contains("new-1 stderr:"),
        "{}",
        stdout(&all)
    );
    let recent = tokio::task::block_in_place(|| wisp.cli(&["logs", "h", "--since", "2s"]));
    assert!(recent.status.success(), "{}", stderr(&recent));
    let text = stdout(&recent);
    assert_eq!(
        text.lines().filter(|l| l.contains("new-1 stderr:")).count(),
        1,
        "{text}"
    );
    assert!(!text.contains("old-1"), "a line older than 2 s: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_with_a_manifest_deploys_its_functions_at_start_and_skips_them_after() {
    let app = tempfile::tempdir().unwrap();
    let manifest = two_function_manifest(app.path(), artifacts::HOSTILE_CGI_MODULE);
    let wisp = Wisp::start_with(&["--manifest", manifest.to_str().unwrap()]);
    assert!(
        app.path().join("hello.wasm").exists(),
        "the build command ran"
    );
    let hello = wisp.get("/hello").await;
    assert_eq!(hello.text(), "Hello, world!\n");
    assert_eq!(hello.header("x-wisp-version"), Some("1"));
    let env = wisp.get("/cgi/env").await.text();
    assert!(env.contains("GREETING=hi\n"), "{env}");
    let cgi = wisp.admin_get("/v1/functions/cgi").await.json();
    assert_eq!(cgi["versions"][0]["settings"]["memory"], "32MiB", "{cgi}");
    assert_eq!(wisp.admin_get("/healthz").await.json()["compilations"], 2);

    // Started again on the same data dir and manifest: nothing to deploy.
    let wisp = wisp.restart();
    let log = wisp.log();
    assert_eq!(
        log.matches("unchanged; already deployed").count(),
        2,
        "{log}"
    );
    for name in ["hello", "cgi"] {
        let info = wisp
            .admin_get(&format!("/v1/functions/{name}"))
            .await
            .json();
        assert_eq!(
            info["versions"].as_array().unwrap().len(),
            1,
            "{name} was deployed again: {info}"
        );
    }
    assert_eq!(wisp.admin_get("/healthz").await.json()["compilations"], 0);
    assert_eq!(wisp.get("/hello").await.text(), "Hello, world!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_time_pool_slots_and_compile_time_are_measured() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("sleep", artifacts::SLEEP_COMPONENT, "route=/sleep")
        .await;
    let metrics = wisp.metrics().await;
    let compiles = metrics.sum("wisp_compile_duration_seconds_count", &[]);
    assert_eq!(compiles, 2.0, "one observation per compile");
    let compile_seconds = metrics.sum("wisp_compile_duration_seconds_sum", &[]);
    // Real compiles take milliseconds at least; over a minute each would
    // have hit the compile time limit.
    assert!(
        compile_seconds > 0.001 && compile_seconds < 120.0,
        "{compile_seconds} s for two compiles"
    );
    assert_eq!(metrics.sum("wisp_pool_slots_in_use", &[]), 0.0);

    let url = wisp.url("/sleep?ms=2000");
    let slow = tokio::spawn(async move { send(Method::GET, &url, &[], Bytes::new()).await });
    assert!(
        eventually(Duration::from_secs(10), async || {
            wisp.metric("wisp_pool_slots_in_use", &[]).await == 1.0
        })
        .await,
        "a running request holds no pool slot: {}",
        wisp.metrics().await.text
    );
    assert_eq!(slow.await.unwrap().status, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(wisp.get("/hello").await.status, StatusCode::OK);
    }
    assert!(
        eventually(Duration::from_secs(10), async || {
            wisp.metric("wisp_pool_slots_in_use", &[]).await == 0.0
        })
        .await,
        "the slot was not given back"
    );
    let metrics = wisp.metrics().await;
    let slept = metrics.sum("wisp_guest_wall_seconds_total", &[("function", "sleep")]);
    // The guest slept 2 s; generous above for a loaded machine.
    assert!(
        (2.0..20.0).contains(&slept),
        "{slept} s of guest wall time for a 2 s sleep"
    );
    let hello = metrics.sum("wisp_guest_wall_seconds_total", &[("function", "hello")]);
    assert!(
        hello > 0.0 && hello < slept,
        "{hello} s of guest wall time for five hellos"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_reports_the_peak_memory_one_request_reached() {
    let wisp = Wisp::start();
    wisp.deploy_ok("h", artifacts::HOSTILE_COMPONENT, "route=/h")
        .await;
    let peak = async |runs| {
        wisp.usage("h", runs).await["peak_memory_bytes"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(wisp.get("/h/hold?mib=1").await.status, StatusCode::OK);
    let small = peak(1).await;
    assert_eq!(wisp.get("/h/hold?mib=40").await.status, StatusCode::OK);
    let large = peak(2).await;
    assert_eq!(large % (64 << 10), 0, "not whole wasm pages: {large}");
    assert!(large >= 40 << 20, "peak {large} below the 40 MiB held");
    // The 39 MiB more, give or take the allocator's rounding.
    let more = large - small;
    assert!(
        (38 << 20..=41 << 20).contains(&more),
        "holding 39 MiB more raised the peak by {more} bytes"
    );
    // A smaller request afterwards does not lower it.
    assert_eq!(wisp.get("/h/hold?mib=1").await.status, StatusCode::OK);
    assert_eq!(peak(3).await, large);
    let cli = tokio::task::block_in_place(|| wisp.cli(&["usage", "h", "--json"]));
    assert!(cli.status.success(), "{}", stderr(&cli));
    let report: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(report["usage"]["peak_memory_bytes"], large, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn host_stats_give_every_functions_rate_and_errors_over_a_window() {
    let wisp = Wisp::start();
    wisp.deploy_ok("hello", artifacts::HELLO_COMPONENT, "route=/hello")
        .await;
    wisp.deploy_ok("noisy", artifacts::HOSTILE_COMPONENT, "route=/noisy")
        .await;
    for _ in 0..10 {
        assert_eq!(wisp.get("/hello").await.status, http::StatusCode::OK);
    }
    for _ in 0..5 {
        let failed = wisp.get("/noisy/panic").await;
        assert_eq!(failed.status, http::StatusCode::INTERNAL_SERVER_ERROR);
    }
    let stats = wisp.admin_get("/v1/stats?window=60").await.json();
    let of = |name: &str| {
        stats
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {stats}"))["stats"]
            .clone()
    };
    let (hello, noisy) = (of("hello"), of("noisy"));
    assert_eq!(hello["window_seconds"], 60, "{stats}");
    let rate = |s: &serde_json::Value| s["requests_per_second"].as_f64().unwrap() * 60.0;
    assert!((rate(&hello) - 10.0).abs() < 0.5, "{stats}");
    assert!((rate(&noisy) - 5.0).abs() < 0.5, "{stats}");
    assert_eq!(hello["error_rate"], 0.0, "{stats}");
    assert_eq!(noisy["error_rate"], 1.0, "{stats}");
    assert!(hello["p50_us"].as_u64().is_some(), "{stats}");
}
