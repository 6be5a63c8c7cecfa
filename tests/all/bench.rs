//! `wisp bench`: the command runs on both ABIs and its `--json` report has
//! the documented shape with sane values. No timing thresholds: speed is
//! judged by the benchmarks, not by tests.

use crate::support::WISP;
use std::process::Command;
use wisp_test_artifacts as artifacts;

/// Runs `wisp bench` on `wasm` with a tiny sample and returns its JSON report.
fn bench_json(wasm: &str, extra: &[&str]) -> serde_json::Value {
    let output = Command::new(WISP)
        .args(["bench", wasm, "-n", "20", "-c", "2", "--duration", "300ms"])
        .args(["--memory-probe", "5", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "wisp bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "wisp bench --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The percentile object `field` is complete, positive and ordered.
fn assert_percentiles(report: &serde_json::Value, field: &str) {
    let p = &report[field];
    let value = |name: &str| {
        p[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{field}.{name} missing: {report}"))
    };
    let (p50, p90, p99, max) = (value("p50"), value("p90"), value("p99"), value("max"));
    assert!(p50 > 0.0, "{field}.p50 must be positive: {report}");
    assert!(
        p50 <= p90 && p90 <= p99 && p99 <= max,
        "{field} percentiles out of order: {report}"
    );
}

fn assert_sane(report: &serde_json::Value, abi: &str) {
    assert_eq!(report["abi"], abi, "{report}");
    assert_eq!(
        report["status"], 200,
        "benchmarked requests must succeed: {report}"
    );
    assert_eq!(
        report["other_statuses"], 0,
        "every timed request must answer as the first did: {report}"
    );
    assert_eq!(report["samples"], 20, "{report}");
    assert_eq!(report["concurrency"], 2, "{report}");
    assert!(report["compile_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        report["artifact_bytes"].as_u64().unwrap() > 1000,
        "{report}"
    );
    assert!(
        report["requests_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["linear_memory_bytes"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(report["memory_per_instance_bytes"].is_u64(), "{report}");
    assert_percentiles(report, "cold_start_us");
    assert_percentiles(report, "instantiate_us");
}

#[test]
fn wisp_bench_reports_a_component_in_json() {
    let report = bench_json(artifacts::HELLO_COMPONENT, &[]);
    assert_sane(&report, "wasi-http");
}

#[test]
fn wisp_bench_reports_a_0_3_component_fresh_and_with_reuse() {
    let fresh = bench_json(artifacts::HELLO3_COMPONENT, &[]);
    assert_sane(&fresh, "wasi-http-0.3");
    assert_eq!(fresh["reuse"], 1, "{fresh}");
    let reused = bench_json(artifacts::HELLO3_COMPONENT, &["--reuse", "100"]);
    assert_eq!(reused["reuse"], 100, "{reused}");
    assert_eq!(reused["status"], 200, "{reused}");
    assert_eq!(reused["other_statuses"], 0, "{reused}");
    assert!(reused["requests_per_sec"].as_f64().unwrap() > 0.0);
    assert_percentiles(&reused, "cold_start_us");
}

#[test]
fn wisp_bench_reports_a_cgi_module_with_a_posted_body() {
    let report = bench_json(
        artifacts::CGI_HELLO_MODULE,
        &["--method", "POST", "--path", "/cgi?x=1", "--body", "hello"],
    );
    assert_sane(&report, "cgi");
}

#[test]
fn wisp_bench_prints_a_table_by_default_and_rejects_bad_flags() {
    let table = Command::new(WISP)
        .args([
            "bench",
            artifacts::HELLO_COMPONENT,
            "-n",
            "5",
            "--duration",
            "100ms",
        ])
        .args(["--memory-probe", "2"])
        .output()
        .unwrap();
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("p50") && text.contains("requests/s"),
        "{text}"
    );

    let bad = Command::new(WISP)
        .args(["bench", artifacts::HELLO_COMPONENT, "--path", "nope"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--path"),
        "the error must name the flag: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn wisp_bench_of_an_error_says_so_and_fails_unless_errors_are_allowed() {
    let run = |extra: &[&str]| {
        Command::new(WISP)
            .args(["bench", artifacts::HOSTILE_COMPONENT, "--path", "/panic"])
            .args(["-n", "3", "--duration", "100ms", "--memory-probe", "2"])
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = run(&[]);
    let out = String::from_utf8_lossy(&refused.stdout);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a bench of 500s must fail: {out}"
    );
    assert!(
        out.contains("warning: the function answered 500") && err.contains("--allow-errors"),
        "stdout: {out}\nstderr: {err}"
    );
    let allowed = run(&["--allow-errors"]);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
}
