//! The composition root and the facade: [`Host`].
//!
//! A program embeds wisp by building a [`Host`] from a [`HostConfig`],
//! deploying bytes under a name ([`Host::deploy`]) and handing it
//! `http::Request`s ([`Host::handle`]). The CLI's `serve` is one such
//! program. [`Host::start`] builds the parts, each with exactly what it
//! uses, and wires them; `Host`'s methods are one-line hand-offs to them:
//!
//! | part | owns | built from |
//! | --- | --- | --- |
//! | [`Runtime`] (`runtime/`) | the engine, compiled code, the host-wide budgets | options, metrics |
//! | [`Registry`] (`registry/`) | the deployed set, read lock-free | — |
//! | [`Books`] (`observe/`) | per-function usage, logs, recent traffic | metrics |
//! | [`Deployer`] (`deploy/`) | every change of the deployed set | runtime, registry, books, backplane |
//! | [`Dispatcher`] (`request/`) | the request path | runtime, registry, metrics |
//! | [`Calls`] (`events/calls/`) | async calls: accept, store, run | dispatcher, registry, call store, shared state |
//! | [`Cron`] (`events/cron.rs`) | schedules | dispatcher, registry, shared state |
//! | [`Publisher`] (`channels/`) | publishes to channels: here, or on the cluster's bus | channels, the backplane's bus, metrics |
//! | [`Gateway`] (`push/`) | held connections (WebSockets, GRIP streams and long-polls) | dispatcher, the buffer budget, channels, secrets (`grip-key`), options, metrics |
//! | the backplane (`backplane.rs` here) | what hosts share: this host alone, or a cluster | config |
//!
//! Background tasks (cron, call workers, the prepared-sandbox sweep, the
//! cluster converger) each hold only their own part, weakly: dropping the
//! last `Host` stops them. No part holds the `Host`.

mod backplane;
pub(crate) mod config;
pub(crate) mod settings;
mod state;

use crate::backplane::SharedState;
use crate::backplane::records::RecordStore;
use crate::channels::{Channels, Publisher};
use crate::deploy::load::LoadProblem;
use crate::deploy::{DeployOptions, DeployRequest, Deployer, Pending};
use crate::disk::dir_lock::{DirLock, DirLockError};
use crate::disk::private;
use crate::error::{DeployError, InvokeError};
use crate::events::calls::{CallFilter, Calls, QueueError};
use crate::events::cron::{self, Cron};
use crate::observe::books::Books;
use crate::observe::logs::LogBook;
use crate::observe::metrics::Metrics;
use crate::push::Gateway;
use crate::registry::{self, Audience, Registry};
use crate::request::{DispatchOptions, Dispatcher};
use crate::runtime::body::{BoxError, ResponseBody};
use crate::runtime::function::IdleSandbox;
use crate::runtime::workers::WorkerPool;
use crate::runtime::{Runtime, RuntimeError, RuntimeOptions};
use crate::state::{KvBackend, SecretStore, SqlDatabases};
use bytes::Bytes;
pub use config::{HostConfig, StartError};
pub use settings::{Form, HOST_SETTINGS, HostSetting, SERVER_SETTINGS};
pub use state::MAX_KEYS_PER_LIST;
use std::sync::Arc;
use wasmtime::Engine;
use wisp_spec::api::{
    CallInfo, CallList, DeployReport, FunctionInfo, FunctionStats, Removed, Retired, UsageReport,
};
use wisp_spec::traffic::TrafficShare;

