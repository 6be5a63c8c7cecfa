//! What a finished request leaves behind: usage ("pay as you run"), metric
//! samples and guest log lines.
//!
//! [`Usage`] accumulates, per function (across its versions):
//!
//! * `requests` — requests that reached a guest;
//! * `wall_seconds` — wall time from sandbox creation to the guest's end;
//! * `cpu_seconds` — time a host thread spent running the guest (and the host
//!   calls it made): the monotonic clock read around each poll of the guest's
//!   future, so time the guest spends waiting (sleeping, on I/O) is excluded.
//!   Nanosecond clock; it includes wasmtime's own work for the guest, and —
//!   rarely — time the OS preempted the thread mid-poll. (Reading the thread
//!   CPU clock instead costs a system call per poll: measured 4 µs a request.);
//! * `fuel` — instructions charged to functions with a fuel budget (0 for
//!   others);
//! * `memory_gb_seconds` — peak linear memory × wall time, in GB·s (10⁹
//!   bytes × seconds): an upper bound of the memory a request held.
//!
//! [`Meter`] is what a request path holds to report all of that in one call.

use crate::observe::history::History;
use crate::observe::logs::{LogBook, Stream};
use crate::observe::metrics::FunctionMetrics;
use crate::observe::trace::RequestTrace;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wisp_spec::api::Trigger;
use wisp_spec::api::{TriggerRuns, UsageReport};

/// An `f64` that many threads add to.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn add(&self, value: f64) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Cumulative use of one function.
#[derive(Debug, Default)]
pub struct Usage {
    requests: AtomicU64,
    /// Runs by trigger, in [`Trigger::ALL`]'s order.
    runs: [AtomicU64; 5],
    wall_seconds: AtomicF64,
    cpu_seconds: AtomicF64,
    fuel: AtomicU64,
    memory_gb_seconds: AtomicF64,
    peak_memory_bytes: AtomicU64,
}

impl Usage {
    fn runs_of(&self, trigger: Trigger) -> u64 {
        self.runs[trigger as usize].load(Ordering::Relaxed)
    }

    /// The totals so far.
    pub fn report(&self) -> UsageReport {
        UsageReport {
            requests: self.requests.load(Ordering::Relaxed),
            runs: TriggerRuns {
                http: self.runs_of(Trigger::Http),
                cron: self.runs_of(Trigger::Cron),
                chain: self.runs_of(Trigger::Chain),
                async_calls: self.runs_of(Trigger::Async),
                websocket: self.runs_of(Trigger::WebSocket),
            },
            wall_seconds: self.wall_seconds.get(),
            cpu_seconds: self.cpu_seconds.get(),
            fuel: self.fuel.load(Ordering::Relaxed),
            memory_gb_seconds: self.memory_gb_seconds.get(),
            peak_memory_bytes: self.peak_memory_bytes.load(Ordering::Relaxed),
        }
    }
}

/// What one guest run cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestCost {
    /// Wall time from sandbox creation to the guest's end.
    pub wall: Duration,
    /// CPU time spent running it.
    pub cpu: Duration,
    /// Fuel charged (0 when unmetered).
    pub fuel: u64,
    /// Largest linear memory it reached, in bytes.
    pub peak_memory_bytes: usize,
}

/// Everything a request reports to when its guest finishes.
#[derive(Clone)]
pub struct Meter {
    /// The version's metric series.
    pub metrics: Arc<FunctionMetrics>,
    /// The function's usage.
    pub usage: Arc<Usage>,
    /// The function's logs.
    pub logs: Arc<LogBook>,
    /// The function's recent traffic.
    pub history: Arc<History>,
    /// The version number.
    pub version: u32,
    /// Where a run's cost and output go instead, when set: a guest worker
    /// relays them to the front process, whose books they belong in.
    pub relay: Option<Arc<dyn RunRelay>>,
}

/// Takes a finished run's record in place of the meter's books.
pub trait RunRelay: Send + Sync {
    /// A run of `request` is over.
    fn finished(&self, cost: GuestCost, request: &RequestTrace, stdout: &[u8], stderr: &[u8]);
}

