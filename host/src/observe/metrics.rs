//! Every counter the host keeps, in one place, exported as Prometheus text.
//!
//! [`Metrics`] owns the registry and the host-wide series. Per function
//! version, [`FunctionMetrics`] holds handles resolved once at load time, so
//! the request path bumps atomics and never looks a label set up. A version's
//! series are dropped when the version or its function is removed, so the
//! exposition does not grow with every deploy.

use crate::error::Limit;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use wisp_spec::api::Trigger;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    function: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    function: String,
    version: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    function: String,
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    function: String,
    version: String,
    limit: &'static str,
}

fn latency_histogram() -> Histogram {
    // 10 µs … ~84 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 24))
}

fn compile_histogram() -> Histogram {
    // 1 ms … ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: String,
}

/// The series of guest worker processes (process isolation).
#[derive(Clone)]
pub(crate) struct WorkerSeries {
    starts: Counter,
    exits: Family<CauseLabels, Counter>,
    live: Gauge,
    start_seconds: Histogram,
}

impl Default for WorkerSeries {
    fn default() -> Self {
        WorkerSeries {
            starts: Counter::default(),
            exits: Family::default(),
            live: Gauge::default(),
            start_seconds: latency_histogram(),
        }
    }
}

impl WorkerSeries {
    /// A worker is ready, `elapsed` after it was asked for.
    pub(crate) fn started(&self, elapsed: Duration) {
        self.starts.inc();
        self.live.inc();
        self.start_seconds.observe(elapsed.as_secs_f64());
    }

    /// A worker that served ended, for `cause`.
    pub(crate) fn ended(&self, cause: &str) {
        self.live.dec();
        self.exits
            .get_or_create(&CauseLabels {
                cause: cause.to_owned(),
            })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    function: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    function: String,
    reason: &'static str,
}

/// The series of WebSocket connections (one label set per function, kept
/// while the host runs: connections name only deployed functions).
#[derive(Clone, Default)]
pub(crate) struct WebSocketSeries {
    open: Family<FunctionLabels, Gauge>,
    events: Family<DirectionLabels, Counter>,
    closed: Family<CloseLabels, Counter>,
    published: Counter,
    delivered: Counter,
}

impl WebSocketSeries {
    /// A connection of `function` opened.
    pub(crate) fn opened(&self, function: &str) {
        self.open
            .get_or_create(&FunctionLabels {
                function: function.to_owned(),
            })
            .inc();
    }

    /// A connection of `function` ended, for `reason`.
    pub(crate) fn closed(&self, function: &str, reason: &'static str) {
        self.open
            .get_or_create(&FunctionLabels {
                function: function.to_owned(),
            })
            .dec();
        self.closed
            .get_or_create(&CloseLabels {
                function: function.to_owned(),
                reason,
            })
            .inc();
    }

    /// A publish of `items` items reached `delivered` subscribers here.
    pub(crate) fn published(&self, items: usize, delivered: usize) {
        self.published.inc_by(items as u64);
        self.delivered.inc_by(delivered as u64);
    }