/// The parts of a host, wired.
pub(crate) struct HostInner {
    config: HostConfig,
    /// The data directory is this host's while it lives.
    _lock: DirLock,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    books: Arc<Books>,
    metrics: Arc<Metrics>,
    deployer: Arc<Deployer>,
    dispatcher: Arc<Dispatcher>,
    calls: Arc<Calls>,
    gateway: Arc<Gateway>,
    publisher: Arc<Publisher>,
    /// Held so its task runs while the host lives.
    _cron: Arc<Cron>,
    kv: Arc<dyn KvBackend>,
    secrets: Arc<SecretStore>,
    shared: Arc<dyn SharedState>,
    #[cfg(feature = "build")]
    builds: Option<Arc<crate::build::Builds>>,
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
        let data_dir = config.data_dir.clone();
        let data_error = |reason: String| StartError::DataDir {
            path: data_dir.clone(),
            reason,
        };
        private::create(&data_dir).map_err(|e| data_error(e.to_string()))?;
        let lock = DirLock::take(&data_dir).map_err(|e| match e {
            DirLockError::InUse(pid) => StartError::DataDirInUse {
                path: data_dir.clone(),
                pid,
            },
            DirLockError::Io(e) => data_error(format!("locking it failed: {e}")),
        })?;
        let metrics = Arc::new(Metrics::new());
        let runtime = Runtime::start(
            RuntimeOptions {
                max_instances: config.max_instances,
                max_prepared: config.prepare,
                pooling: config.pooling,
                residency: config.residency(),
                max_buffered_bytes: config.max_buffered,
                max_guest_memory_bytes: config.max_guest_memory,
                compiler: config.compiler.clone(),
                compile_budget: config.compile_budget(),
            },
            &data_dir,
            metrics.clone(),
        )
        .map_err(|e| match e {
            RuntimeError::Engine(reason) => StartError::Engine(reason),
            RuntimeError::Artifacts(reason) => data_error(reason),
        })?;
        let runtime = Arc::new(runtime);
        let records = RecordStore::open(data_dir.join("functions"), data_dir.join("artifacts/tmp"))
            .map_err(|e| data_error(e.to_string()))?;
        let stored = records.load_all().map_err(|e| data_error(e.to_string()))?;
        let backplane = backplane::open(&config).await?;
        let secrets =
            Arc::new(SecretStore::open(&data_dir).map_err(|e| data_error(e.to_string()))?);
        private::seal(&data_dir).map_err(|e| data_error(e.to_string()))?;

        // SQLite databases stay on each host, even in a cluster.
        let sql = Arc::new(SqlDatabases::new(
            data_dir.join("sqlite"),
            config.max_sqlite_size,
        ));
        let registry = Arc::new(Registry::default());
        let books = Arc::new(Books::new(metrics.clone()));
        let deployer = Arc::new(Deployer {
            runtime: runtime.clone(),
            registry: registry.clone(),
            books: books.clone(),
            metrics: metrics.clone(),
            records,
            shared: backplane.shared.clone(),
            kv: backplane.kv.clone(),
            sql: sql.clone(),
            secrets: secrets.clone(),
            writer: tokio::sync::Mutex::new(()),
            pending: Pending::default(),
            options: DeployOptions {
                data_dir: data_dir.clone(),
                max_upload_bytes: config.max_upload,
                keep_versions: config.keep_versions,
                pooling: config.pooling,
                allow_root_dir: config.allow_root_dir,
                dir_roots: config.dir_roots.clone(),
                trial_instantiation: config.workers.is_none(),
            },
        });
        let workers = config.workers.clone().map(|options| {
            WorkerPool::start(
                options,
                backplane.kv.clone(),
                sql.clone(),
                metrics.clone(),
                config.max_instances,
                config.max_guest_memory.saturating_add(config.max_buffered),
            )
        });
        let channels = Arc::new(Channels::default());
        let publisher = Arc::new(Publisher::new(
            channels.clone(),
            backplane.bus.clone(),
            metrics.websockets().clone(),
        ));
        backplane.start_bus(Arc::downgrade(&publisher));
        let dispatcher = Arc::new(Dispatcher {
            registry: registry.clone(),
            runtime: runtime.clone(),
            metrics: metrics.clone(),
            publisher: publisher.clone(),
            workers,
            options: DispatchOptions {
                access_log: config.access_log,
                trace_context: config.trace_context.clone(),
                body_pacing: config.body_pacing(),
                queue_timeout: config.queue_timeout,
                // A worker prepares its own sandboxes; the front runs no
                // guest code.
                prepare: config.prepare > 0 && config.workers.is_none(),
            },
        });
        let calls = Arc::new(Calls {
            store: backplane.calls.clone(),
            dispatcher: dispatcher.clone(),
            registry: registry.clone(),
            shared: backplane.shared.clone(),
            config: config.async_calls(),
        });
        let gateway = Arc::new(Gateway::new(
            dispatcher.clone(),
            runtime.buffers.clone(),
            channels,
            secrets.clone(),
            config.websockets(),
            metrics.websockets().clone(),
        ));
        let cron = Arc::new(Cron {
            registry: registry.clone(),
            dispatcher: dispatcher.clone(),
            shared: backplane.shared.clone(),
            metrics: metrics.clone(),
        });

