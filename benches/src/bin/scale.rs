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
//! * `scale prepare N DIR` — deploy N functions into data dir DIR (the
//!   first step of `idle`, in a process of its own).
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

async fn deploy_many(config: &HostConfig, n: usize, unique: bool) {
    let (host, _) = Host::start(config.clone()).await.expect("host");
    let wasm = Bytes::from(std::fs::read(artifacts::HELLO_COMPONENT).expect("guest"));
    for i in 0..n {
        let wasm = if unique {
            distinct(&wasm, i)
        } else {
            wasm.clone()
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
    deploy_many(&config, n, false).await;
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

async fn idle(n: usize, unique: bool) {
    let data = tempfile::tempdir().expect("temp dir");
    let config = config(data.path(), 1000);
    // Deployed by a child process, so this one's memory is only the loading host's.
    let prepared = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args([
            if unique {
                "prepare-distinct"
            } else {
                "prepare"
            },
            &n.to_string(),
        ])
        .arg(data.path())
        .status()
        .expect("run prepare");
    assert!(prepared.success());
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
            let response = host
                .handle(
                    http::Request::get("/sleep?ms=100")
                        .body(http_body_util::Empty::<Bytes>::new())
                        .expect("request"),
                )
                .await;
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .map(|b| b.to_bytes());
            status == 200 && body.is_ok_and(|b| &b[..] == b"slept 100 ms\n")
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
        Some(mode @ ("prepare" | "prepare-distinct")) => {
            let dir = std::path::PathBuf::from(args.get(2).expect("prepare N DIR"));
            deploy_many(&config(&dir, 1000), n, mode == "prepare-distinct").await;
        }
        _ => eprintln!("usage: scale restart N | idle N [distinct] | inflight N"),
    }
}