    /// `count` events of `function` went `direction` (`in`: from clients
    /// to the function; `out`: to clients).
    pub(crate) fn events(&self, function: &str, direction: &'static str, count: usize) {
        if count > 0 {
            self.events
                .get_or_create(&DirectionLabels {
                    function: function.to_owned(),
                    direction,
                })
                .inc_by(count as u64);
        }
    }
}

/// All the host's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    latency: Family<VersionLabels, Histogram, fn() -> Histogram>,
    instantiate: Family<VersionLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<VersionLabels, Gauge>,
    breaches: Family<LimitLabels, Counter>,
    guest_seconds: Family<VersionLabels, Counter<f64, AtomicU64>>,
    guest_cpu_seconds: Family<VersionLabels, Counter<f64, AtomicU64>>,
    fuel: Family<VersionLabels, Counter>,
    unrouted: Counter,
    admin_auth_failures: Counter,
    trigger_runs: Family<TriggerLabels, Counter>,
    trigger_skipped: Family<TriggerLabels, Counter>,
    functions: Gauge,
    compilations: Counter,
    compile_seconds: Histogram,
    code_loads: Counter,
    code_load_seconds: Histogram,
    code_evictions: Counter,
    code_resident: Gauge,
    code_resident_bytes: Gauge,
    sandboxes_prepared: Counter,
    prepared_used: Counter,
    slots_in_use: Gauge,
    buffered: Gauge,
    guest_memory: Gauge,
    workers: WorkerSeries,
    websockets: WebSocketSeries,
    /// Every (function, version) with series, so they can be dropped.
    versions: Mutex<BTreeSet<(String, u32)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every series.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("wisp");
        let requests = Family::<StatusLabels, Counter>::default();
        let latency = Family::<VersionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let instantiate =
            Family::<VersionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let in_flight = Family::<VersionLabels, Gauge>::default();
        let breaches = Family::<LimitLabels, Counter>::default();
        let guest_seconds = Family::<VersionLabels, Counter<f64, AtomicU64>>::default();
        let guest_cpu_seconds = Family::<VersionLabels, Counter<f64, AtomicU64>>::default();
        let fuel = Family::<VersionLabels, Counter>::default();
        let unrouted = Counter::default();
        let admin_auth_failures = Counter::default();
        let functions = Gauge::default();
        let compilations = Counter::default();
        let compile_seconds = compile_histogram();
        let code_loads = Counter::default();
        let code_load_seconds = latency_histogram();
        let code_evictions = Counter::default();
        let code_resident = Gauge::default();
        let code_resident_bytes = Gauge::default();
        let sandboxes_prepared = Counter::default();
        let prepared_used = Counter::default();
        let slots_in_use = Gauge::default();
        let buffered = Gauge::default();
        let guest_memory = Gauge::default();
        let workers = WorkerSeries::default();
        registry.register(
            "requests",
            "Requests served, by function, version and status class",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from routing to the guest's end (its last response byte), or to the error answer of a request that never ran",
            latency.clone(),
        );
        registry.register(
            "instantiate_duration_seconds",
            "Time to create a fresh sandbox (cold start) per request that did not find one prepared ahead",
            instantiate.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests holding a concurrency slot: from the slot taken to the guest's end",
            in_flight.clone(),
        );
        registry.register(
            "limit_breaches",
            "Requests ended by a limit, by limit",
            breaches.clone(),
        );
        registry.register(
            "guest_wall_seconds",
            "Wall time spent running guests",
            guest_seconds.clone(),
        );
        registry.register(
            "guest_cpu_seconds",
            "CPU time spent running guests",
            guest_cpu_seconds.clone(),
        );
        registry.register(
            "guest_fuel",
            "Fuel (instructions) consumed by metered guests",
            fuel.clone(),
        );
        registry.register(
            "unrouted_requests",
            "Requests no function's route matched",
            unrouted.clone(),
        );
        registry.register(
            "admin_auth_failures",
            "Admin requests and console sign-ins refused for a missing or wrong token, or while their client was locked out",
            admin_auth_failures.clone(),
        );
        let trigger_runs = Family::<TriggerLabels, Counter>::default();
        let trigger_skipped = Family::<TriggerLabels, Counter>::default();
        registry.register(
            "trigger_runs",
            "Runs the host started by a trigger other than a client's request (cron)",
            trigger_runs.clone(),
        );
        registry.register(
            "trigger_skipped",
            "Trigger runs skipped because the schedule's last run was still going",
            trigger_skipped.clone(),
        );
        registry.register(
            "functions_deployed",
            "Functions deployed now",
            functions.clone(),
        );
        registry.register(
            "compilations",
            "Ahead-of-time compilations performed",
            compilations.clone(),
        );
        registry.register(
            "compile_duration_seconds",
            "Time per ahead-of-time compilation",
            compile_seconds.clone(),
        );
        registry.register(
            "code_loads",
            "Loads of a function's compiled code (mmap and pre-link) on its first request after start or after eviction",
            code_loads.clone(),
        );
        registry.register(
            "code_load_duration_seconds",
            "Time per load of compiled code, verifying the artifact included",
            code_load_seconds.clone(),
        );
        registry.register(
            "code_evictions",
            "Loaded code evicted, least recently used first, to keep within --max-loaded and --max-loaded-bytes",
            code_evictions.clone(),
        );
        registry.register(
            "code_resident",
            "Compiled artifacts loaded now (as of the last load)",
            code_resident.clone(),
        );
        registry.register(
            "code_resident_bytes",
            "Bytes of the compiled artifacts loaded now (as of the last load)",
            code_resident_bytes.clone(),
        );
        registry.register(
            "sandboxes_prepared",
            "Fresh sandboxes made ahead of their request, in spare time (each serves one request or is dropped)",
            sandboxes_prepared.clone(),
        );
        registry.register(
            "prepared_sandboxes_used",
            "Requests that found a prepared sandbox instead of instantiating on their critical path",
            prepared_used.clone(),
        );
        registry.register(
            "pool_slots_in_use",
            "Instance slots held by running requests",
            slots_in_use.clone(),
        );
        registry.register(
            "request_buffer_bytes",
            "Bytes of request bodies the host holds in memory (CGI bodies, read whole before the guest runs)",
            buffered.clone(),
        );
        registry.register(
            "guest_memory_bytes",
            "Linear memory held by live sandboxes, charged to the host's guest memory budget",
            guest_memory.clone(),
        );
        registry.register(
            "worker_starts",
            "Guest worker processes started (process isolation)",
            workers.starts.clone(),
        );
        registry.register(
            "worker_exits",
            "Guest worker processes that ended, by cause: idle, evicted, replaced, broken (it broke the framing of its calls), exit, oom, or the signal that killed it (SIGSYS: a system call its jail forbids)",
            workers.exits.clone(),
        );
        registry.register(
            "workers",
            "Guest worker processes alive, serving a function",
            workers.live.clone(),
        );
        registry.register(
            "worker_start_seconds",
            "Time from asking for a guest worker to its being ready to serve",
            workers.start_seconds.clone(),
        );
        let websockets = WebSocketSeries::default();
        registry.register(
            "websocket_connections",
            "WebSocket connections open, by function",
            websockets.open.clone(),
        );
        registry.register(
            "websocket_events",
            "WebSocket events by function and direction: in, from clients to the function; out, from the function to clients",
            websockets.events.clone(),
        );
        registry.register(
            "websocket_closes",
            "WebSocket connections ended, by function and reason (client, function, failed, idle, rate, too-big, slow-consumer, shutdown, disconnect)",
            websockets.closed.clone(),
        );
        registry.register(
            "published_items",
            "GRIP items published to this host's channels",
            websockets.published.clone(),
        );
        registry.register(
            "published_deliveries",
            "Published items delivered to a subscriber on this host (a WebSocket, an HTTP stream or a long-poll)",
            websockets.delivered.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            instantiate,
            in_flight,
            breaches,
            guest_seconds,
            guest_cpu_seconds,
            fuel,
            unrouted,
            admin_auth_failures,
            trigger_runs,
            trigger_skipped,
            functions,
            compilations,
            compile_seconds,
            code_loads,
            code_load_seconds,
            code_evictions,
            code_resident,
            code_resident_bytes,
            sandboxes_prepared,
            prepared_used,
            slots_in_use,
            buffered,
            guest_memory,
            workers,
            websockets,
            versions: Mutex::new(BTreeSet::new()),
        }
    }

    /// The Prometheus text exposition of everything.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one compilation that took `elapsed`.
    pub fn record_compile(&self, elapsed: Duration) {
        self.compilations.inc();
        self.compile_seconds.observe(elapsed.as_secs_f64());
    }

    /// Counts one load of compiled code that took `elapsed` and evicted
    /// `evicted` others, leaving `resident` artifacts of `bytes` loaded.
    pub(crate) fn record_code_load(
        &self,
        elapsed: Duration,
        evicted: usize,
        resident: usize,
        bytes: u64,
    ) {
        self.code_loads.inc();
        self.code_load_seconds.observe(elapsed.as_secs_f64());
        self.code_evictions.inc_by(evicted as u64);
        self.code_resident
            .set(i64::try_from(resident).unwrap_or(i64::MAX));
        self.code_resident_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// The counter of sandboxes prepared ahead.
    pub(crate) fn prepared_counter(&self) -> Counter {
        self.sandboxes_prepared.clone()
    }

    /// Counts a request that found a prepared sandbox.
    pub(crate) fn record_prepared_used(&self) {
        self.prepared_used.inc();
    }

    /// Sandboxes prepared ahead, and requests that found one, so far.
    pub(crate) fn prepared_totals(&self) -> (u64, u64) {
        (self.sandboxes_prepared.get(), self.prepared_used.get())
    }

    /// Adds a guest worker's prepared sandboxes, and requests that found
    /// one, to the host's.
    pub(crate) fn add_prepared(&self, prepared: u64, used: u64) {
        self.sandboxes_prepared.inc_by(prepared);
        self.prepared_used.inc_by(used);
    }

    /// Counts a guest worker's load of its code (in its own process).
    pub(crate) fn record_worker_code_load(&self, elapsed: Duration) {
        self.code_loads.inc();
        self.code_load_seconds.observe(elapsed.as_secs_f64());
    }

    /// Loads of compiled code since start.
    pub fn code_loads(&self) -> u64 {
        self.code_loads.get()
    }

    /// Loaded code evicted since start.
    pub fn code_evictions(&self) -> u64 {
        self.code_evictions.get()
    }

    /// Compilations since start.
    pub fn compilations(&self) -> u64 {
        self.compilations.get()
    }

    /// Sets the number of deployed functions.
    pub fn set_functions(&self, count: usize) {
        self.functions.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts a request no route matched.
    pub fn record_unrouted(&self) {
        self.unrouted.inc();
    }

    /// Counts one refused admin authentication.
    pub fn record_admin_auth_failure(&self) {
        self.admin_auth_failures.inc();
    }

    /// Counts a run of `function` started by `trigger`.
    pub(crate) fn record_trigger(&self, function: &str, trigger: Trigger) {
        self.trigger_runs
            .get_or_create(&trigger_labels(function, trigger))
            .inc();
    }

    /// Counts a run of `function` by `trigger` skipped for overlap.
    pub(crate) fn record_trigger_skipped(&self, function: &str, trigger: Trigger) {
        self.trigger_skipped
            .get_or_create(&trigger_labels(function, trigger))
            .inc();
    }

    /// The instance-slot gauge.
    pub fn slots_in_use(&self) -> &Gauge {
        &self.slots_in_use
    }

    /// The gauge of guest linear memory held by live sandboxes.
    pub(crate) fn guest_memory(&self) -> &Gauge {
        &self.guest_memory
    }

    /// The series of guest worker processes.
    pub(crate) fn workers(&self) -> &WorkerSeries {
        &self.workers
    }

    /// The series of WebSocket connections.
    pub(crate) fn websockets(&self) -> &WebSocketSeries {
        &self.websockets
    }

    /// The gauge of bytes held in memory for requests.
    pub(crate) fn buffered(&self) -> &Gauge {
        &self.buffered
    }

    /// Resolves the series of one function version.
    pub(crate) fn for_version(&self, function: &str, version: u32) -> FunctionMetrics {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((function.to_owned(), version));
        let labels = VersionLabels {
            function: function.to_owned(),
            version: version.to_string(),
        };
        let status = |class| {
            self.requests.get_or_create_owned(&StatusLabels {
                function: labels.function.clone(),
                version: labels.version.clone(),
                status_class: class,
            })
        };
        let breach = |limit: Limit| {
            self.breaches.get_or_create_owned(&LimitLabels {
                function: labels.function.clone(),
                version: labels.version.clone(),
                limit: limit.as_str(),
            })
        };
        FunctionMetrics {
            by_status: STATUS_CLASSES.map(status),
            latency: self.latency.get_or_create_owned(&labels),
            instantiate: self.instantiate.get_or_create_owned(&labels),
            in_flight: self.in_flight.get_or_create_owned(&labels),
            breaches: Limit::ALL.map(breach),
            guest_seconds: self.guest_seconds.get_or_create_owned(&labels),
            guest_cpu_seconds: self.guest_cpu_seconds.get_or_create_owned(&labels),
            fuel: self.fuel.get_or_create_owned(&labels),
        }
    }
}

impl Metrics {
    /// Drops every series of version `version` of `function`.
    pub(crate) fn forget_version(&self, function: &str, version: u32) {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(function.to_owned(), version));
        let labels = VersionLabels {
            function: function.to_owned(),
            version: version.to_string(),
        };
        for class in STATUS_CLASSES {
            self.requests.remove(&StatusLabels {
                function: labels.function.clone(),
                version: labels.version.clone(),
                status_class: class,
            });
        }
        for limit in Limit::ALL {
            self.breaches.remove(&LimitLabels {
                function: labels.function.clone(),
                version: labels.version.clone(),
                limit: limit.as_str(),
            });
        }
        self.latency.remove(&labels);
        self.instantiate.remove(&labels);
        self.in_flight.remove(&labels);
        self.guest_seconds.remove(&labels);
        self.guest_cpu_seconds.remove(&labels);
        self.fuel.remove(&labels);
    }

    /// Drops every series of every version of `function`.
    pub(crate) fn forget_function(&self, function: &str) {
        let versions: Vec<u32> = self
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(name, _)| name == function)
            .map(|(_, version)| *version)
            .collect();
        for version in versions {
            self.forget_version(function, version);
        }
        let labels = trigger_labels(function, Trigger::Cron);
        self.trigger_runs.remove(&labels);
        self.trigger_skipped.remove(&labels);
    }
}