        deployer.sweep_removed_state().await;
        cron::start(Arc::downgrade(&cron));
        registry::sweep_prepared(Arc::downgrade(&registry));
        let problems = deployer.load_stored(stored).await;
        // Stored calls run only once the functions they call are loaded.
        crate::events::calls::worker::start(
            &calls,
            backplane.calls.wake(),
            config.async_calls(),
            config.max_instances,
        )
        .await;
        backplane.start(Arc::downgrade(&deployer));
        #[cfg(feature = "build")]
        let builds = config
            .builds
            .clone()
            .map(|options| Arc::new(crate::build::Builds::new(options, &data_dir)));
        let host = Host {
            inner: Arc::new(HostInner {
                config,
                _lock: lock,
                runtime,
                registry,
                books,
                metrics,
                deployer,
                dispatcher,
                calls,
                gateway,
                publisher,
                _cron: cron,
                kv: backplane.kv,
                secrets,
                shared: backplane.shared,
                #[cfg(feature = "build")]
                builds,
            }),
        };
        Ok((host, problems))
    }

    /// Serves one public request: routes it, runs it in a fresh sandbox and
    /// returns the guest's response, or a JSON error response saying what
    /// went wrong. A request with `Prefer: respond-async` to a function
    /// that takes async calls is stored and answered `202 Accepted`. See
    /// `wisp_spec::headers::VERSION_HEADER` for the versions it may pin.
    pub async fn handle<B>(&self, request: http::Request<B>) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let dispatcher = &self.inner.dispatcher;
        let Some((entry, path_info)) = dispatcher.route(request.uri().path()) else {
            self.inner.metrics.record_unrouted();
            let error = InvokeError::NoRoute(request.uri().path().to_owned());
            return dispatcher.refuse(&request, std::time::Instant::now(), None, &error);
        };
        let request = match self.inner.gateway.accept(&entry, request).await {
            Ok(response) => return response,
            // Not a handshake, or the function takes no WebSockets.
            Err(request) => request,
        };
        let request = if wisp_spec::headers::wants_async(request.headers()) {
            match self.inner.calls.accept_call(&entry, request).await {
                Ok(response) => return response,
                // The function takes no async calls: served at once.
                Err(request) => request,
            }
        } else {
            request
        };
        let ip = crate::push::client_ip(&request);
        let response = dispatcher
            .dispatch(
                &entry,
                &path_info,
                request,
                Audience::Public,
                crate::events::Trigger::Http,
            )
            .await;
        if !response.headers().contains_key("grip-hold") {
            return response;
        }
        // The function asks the host to hold the request on channels.
        let cap = response
            .headers()
            .get(wisp_spec::headers::VERSION_HEADER)
            .and_then(|v| v.to_str().ok()?.parse::<u32>().ok())
            .and_then(|version| entry.versions.get(&version))
            .map_or(
                wisp_spec::settings::DEFAULT_WEBSOCKET_MAX_CONNECTIONS,
                |function| function.settings.websocket.max_connections,
            );
        self.inner
            .gateway
            .hold(&entry.record.name, cap, ip, response)
            .await
    }

    /// Publishes GRIP items (the body of a publish: `{"items": [...]}`,
    /// each with a `channel` and its `ws-message`, `http-stream` or
    /// `http-response`) to every subscriber of function `function`'s
    /// channels, on every host of a cluster; how many items, and (on a
    /// host alone) how many deliveries. A body that is not a valid publish
    /// delivers nothing.
    pub async fn publish(
        &self,
        function: &str,
        body: Bytes,
    ) -> Result<(usize, Option<usize>), crate::channels::PublishError> {
        if self.inner.registry.snapshot().get(function).is_none() {
            return Err(crate::channels::PublishError::UnknownFunction(
                function.to_owned(),
            ));
        }
        let published = self.inner.publisher.publish(function, body).await?;
        Ok((published.items, published.delivered_here))
    }

    /// Serves one request with function `name`, whatever the path; the
    /// request's path is what a CGI guest sees as `PATH_INFO`. This is what
    /// `wisp invoke` uses, for the operator: `x-wisp-version` may pin any
    /// version the function keeps, including one that lost its traffic.
    pub async fn handle_with<B>(
        &self,
        name: &str,
        request: http::Request<B>,
    ) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.inner
            .dispatcher
            .handle_named(
                name,
                request,
                Audience::Operator,
                crate::events::Trigger::Http,
            )
            .await
    }

    /// Closes every WebSocket connection with 1001 ("going away") and
    /// waits up to `grace` for them to end; handshakes are refused from
    /// then on. A server calls this when it shuts down: held connections
    /// have no request in flight to drain.
    pub async fn close_websockets(&self, grace: std::time::Duration) {
        self.inner.gateway.close_all(grace).await;
    }

    /// WebSocket connections open on this host.
    pub fn websockets_open(&self) -> usize {
        self.inner.gateway.open()
    }

    /// Deploys a new version of a function.
    pub async fn deploy(&self, request: DeployRequest) -> Result<DeployReport, DeployError> {
        self.inner.deployer.deploy(request).await
    }

    /// Removes function `name` and every version of it, with its own
    /// key-value bucket and its secrets. Requests already running finish.
    pub async fn remove(&self, name: &str) -> Result<Removed, DeployError> {
        let removed = self.inner.deployer.remove(name).await?;
        #[cfg(feature = "build")]
        if let Some(builds) = self.inner.builds.clone() {
            let name = name.to_owned();
            let _ = tokio::task::spawn_blocking(move || builds.forget(&name)).await;
        }
        Ok(removed)
    }

    /// The host's builds, when it builds source trees
    /// ([`HostConfig::builds`]).
    #[cfg(feature = "build")]
    pub fn builds(&self) -> Option<&Arc<crate::build::Builds>> {
        self.inner.builds.as_ref()
    }

    /// Splits function `name`'s traffic between its versions. The previous
    /// split is kept for [`Host::rollback`]. Requests in flight finish where
    /// they started.
    pub async fn set_traffic(
        &self,
        name: &str,
        shares: Vec<TrafficShare>,
    ) -> Result<FunctionInfo, DeployError> {
        self.inner.deployer.set_traffic(name, shares).await
    }

    /// Moves all of function `name`'s traffic back to the split before the
    /// last deploy or traffic change, in one atomic step.
    pub async fn rollback(&self, name: &str) -> Result<FunctionInfo, DeployError> {
        self.inner.deployer.rollback(name).await
    }

    /// Retires version `version` of function `name`: in one durable step it
    /// leaves every path — public pinning, `wisp invoke`, the rollback
    /// target and the listing — and its source and artifact become garbage
    /// (removed now, unless another version uses the same binary). Requests
    /// already running on it finish.
    ///
    /// A version named in the current traffic split is refused
    /// ([`DeployError::VersionServing`], 409): shift traffic away first. When
    /// the version is part of the rollback target, the whole target is
    /// dropped ([`Retired::rollback_cleared`]): rolling back to a split with
    /// a hole would serve a split nobody chose, so [`Host::rollback`] has
    /// nothing to go back to until the next traffic change.
    pub async fn retire(&self, name: &str, version: u32) -> Result<Retired, DeployError> {
        self.inner.deployer.retire(name, version).await
    }

    /// Every deployed function.
    pub fn functions(&self) -> Vec<FunctionInfo> {
        self.inner.deployer.functions()
    }

    /// The guest worker processes alive (none unless guests run in worker
    /// processes: [`HostConfig::workers`]).
    pub fn workers(&self) -> Vec<wisp_spec::api::WorkerInfo> {
        self.inner
            .dispatcher
            .workers
            .as_ref()
            .map(|pool| pool.list())
            .unwrap_or_default()
    }

    /// One deployed function.
    pub fn function(&self, name: &str) -> Option<FunctionInfo> {
        self.inner.deployer.function(name)
    }

    /// The uploaded binary of version `version` of function `name` (by
    /// default the version with the most traffic, the newest on a tie),
    /// with its number: what `wisp push` publishes.
    pub async fn source(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<(u32, Vec<u8>), DeployError> {
        self.inner.deployer.source(name, version).await
    }

    /// Async call `id`, with the kept part of its response body.
    pub async fn call(&self, id: &str) -> Result<Option<CallInfo>, QueueError> {
        self.inner.calls.call(id).await
    }

    /// Async calls, newest first, without their response bodies.
    pub async fn calls(&self, filter: &CallFilter) -> Result<CallList, QueueError> {
        self.inner.calls.calls(filter).await
    }

    /// Creates a sandbox for function `name` (the version traffic would pick)
    /// exactly as a request would, without running the guest: a cold start
    /// alone. Dropping the sandbox frees its slot.
    pub async fn instantiate(&self, name: &str) -> Result<IdleSandbox, InvokeError> {
        let function = {
            let snapshot = self.inner.registry.snapshot();
            let entry = snapshot
                .get(name)
                .ok_or_else(|| InvokeError::UnknownFunction(name.to_owned()))?;
            if entry.is_damaged() {
                return Err(InvokeError::Damaged(name.to_owned()));
            }
            entry
                .pick(None, Audience::Operator)
                .cloned()
                .ok_or_else(|| InvokeError::Unavailable(name.to_owned()))?
        };
        let code = self.inner.runtime.code(function.code(), name).await?;
        function.instantiate(&code).await
    }

    /// Cumulative usage of function `name` (across its versions).
    pub fn usage(&self, name: &str) -> Option<UsageReport> {
        self.inner.registry.snapshot().get(name)?;
        Some(self.inner.books.of(name).usage.report())
    }

    /// The recent traffic of function `name` over the last `window`
    /// seconds, with its per-second history.
    pub fn stats(&self, name: &str, window: u64) -> Option<FunctionStats> {
        self.inner.registry.snapshot().get(name)?;
        let history = self.inner.books.of(name).history;
        Some(FunctionStats {
            name: name.to_owned(),
            stats: history.stats(window),
            history: history.series(window),
        })
    }

    /// Every function's traffic over the last `window` seconds (without
    /// the per-second history), by name.
    pub fn all_stats(&self, window: u64) -> Vec<FunctionStats> {
        let snapshot = self.inner.registry.snapshot();
        snapshot
            .entries()
            .keys()
            .map(|name| FunctionStats {
                name: name.clone(),
                stats: self.inner.books.of(name).history.stats(window),
                history: Vec::new(),
            })
            .collect()
    }

    /// The log book of function `name`.
    pub fn logs(&self, name: &str) -> Option<Arc<LogBook>> {
        self.inner.registry.snapshot().get(name)?;
        Some(self.inner.books.of(name).logs)
    }

    /// The state files the host cannot use now, each named under the data
    /// dir with why (see `GET /healthz`); empty when all is well.
    pub fn damage(&self) -> Vec<String> {
        let inner = &self.inner;
        let mut damage: Vec<String> = [inner.kv.damage(), inner.calls.store.damage()]
            .into_iter()
            .flatten()
            .collect();
        damage.extend(inner.secrets.damage());
        damage
    }

    /// How this host stands with its cluster, in cluster mode.
    pub fn cluster_health(&self) -> Option<wisp_spec::api::ClusterHealth> {
        self.inner.shared.health()
    }

    /// The host's configuration.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// The host's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The wasmtime engine WASI 0.2 components and CGI modules run on (for
    /// benchmarks and embedders that want to inspect it; WASI 0.3
    /// components have an engine of their own).
    pub fn engine(&self) -> &Engine {
        self.inner
            .runtime
            .engines
            .for_abi(wisp_spec::inspect::Abi::WasiHttp)
    }
}
