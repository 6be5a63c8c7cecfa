//! [`Host`]: the embeddable function host — configuration, start-up from the
//! data dir, and the request path.
//!
//! A program embeds wisp by building a [`Host`] from a [`HostConfig`],
//! deploying bytes under a name ([`Host::deploy`], in `deploy.rs`) and handing
//! it `http::Request`s ([`Host::handle`]). The CLI's `serve` is one such
//! program. The request path routes (lock-free), takes a concurrency slot,
//! and runs the request in a fresh sandbox; every failure becomes one JSON
//! error response.

use crate::abi::cgi_env::ConnectionInfo;
use crate::artifact::{ArtifactError, ArtifactStore};
use crate::body::{BoxError, ResponseBody, full};
use crate::engine::{self, EngineOptions, EpochTicker};
use crate::error::{DeployError, InvokeError, Limit};
use crate::function::{
    self, Function, IdleSandbox, Linkers, LoadedCode, RequestContext, VersionInfo,
};
use crate::limits;
use crate::logs::LogBook;
use crate::meter::{Meter, Usage, UsageReport};
use crate::metrics::Metrics;
use crate::record::{FunctionRecord, RecordStore, VersionRecord};
use crate::registry::{FunctionEntry, Registry, Snapshot};
use crate::route::Route;
use crate::settings::Settings;
use crate::trace::{self, REQUEST_ID_HEADER, RequestTrace};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Engine;

/// Default cap on an uploaded `.wasm`, in bytes.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 200 << 20;

/// Default number of versions kept per function (those holding traffic are
/// always kept besides).
pub const DEFAULT_KEEP_VERSIONS: usize = 10;

/// Response header naming the version that served a request; also read from
/// requests to pin one.
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("x-wisp-version");

/// How a host is set up. `Default` is the production default.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where artifacts and records live.
    pub data_dir: PathBuf,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
    /// Instances alive at once across all functions (pool size and global
    /// concurrency cap).
    pub max_instances: u32,
    /// Use the pooling allocator (off only for benchmarks).
    pub pooling: bool,
    /// How long a request waits for a free slot before 503.
    pub queue_timeout: Duration,
    /// Versions kept per function.
    pub keep_versions: usize,
    /// Log one access line per request (target `wisp::access`).
    pub access_log: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            data_dir: PathBuf::from("wisp-data"),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_instances: engine::DEFAULT_MAX_INSTANCES,
            pooling: true,
            queue_timeout: limits::DEFAULT_QUEUE_TIMEOUT,
            keep_versions: DEFAULT_KEEP_VERSIONS,
            access_log: true,
        }
    }
}

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The engine could not be built.
    #[error("creating the wasmtime engine failed: {0}")]
    Engine(String),
    /// The data dir is unusable.
    #[error("opening the data dir `{path}` failed: {reason}")]
    DataDir {
        /// The data dir.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// A problem found while loading the data dir: reported, never fatal.
#[derive(Debug, Clone)]
pub struct LoadProblem {
    /// The function (or file) concerned.
    pub subject: String,
    /// What went wrong and what was done about it.
    pub message: String,
}

pub(crate) struct HostInner {
    pub(crate) config: HostConfig,
    pub(crate) engine: Engine,
    _ticker: EpochTicker,
    pub(crate) linkers: Linkers,
    pub(crate) artifacts: ArtifactStore,
    pub(crate) records: RecordStore,
    pub(crate) registry: Registry,
    pub(crate) metrics: Metrics,
    global_slots: Arc<Semaphore>,
    /// Serializes changes to the deployed set (deploys, deletes, traffic).
    pub(crate) writer: tokio::sync::Mutex<()>,
    /// Per function name, across versions: usage and logs. Touched when a
    /// version is loaded or a function removed, never per request.
    shared: std::sync::Mutex<HashMap<String, Shared>>,
    /// Loaded code by artifact key, so functions with the same binary share
    /// one mapping and one pre-linked instance template.
    loaded: std::sync::Mutex<HashMap<String, std::sync::Weak<LoadedCode>>>,
}

/// What all versions of one function share.
#[derive(Clone, Default)]
struct Shared {
    usage: Arc<Usage>,
    logs: Arc<LogBook>,
}

/// The function host. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<HostInner>,
}