fn trigger_labels(function: &str, trigger: Trigger) -> TriggerLabels {
    TriggerLabels {
        function: function.to_owned(),
        trigger: trigger.as_str(),
    }
}

/// This process's resident set size in bytes, from `/proc/self/statm` (0
/// where that file does not exist). Benchmarks and `wisp bench` read it.
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The series of one function version, resolved once.
#[derive(Clone, Debug)]
pub struct FunctionMetrics {
    by_status: [Counter; 5],
    latency: Histogram,
    instantiate: Histogram,
    in_flight: Gauge,
    breaches: [Counter; Limit::ALL.len()],
    guest_seconds: Counter<f64, AtomicU64>,
    guest_cpu_seconds: Counter<f64, AtomicU64>,
    fuel: Counter,
}

impl FunctionMetrics {
    /// Series registered nowhere, for a sandbox made only to check a
    /// deploy before the version has a number.
    pub(crate) fn detached() -> FunctionMetrics {
        FunctionMetrics {
            by_status: Default::default(),
            latency: latency_histogram(),
            instantiate: latency_histogram(),
            in_flight: Gauge::default(),
            breaches: Default::default(),
            guest_seconds: Counter::default(),
            guest_cpu_seconds: Counter::default(),
            fuel: Counter::default(),
        }
    }