impl Meter {
    /// Records a finished guest run (of request `request_id`, traced by
    /// `request`) and what it printed.
    pub fn finished(
        &self,
        cost: GuestCost,
        request: &RequestTrace,
        request_id: &str,
        stdout: &[u8],
        stderr: &[u8],
    ) {
        if let Some(relay) = &self.relay {
            relay.finished(cost, request, stdout, stderr);
            return;
        }
        let trigger = request.trigger;
        let usage = &self.usage;
        usage.requests.fetch_add(1, Ordering::Relaxed);
        usage.runs[trigger as usize].fetch_add(1, Ordering::Relaxed);
        usage.wall_seconds.add(cost.wall.as_secs_f64());
        usage.cpu_seconds.add(cost.cpu.as_secs_f64());
        usage.fuel.fetch_add(cost.fuel, Ordering::Relaxed);
        usage
            .memory_gb_seconds
            .add(cost.peak_memory_bytes as f64 / 1e9 * cost.wall.as_secs_f64());
        usage
            .peak_memory_bytes
            .fetch_max(cost.peak_memory_bytes as u64, Ordering::Relaxed);
        self.metrics
            .record_guest_time(cost.wall, cost.cpu, cost.fuel);
        self.logs
            .record(self.version, request, request_id, Stream::Stdout, stdout);
        self.logs
            .record(self.version, request, request_id, Stream::Stderr, stderr);
    }
}

impl Meter {
    /// Records what a reused instance cost besides its requests' wall time
    /// (each request records its own, with no fuel or memory): the fuel its
    /// requests burned, and its peak memory over its life.
    pub fn reused_instance_finished(&self, life: Duration, fuel: u64, peak_memory_bytes: usize) {
        let usage = &self.usage;
        usage.fuel.fetch_add(fuel, Ordering::Relaxed);
        usage
            .memory_gb_seconds
            .add(peak_memory_bytes as f64 / 1e9 * life.as_secs_f64());
        usage
            .peak_memory_bytes
            .fetch_max(peak_memory_bytes as u64, Ordering::Relaxed);
    }
}

/// A future that adds up the time spent inside its polls: the time a thread
/// was busy running it, not the time it waited.
pub struct CpuTimed<F> {
    inner: Pin<Box<F>>,
    spent: Duration,
}

impl<F: Future> CpuTimed<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        CpuTimed {
            inner: Box::pin(inner),
            spent: Duration::ZERO,
        }
    }
}

impl<F: Future> Future for CpuTimed<F> {
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let started = Instant::now();
        let polled = self.inner.as_mut().poll(cx);
        self.spent += started.elapsed();
        polled.map(|output| (output, self.spent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up_runs() {
        let meter = Meter {
            metrics: Arc::new(crate::observe::metrics::Metrics::new().for_version("f", 1)),
            usage: Arc::default(),
            logs: Arc::default(),
            history: Arc::default(),
            version: 1,
            relay: None,
        };
        let cost = GuestCost {
            wall: Duration::from_millis(500),
            cpu: Duration::from_millis(100),
            fuel: 7,
            peak_memory_bytes: 2_000_000_000,
        };
        meter.finished(cost, &RequestTrace::default(), "r1", b"out\n", b"");
        meter.finished(
            cost,
            &RequestTrace::new(Trigger::Cron, tracing::Span::none(), None),
            "r2",
            b"",
            b"err\n",
        );
        let report = meter.usage.report();
        assert_eq!(report.requests, 2);
        assert!((report.wall_seconds - 1.0).abs() < 1e-9);
        assert!((report.cpu_seconds - 0.2).abs() < 1e-9);
        assert_eq!(report.fuel, 14);
        assert!((report.memory_gb_seconds - 2.0).abs() < 1e-9);
        assert_eq!(meter.logs.read(0, 10).lines.len(), 2);
    }

    #[tokio::test]
    async fn busy_time_counts_work_inside_polls_not_waiting() {
        let started = Instant::now();
        let (sum, spent) = CpuTimed::new(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut x = 0u64;
            for i in 0..2_000_000u64 {
                x = std::hint::black_box(x.wrapping_add(i));
            }
            x
        })
        .await;
        let elapsed = started.elapsed();
        assert!(sum > 0);
        assert!(spent > Duration::from_micros(100), "{spent:?}");
        assert!(
            spent + Duration::from_millis(150) < elapsed,
            "the sleep was counted: {spent:?} busy of {elapsed:?}"
        );
    }
}
