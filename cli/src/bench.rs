//! `wisp bench FILE.wasm`: how fast a module starts and serves on this
//! machine, measured in-process through the same library path requests take.
//!
//! It deploys the module into a throwaway host (timing the ahead-of-time
//! compile), then measures: cold starts — N requests, each in a fresh
//! sandbox, start to last body byte; the instantiate step alone; the memory a
//! live sandbox holds; and requests per second at a given concurrency. Every
//! request gets a fresh sandbox unless `--reuse` asks for a WASI 0.3
//! component's instances to be reused (the report then says so, and its
//! request latencies are warm, not cold).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use std::time::{Duration, Instant};
use wisp_host::{DeployRequest, Host, HostConfig, RawSettings};
use wisp_spec::units::format_size_approx;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Cold starts to time (and instantiations alone).
    pub samples: usize,
    /// Requests in flight at once for the throughput run.
    pub concurrency: usize,
    /// How long the throughput run lasts.
    pub duration: Duration,
    /// The request: method, path (and query), body.
    pub method: http::Method,
    /// Request path and query.
    pub path: String,
    /// Request body.
    pub body: Bytes,
    /// Sandboxes held alive at once to measure memory per sandbox.
    pub memory_probe: usize,
    /// Sandboxes prepared ahead of their request.
    pub prepare: usize,
    /// Requests one instance serves (`reuse`); `None`: a fresh one each.
    pub reuse: Option<u32>,
    /// Requests one reused instance serves at once.
    pub reuse_concurrency: Option<u32>,
}

/// Percentiles of a set of timings, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `samples` (which it sorts).
    pub fn of(samples: &mut [Duration]) -> Percentiles {
        samples.sort_unstable();
        let at = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let index = ((samples.len() - 1) as f64 * q).round() as usize;
            samples[index].as_secs_f64() * 1e6
        };
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// The results, as `--json` prints them.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The module's ABI.
    pub abi: String,
    /// Ahead-of-time compile time.
    pub compile_ms: f64,
    /// Size of the compiled artifact.
    pub artifact_bytes: u64,
    /// Cold starts timed.
    pub samples: usize,
    /// Requests one instance served (1: a fresh sandbox each).
    pub reuse: u32,
    /// A whole request in a fresh sandbox: create, run, read the body, drop
    /// (with `reuse`, mostly in a warm instance).
    pub cold_start_us: Percentiles,
    /// Creating a sandbox alone (store and instance).
    pub instantiate_us: Percentiles,
    /// Resident memory each live, idle sandbox adds.
    pub memory_per_instance_bytes: u64,
    /// Largest linear memory one request reached.
    pub linear_memory_bytes: u64,
    /// Concurrency of the throughput run.
    pub concurrency: usize,
    /// In-process requests per second at that concurrency.
    pub requests_per_sec: f64,
    /// Status of the first response (to spot a benchmark of errors).
    pub status: u16,
    /// Responses of the timed runs whose status differed from the first's
    /// (a host error mid-run, which would make the figures meaningless).
    pub other_statuses: u64,
}