    /// Counts a response with `status`.
    pub fn record_status(&self, status: http::StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.by_status[class].inc();
    }

    /// Records a request's duration (see the module doc of the slots).
    pub fn record_duration(&self, elapsed: Duration) {
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Counts a limit breach.
    pub fn record_breach(&self, limit: Limit) {
        let index = Limit::ALL.iter().position(|l| *l == limit).unwrap_or(0);
        self.breaches[index].inc();
    }

    /// Breaches so far, by limit (in [`Limit::ALL`]'s order).
    pub(crate) fn breach_counts(&self) -> Vec<u64> {
        self.breaches.iter().map(Counter::get).collect()
    }

    /// Counts `count` more breaches of the limit at `index` of
    /// [`Limit::ALL`] (a guest worker's, reported to its front).
    pub(crate) fn add_breaches(&self, index: usize, count: u64) {
        if let Some(counter) = self.breaches.get(index) {
            counter.inc_by(count);
        }
    }

    /// Records a sandbox creation time.
    pub fn record_instantiate(&self, elapsed: Duration) {
        self.instantiate.observe(elapsed.as_secs_f64());
    }

    /// Records guest wall time, CPU time and fuel after a request.
    pub fn record_guest_time(&self, wall: Duration, cpu: Duration, fuel: u64) {
        self.guest_seconds.inc_by(wall.as_secs_f64());
        self.guest_cpu_seconds.inc_by(cpu.as_secs_f64());
        if fuel > 0 {
            self.fuel.inc_by(fuel);
        }
    }

    /// The in-flight gauge.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_series_show_up_in_the_text() {
        let metrics = Metrics::new();
        let v = metrics.for_version("hello", 3);
        v.record_status(http::StatusCode::OK);
        v.record_status(http::StatusCode::BAD_GATEWAY);
        v.record_duration(Duration::from_micros(50));
        v.record_breach(Limit::Timeout);
        metrics.record_compile(Duration::from_millis(5));
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"wisp_requests_total{function="hello",version="3",status_class="2xx"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"status_class="5xx"} 1"#));
        assert!(text.contains(
            r#"wisp_limit_breaches_total{function="hello",version="3",limit="timeout"} 1"#
        ));
        assert!(text.contains("wisp_compilations_total 1"));
    }

    #[test]
    fn forgotten_versions_leave_no_series() {
        let metrics = Metrics::new();
        let empty = metrics.encode();
        for version in 1..=3 {
            let v = metrics.for_version("f", version);
            v.record_status(http::StatusCode::OK);
            v.record_breach(Limit::Fuel);
            v.in_flight().inc();
        }
        metrics.forget_version("f", 1);
        assert!(!metrics.encode().contains(r#"version="1""#));
        assert!(metrics.encode().contains(r#"version="2""#));
        metrics.forget_function("f");
        assert_eq!(metrics.encode(), empty);
    }
}
