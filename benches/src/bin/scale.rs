//! Scale benchmarks of the host library, one process per measurement:
//!
//! * `scale restart N` — deploy N functions, then time a fresh host loading
//!   them (median of 5), and check nothing was recompiled;
//! * `scale idle N [distinct]` — the resident memory of a host holding N
//!   deployed, idle functions, and the instance slots they hold (none: scale
//!   to zero). The functions share one binary unless `distinct`: then each
//!   has its own (same code, a different custom section), compiled apart;
//! * `scale inflight N` — N concurrent requests to a guest that sleeps
//!   100 ms, each in its own sandbox: all must succeed; reports peak RSS;
//! * `scale density N [DIR]` — N distinct small functions (a WASI command each,
//!   its own binary and artifact): after a restart, the time until the host
//!   serves and its idle RSS; then one request to each in turn (every one a
//!   first request: its code loads, and past `--max-loaded` the least
//!   recently used is evicted), their latency and the RSS after. With DIR,
//!   the functions are deployed there once and reused by later runs;
//! * `scale prepare N DIR` — deploy N functions into data dir DIR (the
//!   first step of `idle` and `density`, in a process of its own).
//!
//! `cargo run --release -p wisp-benches --bin scale -- restart 1000`

use bytes::Bytes;
use std::time::{Duration, Instant};
use wisp_host::{DeployRequest, Host, HostConfig, RawSettings, resident_bytes};
use wisp_test_artifacts as artifacts;

fn deployment(name: &str, route: &str, wasm: Bytes, settings: &str) -> DeployRequest {
    DeployRequest::new(name, route, wasm)
        .with_settings(RawSettings::from_query(settings).expect("settings"))
}