/// Runs the benchmark on `wasm`.
pub async fn run(wasm: Bytes, options: &BenchOptions) -> anyhow::Result<BenchReport> {
    let data = std::env::temp_dir().join(format!(
        "wisp-bench-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = run_in(&data, wasm, options).await;
    let _ = std::fs::remove_dir_all(&data);
    result
}

async fn run_in(
    data: &std::path::Path,
    wasm: Bytes,
    options: &BenchOptions,
) -> anyhow::Result<BenchReport> {
    let max_instances =
        u32::try_from(options.concurrency.max(options.memory_probe) + 8).unwrap_or(u32::MAX);
    let config = HostConfig {
        data_dir: data.to_owned(),
        max_instances,
        prepare: options.prepare,
        access_log: false,
        ..HostConfig::default()
    };
    let (host, _) = Host::start(config).await?;
    let mut settings = RawSettings::new().with("max-concurrency", max_instances.to_string())?;
    if let Some(reuse) = options.reuse {
        settings = settings.with("reuse", reuse.to_string())?;
    }
    if let Some(concurrency) = options.reuse_concurrency {
        settings = settings.with("reuse-concurrency", concurrency.to_string())?;
    }
    let started = Instant::now();
    let progress = crate::output::spinner("compiling");
    let report = host
        .deploy(DeployRequest::new("bench", "/", wasm).with_settings(settings))
        .await?;
    progress.finish_and_clear();
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;

    let status = request(&host, options).await.0;
    for _ in 0..options.samples.min(200) {
        request(&host, options).await;
    }

    let mut cold = Vec::with_capacity(options.samples);
    let mut other_statuses = 0;
    let progress = crate::output::bar("cold starts", options.samples as u64);
    for i in 0..options.samples {
        let started = Instant::now();
        let answered = request(&host, options).await.0;
        cold.push(started.elapsed());
        other_statuses += u64::from(answered != status);
        progress.set_position(i as u64 + 1);
    }
    progress.finish_and_clear();

    let mut instantiate = Vec::with_capacity(options.samples);
    let progress = crate::output::bar("instantiate", options.samples as u64);
    for i in 0..options.samples {
        let started = Instant::now();
        drop(host.instantiate("bench").await?);
        instantiate.push(started.elapsed());
        progress.set_position(i as u64 + 1);
    }
    progress.finish_and_clear();

    let memory_per_instance_bytes = memory_per_sandbox(&host, options.memory_probe).await?;
    let linear_memory_bytes = host.usage("bench").map_or(0, |u| u.peak_memory_bytes);
    let (requests_per_sec, others) = throughput(&host, options, status).await;

    Ok(BenchReport {
        abi: report.abi.as_str().to_owned(),
        compile_ms,
        artifact_bytes: report.artifact_bytes,
        samples: options.samples,
        reuse: options.reuse.unwrap_or(1),
        cold_start_us: Percentiles::of(&mut cold),
        instantiate_us: Percentiles::of(&mut instantiate),
        memory_per_instance_bytes,
        linear_memory_bytes,
        concurrency: options.concurrency,
        requests_per_sec,
        status,
        other_statuses: other_statuses + others,
    })
}

/// Sends one request and reads the whole body; returns status and size.
async fn request(host: &Host, options: &BenchOptions) -> (u16, usize) {
    let request = http::Request::builder()
        .method(options.method.clone())
        .uri(&options.path)
        .header(http::header::HOST, "localhost")
        .body(Full::new(options.body.clone()));
    let Ok(request) = request else { return (0, 0) };
    let response = host.handle_with("bench", request).await;
    let status = response.status().as_u16();
    let size = response
        .into_body()
        .collect()
        .await
        .map_or(0, |b| b.to_bytes().len());
    (status, size)
}

/// RSS added per live sandbox, over `count` sandboxes held at once.
async fn memory_per_sandbox(host: &Host, count: usize) -> anyhow::Result<u64> {
    if count == 0 {
        return Ok(0);
    }
    let before = wisp_host::resident_bytes();
    let mut live = Vec::with_capacity(count);
    for _ in 0..count {
        live.push(host.instantiate("bench").await?);
    }
    let after = wisp_host::resident_bytes();
    drop(live);
    Ok(after.saturating_sub(before) / count as u64)
}

/// Requests per second with `concurrency` requests in flight for `duration`,
/// and how many were answered with another status than `status`.
async fn throughput(host: &Host, options: &BenchOptions, status: u16) -> (f64, u64) {
    let deadline = Instant::now() + options.duration;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..options.concurrency.max(1) {
        let host = host.clone();
        let options = options.clone();
        workers.push(tokio::spawn(async move {
            let (mut served, mut others) = (0u64, 0u64);
            while Instant::now() < deadline {
                others += u64::from(request(&host, &options).await.0 != status);
                served += 1;
            }
            (served, others)
        }));
    }
    let (mut served, mut others) = (0, 0);
    for worker in workers {
        let (n, o) = worker.await.unwrap_or_default();
        served += n;
        others += o;
    }
    (served as f64 / started.elapsed().as_secs_f64(), others)
}

impl BenchReport {
    /// Whether any response measured was an error (a 4xx or 5xx, or a
    /// status that changed mid-run).
    pub fn measured_errors(&self) -> bool {
        self.status >= 400 || self.other_statuses > 0
    }

    /// The report as a table for people.
    pub fn table(&self) -> String {
        let p = |p: &Percentiles| {
            format!(
                "{:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                p.p50, p.p90, p.p99, p.max
            )
        };
        let mut out = String::new();
        out.push_str(&format!("abi                     {}\n", self.abi));
        if self.reuse > 1 {
            out.push_str(&format!(
                "reuse                   up to {} requests per instance\n",
                self.reuse
            ));
        }
        out.push_str(&format!(
            "compile                 {:.1} ms\n",
            self.compile_ms
        ));
        out.push_str(&format!(
            "artifact                {}\n",
            format_size_approx(self.artifact_bytes)
        ));
        out.push_str(&format!(
            "                        {:>9} {:>9} {:>9} {:>9}\n",
            "p50 µs", "p90 µs", "p99 µs", "max µs"
        ));
        let request_line = if self.reuse > 1 {
            "request (reused)       "
        } else {
            "cold start (request)   "
        };
        out.push_str(&format!("{request_line} {}\n", p(&self.cold_start_us)));
        out.push_str(&format!(
            "instantiate alone       {}\n",
            p(&self.instantiate_us)
        ));
        out.push_str(&format!(
            "memory per sandbox      {}\n",
            format_size_approx(self.memory_per_instance_bytes)
        ));
        out.push_str(&format!(
            "linear memory (peak)    {}\n",
            format_size_approx(self.linear_memory_bytes)
        ));
        out.push_str(&format!(
            "throughput              {:.0} requests/s at concurrency {}\n",
            self.requests_per_sec, self.concurrency
        ));
        out.push_str(&format!(
            "samples                 {} (status {})\n",
            self.samples, self.status
        ));
        if self.measured_errors() {
            out.push_str(&format!(
                "warning: the function answered {}: these figures measure an error, not the function's work\n",
                self.status
            ));
        }
        if self.other_statuses > 0 {
            out.push_str(&format!(
                "warning: {} responses had another status than {}: these figures measure errors\n",
                self.other_statuses, self.status
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let p = Percentiles::of(&mut samples);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (51.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&mut []).p50, 0.0);
    }
}