impl Host {
    /// Starts a host: builds the engine, opens the data dir and loads every
    /// deployed function (recompiling only what is missing or corrupt).
    /// Problems with individual functions are returned, not fatal.
    pub async fn start(config: HostConfig) -> Result<(Host, Vec<LoadProblem>), StartError> {
        let engine = engine::build(&EngineOptions {
            max_instances: config.max_instances,
            pooling: config.pooling,
        })
        .map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let ticker =
            EpochTicker::start(engine.clone()).map_err(|e| StartError::Engine(e.to_string()))?;
        let linkers = Linkers::new(&engine).map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let data_error = |reason: String| StartError::DataDir {
            path: config.data_dir.clone(),
            reason,
        };
        let artifacts = ArtifactStore::open(
            &config.data_dir.join("artifacts"),
            engine::compatibility_fingerprint(&engine),
        )
        .map_err(|e| data_error(e.to_string()))?;
        let records = RecordStore::open(
            config.data_dir.join("functions"),
            config.data_dir.join("artifacts/tmp"),
        )
        .map_err(|e| data_error(e.to_string()))?;
        let stored = records.load_all().map_err(|e| data_error(e.to_string()))?;
        let global_slots = Arc::new(Semaphore::new(config.max_instances as usize));
        let host = Host {
            inner: Arc::new(HostInner {
                config,
                engine,
                _ticker: ticker,
                linkers,
                artifacts,
                records,
                registry: Registry::default(),
                metrics: Metrics::new(),
                global_slots,
                writer: tokio::sync::Mutex::new(()),
                shared: std::sync::Mutex::new(HashMap::new()),
                loaded: std::sync::Mutex::new(HashMap::new()),
            }),
        };
        let problems = host.load_stored(stored).await;
        Ok((host, problems))
    }