/// `wasm` with a custom section naming `i` appended: the same code, a
/// different binary (its own hash, its own compile, its own artifact).
fn distinct(wasm: &[u8], i: usize) -> Bytes {
    let name = b"wisp-scale";
    let payload = i.to_le_bytes();
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    out.push((1 + name.len() + payload.len()) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    Bytes::from(out)
}

/// A small CGI function answering `function {i}`: a WASI command module of
/// its own (a few hundred bytes), so each compiles to its own artifact.
fn small_function(i: usize) -> Bytes {
    let body = format!("Content-Type: text/plain\n\nfunction {i}\n");
    let wat = format!(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write"
                (func $fd_write (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 16) "{}")
            (func (export "_start")
                (i32.store (i32.const 0) (i32.const 16))
                (i32.store (i32.const 4) (i32.const {}))
                (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        body.replace('\n', "\\n"),
        body.len()
    );
    Bytes::from(wat::parse_str(wat).expect("small function"))
}

/// Which binaries `deploy_many` deploys.
#[derive(Clone, Copy, PartialEq)]
enum Binaries {
    /// The hello component, shared by all.
    Shared,
    /// The hello component, a distinct binary each.
    Distinct,
    /// A distinct small WASI command each.
    Small,
}

async fn deploy_many(config: &HostConfig, n: usize, binaries: Binaries) {
    let (host, _) = Host::start(config.clone()).await.expect("host");
    let wasm = Bytes::from(std::fs::read(artifacts::HELLO_COMPONENT).expect("guest"));
    for i in 0..n {
        let wasm = match binaries {
            Binaries::Shared => wasm.clone(),
            Binaries::Distinct => distinct(&wasm, i),
            Binaries::Small => small_function(i),
        };
        host.deploy(deployment(&format!("f{i}"), &format!("/f{i}"), wasm, ""))
            .await
            .expect("deploy");
        if (i + 1) % 1000 == 0 {
            eprintln!("deployed {}", i + 1);
        }
    }
}

fn config(data: &std::path::Path, max_instances: u32) -> HostConfig {
    HostConfig {
        data_dir: data.to_owned(),
        max_instances,
        access_log: false,
        ..HostConfig::default()
    }
}

async fn restart(n: usize) {
    let data = tempfile::tempdir().expect("temp dir");
    let config = config(data.path(), 1000);
    deploy_many(&config, n, Binaries::Shared).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (host, problems) = Host::start(config.clone()).await.expect("host");
        let elapsed = started.elapsed();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(host.functions().len(), n);
        assert_eq!(host.metrics().compilations(), 0, "a restart recompiled");
        let response = host
            .handle(
                http::Request::get(format!("/f{}", n - 1))
                    .body(http_body_util::Empty::<Bytes>::new())
                    .expect("request"),
            )
            .await;
        assert_eq!(response.status(), 200);
        times.push(elapsed);
        drop(host);
    }
    times.sort();
    println!(
        "restart with {n} functions: median {:.1} ms (min {:.1}, max {:.1}), 0 compilations",
        times[2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[4].as_secs_f64() * 1e3
    );
}

/// Deploys `n` functions into `data` from a child process, so this one's
/// memory is only the loading host's.
fn prepare(data: &std::path::Path, n: usize, mode: &str) {
    let prepared = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args([mode, &n.to_string()])
        .arg(data)
        .status()
        .expect("run prepare");
    assert!(prepared.success());
}

async fn idle(n: usize, unique: bool) {
    let data = tempfile::tempdir().expect("temp dir");
    let config = config(data.path(), 1000);
    let mode = if unique {
        "prepare-distinct"
    } else {
        "prepare"
    };
    prepare(data.path(), n, mode);
    let before = resident_bytes();
    let (host, problems) = Host::start(config).await.expect("host");
    assert!(problems.is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = resident_bytes();
    let slots = host
        .metrics()
        .encode()
        .lines()
        .find(|l| l.starts_with("wisp_pool_slots_in_use "))
        .map(str::to_owned)
        .unwrap_or_default();
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let field = |name: &str| {
        rollup
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
            >> 10
    };
    let kind = if unique { "distinct" } else { "identical" };
    println!(
        "{n} idle functions ({kind} binaries): process RSS {} MiB ({} MiB for the host and its functions: {} MiB anonymous, {} MiB file-backed); {slots}",
        after >> 20,
        after.saturating_sub(before) >> 20,
        field("Anonymous:"),
        field("Rss:").saturating_sub(field("Anonymous:")),
    );
}

async fn get(host: &Host, path: &str) -> (http::StatusCode, Bytes) {
    let response = host
        .handle(
            http::Request::get(path)
                .body(http_body_util::Empty::<Bytes>::new())
                .expect("request"),
        )
        .await;
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e3
}

async fn density(n: usize, reuse: Option<std::path::PathBuf>) {
    let temp = tempfile::tempdir().expect("temp dir");
    let data = reuse.unwrap_or_else(|| temp.path().to_owned());
    let config = config(&data, 1000);
    if !data.join("functions").exists() {
        prepare(&data, n, "prepare-small");
    }
    let before = resident_bytes();
    let started = Instant::now();
    let (host, problems) = Host::start(config).await.expect("host");
    let (status, _) = get(&host, "/f0").await;
    let serving = started.elapsed();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(status, 200);
    assert_eq!(host.functions().len(), n);
    let idle = resident_bytes();
    let mut first = Vec::with_capacity(n);
    for i in 1..n {
        let started = Instant::now();
        let (status, body) = get(&host, &format!("/f{i}")).await;
        first.push(started.elapsed());
        assert_eq!(status, 200);
        assert_eq!(body, format!("function {i}\n"));
    }
    let served = resident_bytes();
    first.sort();
    let metrics = host.metrics();
    println!(
        "{n} distinct small functions: serving {:.0} ms after start; RSS {} MiB idle after restart ({} MiB before the host); \
         each called once: first request p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; RSS {} MiB after; \
         {} loads, {} evictions, {} compilations",
        serving.as_secs_f64() * 1e3,
        idle >> 20,
        before >> 20,
        percentile(&first, 0.5),
        percentile(&first, 0.99),
        percentile(&first, 1.0),
        served >> 20,
        metrics.code_loads(),
        metrics.code_evictions(),
        metrics.compilations(),
    );
}

async fn inflight(n: usize) {
    let data = tempfile::tempdir().expect("temp dir");
    let max = u32::try_from(n).expect("n fits u32");
    let (host, _) = Host::start(config(data.path(), max)).await.expect("host");
    let wasm = Bytes::from(std::fs::read(artifacts::SLEEP_COMPONENT).expect("guest"));
    host.deploy(deployment(
        "sleep",
        "/sleep",
        wasm,
        &format!("max-concurrency={n}"),
    ))
    .await
    .expect("deploy");
    let before = resident_bytes();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(resident_bytes(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let started = Instant::now();
    let mut requests = Vec::new();
    for _ in 0..n {
        let host = host.clone();
        requests.push(tokio::spawn(async move {
            let (status, body) = get(&host, "/sleep?ms=100").await;
            status == 200 && &body[..] == b"slept 100 ms\n"
        }));
    }
    let mut ok = 0;
    for request in requests {
        if request.await.unwrap_or(false) {
            ok += 1;
        }
    }
    let elapsed = started.elapsed();
    sampler.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{n} concurrent requests sleeping 100 ms: {ok}/{n} succeeded in {:.0} ms; RSS {} MiB before, peak {} MiB",
        elapsed.as_secs_f64() * 1e3,
        before >> 20,
        peak >> 20
    );
    assert_eq!(ok, n, "some requests failed");
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    match args.first().map(String::as_str) {
        Some("restart") => restart(n).await,
        Some("idle") => idle(n, args.get(2).is_some_and(|a| a == "distinct")).await,
        Some("inflight") => inflight(n).await,
        Some("density") => density(n, args.get(2).map(Into::into)).await,
        Some(mode @ ("prepare" | "prepare-distinct" | "prepare-small")) => {
            let dir = std::path::PathBuf::from(args.get(2).expect("prepare N DIR"));
            let binaries = match mode {
                "prepare" => Binaries::Shared,
                "prepare-distinct" => Binaries::Distinct,
                _ => Binaries::Small,
            };
            deploy_many(&config(&dir, 1000), n, binaries).await;
        }
        _ => eprintln!("usage: scale restart N | idle N [distinct] | density N | inflight N"),
    }
}