    /// Loads stored records into the registry, in parallel on blocking
    /// threads.
    async fn load_stored(
        &self,
        stored: Vec<Result<FunctionRecord, (PathBuf, String)>>,
    ) -> Vec<LoadProblem> {
        let mut problems = Vec::new();
        let mut records = Vec::new();
        let unreadable = stored.iter().any(Result::is_err);
        for entry in stored {
            match entry {
                Ok(record) => records.push(record),
                Err((path, reason)) => problems.push(LoadProblem {
                    subject: path.display().to_string(),
                    message: format!("unreadable record skipped: {reason}"),
                }),
            }
        }
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(1);
        let chunk = records.len().div_ceil(workers).max(1);
        let mut tasks = Vec::new();
        for batch in records.chunks(chunk).map(<[FunctionRecord]>::to_vec) {
            let host = self.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                batch
                    .into_iter()
                    .map(|record| host.load_record(record))
                    .collect::<Vec<_>>()
            }));
        }
        let mut entries = BTreeMap::new();
        for task in tasks {
            let Ok(results) = task.await else {
                problems.push(LoadProblem {
                    subject: "data dir".into(),
                    message: "a loader thread panicked".into(),
                });
                continue;
            };
            for (entry, mut found) in results {
                problems.append(&mut found);
                if let Some(entry) = entry {
                    entries.insert(entry.record.name.clone(), Arc::new(entry));
                }
            }
        }
        self.inner.metrics.set_functions(entries.len());
        // Sources and artifacts no record names (a deploy cut off by a crash)
        // go — unless a record could not be read: it may still need them.
        if !unreadable {
            self.collect_garbage(&entries).await;
        }
        self.inner.registry.publish(Snapshot::new(entries));
        for problem in &problems {
            tracing::warn!(subject = %problem.subject, "{}", problem.message);
        }
        problems
    }

    /// Loads every version of one record (blocking).
    fn load_record(&self, record: FunctionRecord) -> (Option<FunctionEntry>, Vec<LoadProblem>) {
        let mut problems = Vec::new();
        let route = match Route::parse(&record.route) {
            Ok(route) => route,
            Err(e) => {
                problems.push(LoadProblem {
                    subject: record.name.clone(),
                    message: format!("skipped: {e}"),
                });
                return (None, problems);
            }
        };
        let mut versions = BTreeMap::new();
        for version in &record.versions {
            match self.load_version(&record, version) {
                Ok(function) => {
                    versions.insert(version.number, Arc::new(function));
                }
                Err(e) => problems.push(LoadProblem {
                    subject: format!("{} v{}", record.name, version.number),
                    message: format!("version not loaded: {e}"),
                }),
            }
        }
        (Some(FunctionEntry::new(record, route, versions)), problems)
    }

    /// Loads one stored version: its artifact if valid, else a recompile
    /// from its source (blocking).
    pub(crate) fn load_version(
        &self,
        record: &FunctionRecord,
        version: &VersionRecord,
    ) -> Result<Function, DeployError> {
        let inner = &self.inner;
        let source = version
            .source_hash()
            .ok_or_else(|| DeployError::Storage(format!("bad source hash `{}`", version.source)))?;
        let mut raw = version.settings.clone();
        raw.route = Some(record.route.clone());
        let settings = Settings::validate(&raw)?;
        let key = inner.artifacts.compiled_key(&source);
        let info = VersionInfo {
            name: Arc::from(record.name.as_str()),
            version: version.number,
            abi: version.abi,
            source: source.clone(),
            settings,
            created_unix: version.created_unix,
        };
        // Verified and compiled only when no other function has it loaded.
        let code = self.load_code(&key, version.abi, || {
            match inner.artifacts.verified_compiled(&key) {
                Ok(path) => Ok(path),
                Err(ArtifactError::Missing(_) | ArtifactError::Corrupt(_)) => {
                    if inner.artifacts.compiled_path(&key).exists() {
                        tracing::warn!(function = %record.name, version = version.number, "compiled artifact is corrupt; recompiling from source");
                    }
                    let wasm = inner
                        .artifacts
                        .read_source(&source)
                        .map_err(|e| DeployError::Storage(e.to_string()))?;
                    self.compile_and_store(version.abi, &wasm, &key)
                }
                Err(e) => Err(DeployError::Storage(e.to_string())),
            }
        })?;
        Ok(Function::new(
            info,
            code,
            self.meter(&record.name, version.number),
        ))
    }

    /// The live loaded code of artifact `key`, if any.
    fn cached_code(&self, key: &str) -> Option<Arc<LoadedCode>> {
        let cache = self.inner.loaded.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).and_then(std::sync::Weak::upgrade)
    }

    /// The loaded code of artifact `key`, shared with every other version
    /// that uses it. When none is alive, `artifact` gives the path of the
    /// compiled file, which is then loaded (blocking).
    pub(crate) fn load_code(
        &self,
        key: &str,
        abi: crate::record::Abi,
        artifact: impl FnOnce() -> Result<std::path::PathBuf, DeployError>,
    ) -> Result<Arc<LoadedCode>, DeployError> {
        if let Some(code) = self.cached_code(key) {
            return Ok(code);
        }
        let code = Arc::new(LoadedCode::load(
            &self.inner.engine,
            &self.inner.linkers,
            abi,
            &artifact()?,
        )?);
        let mut cache = self.inner.loaded.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, code| code.strong_count() > 0);
        cache.insert(key.to_owned(), Arc::downgrade(&code));
        Ok(code)
    }

    /// The meter for version `version` of function `name`.
    pub(crate) fn meter(&self, name: &str, version: u32) -> Meter {
        let shared = self.shared_state(name);
        Meter {
            metrics: self.inner.metrics.for_version(name, version),
            usage: shared.usage,
            logs: shared.logs,
            version,
        }
    }

    fn shared_state(&self, name: &str) -> Shared {
        let mut map = self.inner.shared.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_owned()).or_default().clone()
    }

    /// Forgets the usage and logs of a removed function.
    pub(crate) fn forget(&self, name: &str) {
        let mut map = self.inner.shared.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(name);
    }

    /// Creates a sandbox for function `name` (the version traffic would pick)
    /// exactly as a request would, without running the guest — a cold start
    /// alone. Dropping the sandbox frees its slot.
    pub async fn instantiate(&self, name: &str) -> Result<IdleSandbox, InvokeError> {
        let function = {
            let snapshot = self.inner.registry.snapshot();
            let entry = snapshot
                .get(name)
                .ok_or_else(|| InvokeError::NoRoute(format!("function `{name}`")))?;
            entry
                .pick(None)
                .cloned()
                .ok_or_else(|| InvokeError::Unavailable(name.to_owned()))?
        };
        function.instantiate().await
    }

    /// Cumulative usage of function `name` (across its versions).
    pub fn usage(&self, name: &str) -> Option<UsageReport> {
        self.inner.registry.snapshot().get(name)?;
        Some(self.shared_state(name).usage.report())
    }

    /// The log book of function `name`.
    pub fn logs(&self, name: &str) -> Option<Arc<LogBook>> {
        self.inner.registry.snapshot().get(name)?;
        Some(self.shared_state(name).logs)
    }

    /// Compiles and stores an artifact under `key` (blocking).
    pub(crate) fn compile_and_store(
        &self,
        abi: crate::record::Abi,
        wasm: &[u8],
        key: &str,
    ) -> Result<PathBuf, DeployError> {
        let started = Instant::now();
        let cwasm = function::compile(&self.inner.engine, abi, wasm)?;
        self.inner.metrics.record_compile(started.elapsed());
        self.inner
            .artifacts
            .put_compiled(key, &cwasm)
            .map_err(|e| DeployError::Storage(e.to_string()))
    }

    /// The host's configuration.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// The host's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The wasmtime engine (for benchmarks and embedders that want to inspect it).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Serves one request: routes it, runs it in a fresh sandbox and returns
    /// the guest's response — or a JSON error response saying what went wrong.
    pub async fn handle<B>(&self, request: http::Request<B>) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let routed = {
            let snapshot = self.inner.registry.snapshot();
            snapshot
                .route(request.uri().path())
                .map(|(entry, rest)| (entry.clone(), rest.to_owned()))
        };
        let Some((entry, path_info)) = routed else {
            self.inner.metrics.record_unrouted();
            return error_response(&InvokeError::NoRoute(request.uri().path().to_owned()));
        };
        self.dispatch(&entry, &path_info, request).await
    }

    /// Serves one request with function `name`, whatever the path; the
    /// request's path is what a CGI guest sees as `PATH_INFO`. This is what
    /// `wisp invoke` uses.
    pub async fn handle_with<B>(
        &self,
        name: &str,
        request: http::Request<B>,
    ) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let entry = self.inner.registry.snapshot().get(name).cloned();
        let Some(entry) = entry else {
            return error_response(&InvokeError::NoRoute(format!("function `{name}`")));
        };
        let path_info = request.uri().path().to_owned();
        self.dispatch(&entry, &path_info, request).await
    }

    async fn dispatch<B>(
        &self,
        entry: &FunctionEntry,
        path_info: &str,
        request: http::Request<B>,
    ) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let pinned = match request.headers().get(&VERSION_HEADER).map(parse_version) {
            None => None,
            Some(Ok(version)) => Some(version),
            Some(Err(text)) => {
                return error_response(&InvokeError::NoSuchVersion {
                    name: entry.record.name.clone(),
                    version: text,
                });
            }
        };
        let Some(function) = entry.pick(pinned).cloned() else {
            return error_response(&match pinned {
                Some(version) => InvokeError::NoSuchVersion {
                    name: entry.record.name.clone(),
                    version: version.to_string(),
                },
                None => InvokeError::Unavailable(entry.record.name.clone()),
            });
        };
        let metrics = function.metrics().clone();
        metrics.in_flight().inc();
        let mut request = request;
        let id = trace::request_id(request.headers());
        let id_header = HeaderValue::try_from(id.as_str()).ok();
        if let Some(value) = &id_header {
            request
                .headers_mut()
                .insert(REQUEST_ID_HEADER, value.clone());
        }
        let request_id: Arc<str> = Arc::from(id);
        let request_trace = Arc::new(RequestTrace::default());
        let method = request.method().clone();
        let path = self
            .inner
            .config
            .access_log
            .then(|| request.uri().path().to_owned());
        let result = match self.acquire_slots(&function).await {
            Ok(permit) => {
                let context = RequestContext {
                    route: &entry.route,
                    path_info,
                    connection: request
                        .extensions()
                        .get::<ConnectionInfo>()
                        .copied()
                        .unwrap_or_default(),
                    trace: &request_trace,
                    request_id: &request_id,
                };
                let request = request.map(|body| body.map_err(Into::into).boxed_unsync());
                function.invoke(request, context, permit).await
            }
            Err(e) => Err(e),
        };
        metrics.in_flight().dec();
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                if let InvokeError::LimitExceeded { limit, .. } = &error {
                    metrics.record_breach(*limit);
                }
                error_response(&error)
            }
        };
        let elapsed = started.elapsed();
        metrics.record_response(response.status(), elapsed);
        let headers = response.headers_mut();
        headers.insert(VERSION_HEADER, HeaderValue::from(function.version));
        if let Some(value) = id_header {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        if let Some(path) = path {
            tracing::info!(
                target: "wisp::access",
                method = %method,
                path,
                status = response.status().as_u16(),
                duration_us = elapsed.as_micros() as u64,
                function = %function.name,
                version = function.version,
                instantiate_us = request_trace.instantiate().map(|d| d.as_micros() as u64),
                request_id = %request_id,
                "request"
            );
        }
        response
    }

    /// Takes a slot of the function and one of the host, waiting up to the
    /// queue timeout for each.
    async fn acquire_slots(&self, function: &Function) -> Result<Box<dyn Send>, InvokeError> {
        let wait = self.inner.config.queue_timeout;
        let busy = |scope: &str| {
            InvokeError::limit(
                Limit::Concurrency,
                format!("too many concurrent requests for {scope}; retry shortly"),
            )
        };
        let local = acquire(function.slots(), wait)
            .await
            .ok_or_else(|| busy(&format!("function `{}`", function.name)))?;
        let global = acquire(&self.inner.global_slots, wait)
            .await
            .ok_or_else(|| busy("this host"))?;
        let gauge = self.inner.metrics.slots_in_use().clone();
        gauge.inc();
        Ok(Box::new(SlotGuard {
            _local: local,
            _global: global,
            gauge,
        }))
    }
}

/// Releases a request's slots (and updates the gauge) when dropped.
struct SlotGuard {
    _local: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

async fn acquire(slots: &Arc<Semaphore>, wait: Duration) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Some(permit);
    }
    tokio::time::timeout(wait, slots.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
}

/// `4` or `v4` → 4; anything else is returned as text for the error.
fn parse_version(value: &HeaderValue) -> Result<u32, String> {
    let text = value.to_str().unwrap_or_default().trim();
    text.trim_start_matches('v')
        .parse()
        .map_err(|_| text.to_owned())
}

fn error_response(error: &InvokeError) -> http::Response<ResponseBody> {
    error.to_response().map(full)
}
