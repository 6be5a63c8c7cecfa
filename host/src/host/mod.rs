//! [`Host`]: the embeddable function host, and its start-up.
//!
//! A program embeds wisp by building a [`Host`] from a [`HostConfig`],
//! deploying bytes under a name ([`Host::deploy`], in `deploy/`) and handing
//! it `http::Request`s ([`Host::handle`], in `request/`). The CLI's `serve` is
//! one such program. This module owns what those paths share: the engine,
//! the stores on disk, the registry and the metrics.

pub(crate) mod config;
mod load;
mod per_function;
mod state;

use crate::deploy::Pending;
use crate::deploy::artifact::{ArtifactError, ArtifactStore};
use crate::deploy::record::RecordStore;
use crate::disk::dir_lock::{DirLock, DirLockError};
use crate::disk::private;
use crate::error::{DeployError, HostFailure, InvokeError};
use crate::events::calls::{CallQueue, CallStore};
use crate::observe::logs::LogBook;
use crate::observe::meter::Meter;
use crate::observe::metrics::FunctionMetrics;
use crate::observe::metrics::Metrics;
use crate::registry::{Audience, Registry};
use crate::runtime::buffers::BufferBudget;
use crate::runtime::code_cache::{CodeCache, CodeSlot, LoadTurn};
pub use crate::runtime::code_cache::{DEFAULT_MAX_LOADED, DEFAULT_MAX_LOADED_BYTES, Residency};
use crate::runtime::compiler;
use crate::runtime::engine::{self, EngineOptions, EpochTicker};
use crate::runtime::function::{Function, IdleSandbox, Linkers, LoadedCode, VersionInfo};
use crate::runtime::prepared::PreparedBudget;
use crate::runtime::sandbox::GuestMemory;
use crate::runtime::services::GuestServices;
use crate::runtime::slots::HostSlots;
use crate::state::{KvBackend, RedbStore, SecretStore};
pub use config::{HostConfig, LoadProblem, StartError};
use per_function::PerFunction;
pub use state::MAX_KEYS_PER_LIST;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Engine;
use wisp_spec::api::{FunctionStats, UsageReport};
use wisp_spec::inspect::Abi;
use wisp_spec::settings::Settings;

pub(crate) struct HostInner {
    pub(crate) config: HostConfig,
    /// The data directory is this host's while it lives.
    _lock: DirLock,
    pub(crate) engine: Engine,
    _ticker: EpochTicker,
    pub(crate) linkers: Linkers,
    pub(crate) artifacts: ArtifactStore,
    pub(crate) records: RecordStore,
    pub(crate) registry: Registry,
    pub(crate) metrics: Metrics,
    pub(crate) slots: HostSlots,
    pub(crate) buffers: Arc<BufferBudget>,
    pub(crate) guest_memory: Arc<GuestMemory>,
    /// Serializes changes to the deployed set (record writes and publishing;
    /// never compiling). Requests never take it.
    pub(crate) writer: tokio::sync::Mutex<()>,
    /// Sources of deploys still compiling, which garbage collection keeps.
    pub(crate) pending: Pending,
    /// The key-value store behind `wasi:keyvalue`.
    pub(crate) kv: Arc<dyn KvBackend>,
    /// Every function's secrets.
    pub(crate) secrets: SecretStore,
    /// Async calls, stored until they expire.
    pub(crate) calls: CallStore,
    per_function: PerFunction,
    /// Compiled code, loaded on demand.
    pub(crate) code: CodeCache,
    /// The bound on sandboxes prepared ahead.
    pub(crate) prepared: PreparedBudget,
    /// The cluster this host belongs to, in cluster mode.
    #[cfg(feature = "cluster")]
    pub(crate) cluster: Option<Arc<crate::cluster::Cluster>>,
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
            max_instances: config
                .max_instances
                .saturating_add(u32::try_from(config.max_prepared).unwrap_or(u32::MAX)),
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
        private::create(&config.data_dir).map_err(|e| data_error(e.to_string()))?;
        let lock = DirLock::take(&config.data_dir).map_err(|e| match e {
            DirLockError::InUse(pid) => StartError::DataDirInUse {
                path: config.data_dir.clone(),
                pid,
            },
            DirLockError::Io(e) => data_error(format!("locking it failed: {e}")),
        })?;
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
        #[cfg(feature = "cluster")]
        let cluster = match &config.cluster {
            Some(cluster) => Some(Arc::new(
                crate::cluster::Cluster::connect(cluster.clone())
                    .await
                    .map_err(StartError::Cluster)?,
            )),
            None => None,
        };
        // The key-value and call stores: the cluster's, or this node's.
        #[cfg(feature = "cluster")]
        let shared = cluster
            .as_ref()
            .map(|c| c.stores(config.kv_limits, &config.async_calls));
        #[cfg(not(feature = "cluster"))]
        let shared = None;
        let (kv, calls): (Arc<dyn KvBackend>, CallStore) = match shared {
            Some(shared) => shared,
            None => (
                Arc::new(
                    RedbStore::open(&config.data_dir, config.kv_limits)
                        .map_err(|e| data_error(e.to_string()))?,
                ),
                CallStore::Local(Box::new(
                    CallQueue::open(&config.data_dir).map_err(|e| data_error(e.to_string()))?,
                )),
            ),
        };
        let secrets = SecretStore::open(&config.data_dir).map_err(|e| data_error(e.to_string()))?;
        private::seal(&config.data_dir).map_err(|e| data_error(e.to_string()))?;
        let metrics = Metrics::new();
        let slots = HostSlots::new(config.max_instances, &metrics);
        let buffers = BufferBudget::new(config.max_buffered_bytes, metrics.buffered().clone());
        let guest_memory = GuestMemory::new(
            config.max_guest_memory_bytes,
            metrics.guest_memory().clone(),
        );
        let residency = config.residency;
        let max_prepared = config.max_prepared;
        let host = Host {
            inner: Arc::new(HostInner {
                config,
                _lock: lock,
                engine,
                _ticker: ticker,
                linkers,
                artifacts,
                records,
                registry: Registry::default(),
                metrics,
                slots,
                buffers,
                guest_memory,
                writer: tokio::sync::Mutex::new(()),
                pending: Pending::default(),
                kv,
                secrets,
                calls,
                per_function: PerFunction::default(),
                code: CodeCache::new(residency),
                prepared: PreparedBudget::new(max_prepared),
                #[cfg(feature = "cluster")]
                cluster,
            }),
        };
        host.sweep_removed_state().await;
        crate::events::cron::start(Arc::downgrade(&host.inner));
        crate::runtime::prepared::sweep(Arc::downgrade(&host.inner));
        let problems = host.load_stored(stored).await;
        // Stored calls run only once the functions they call are loaded.
        crate::events::calls::start(
            Arc::downgrade(&host.inner),
            host.inner.calls.wake(),
            host.inner.config.async_calls,
            host.inner.config.max_instances,
        );
        #[cfg(feature = "cluster")]
        if host.inner.cluster.is_some() {
            crate::cluster::Cluster::start(Arc::downgrade(&host.inner));
        }

        Ok((host, problems))
    }

    /// The loaded code of `slot`, for a request of function `function`:
    /// resident already, or loaded now from its verified artifact
    /// (recompiled from source if the artifact is missing or corrupt).
    /// Concurrent first requests load it once; code that cannot be loaded
    /// makes the function unavailable (503), with the reason in the log.
    pub(crate) async fn code(
        &self,
        slot: &Arc<CodeSlot>,
        function: &str,
    ) -> Result<Arc<LoadedCode>, InvokeError> {
        let resident = || {
            let code = slot.get()?;
            self.inner.code.touch(slot);
            Some(code)
        };
        if let Some(code) = resident() {
            return Ok(code);
        }
        let mut turn = slot.turn().await;
        if let Some(code) = resident() {
            return Ok(code);
        }
        if CodeSlot::failed_recently(&turn) {
            return Err(InvokeError::Unavailable(function.to_owned()));
        }
        let host = self.clone();
        let to_load = slot.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            host.load_code(&to_load, &mut turn, || host.verified_artifact(&to_load))
        })
        .await
        .map_err(|e| InvokeError::Internal(format!("loading the code panicked: {e}")))?;
        loaded.map_err(|e| {
            tracing::error!(function, artifact = %slot.key, "version not loaded: {e}");
            InvokeError::Unavailable(function.to_owned())
        })
    }

    /// The loaded code of `slot`, loading it in `turn` from the file
    /// `artifact` gives when it is not resident (blocking); counts the load
    /// and its evictions.
    pub(crate) fn load_code(
        &self,
        slot: &Arc<CodeSlot>,
        turn: &mut LoadTurn,
        artifact: impl FnOnce() -> Result<PathBuf, DeployError>,
    ) -> Result<Arc<LoadedCode>, DeployError> {
        let inner = &self.inner;
        let started = Instant::now();
        let loaded = inner
            .code
            .load(&inner.engine, &inner.linkers, slot, turn, artifact)?;
        if let Some(admitted) = loaded.admitted {
            inner.metrics.record_code_load(
                started.elapsed(),
                admitted.evicted,
                admitted.resident,
                admitted.bytes,
            );
        }
        Ok(loaded.code)
    }

    /// The verified compiled artifact of `slot`; a missing or corrupt one
    /// is recompiled from its stored source (blocking).
    pub(crate) fn verified_artifact(&self, slot: &CodeSlot) -> Result<PathBuf, DeployError> {
        let artifacts = &self.inner.artifacts;
        let name = &slot.function;
        match artifacts.verified_compiled(&slot.key) {
            Ok(path) => Ok(path),
            Err(ArtifactError::Missing(_) | ArtifactError::Corrupt(_)) => {
                if artifacts.compiled_path(&slot.key).exists() {
                    tracing::warn!(function = %name, artifact = %slot.key, "compiled artifact is corrupt; recompiling from source");
                }
                let wasm = artifacts.read_source(&slot.source).map_err(|e| {
                    HostFailure::logged(format!("reading the stored source of `{name}` failed"), e)
                })?;
                self.compile_and_store(slot.abi, &wasm, &slot.key, name)
            }
            Err(e) => Err(HostFailure::logged(
                format!("reading the compiled code of `{name}` failed"),
                e,
            )
            .into()),
        }
    }

    /// The meter for version `version` of function `name`.
    pub(crate) fn meter(&self, name: &str, version: u32) -> Meter {
        let books = self.inner.per_function.books(name);
        Meter {
            metrics: Arc::new(self.inner.metrics.for_version(name, version)),
            usage: books.usage,
            logs: books.logs,
            history: books.history,
            version,
            guest_memory: self.inner.guest_memory.clone(),
        }
    }

    /// The platform services of a version of function `name` with
    /// `settings`, counting its breaches in `metrics`.
    pub(crate) fn services(
        &self,
        name: &str,
        settings: &Settings,
        metrics: Arc<FunctionMetrics>,
    ) -> Arc<GuestServices> {
        Arc::new(GuestServices::new(
            Arc::from(name),
            settings,
            self.inner.kv.clone(),
            self.inner.secrets.for_function(name),
            metrics,
        ))
    }

    /// A deployed version running the code of `code`, with its meter and
    /// services.
    pub(crate) fn new_version(&self, info: VersionInfo, code: Arc<CodeSlot>) -> Function {
        let meter = self.meter(&info.name, info.version);
        let services = self.services(&info.name, &info.settings, meter.metrics.clone());
        Function::new(info, code, meter, services)
    }

    /// Forgets the usage, logs and metric series of a removed function.
    pub(crate) fn forget(&self, name: &str) {
        self.inner.per_function.forget(name);
        self.inner.metrics.forget_function(name);
    }

    /// Compiles and stores an artifact under `key` for function `name`
    /// (blocking).
    pub(crate) fn compile_and_store(
        &self,
        abi: Abi,
        wasm: &[u8],
        key: &str,
        name: &str,
    ) -> Result<PathBuf, DeployError> {
        let started = Instant::now();
        let config = &self.inner.config;
        let cwasm = compiler::compile(
            &self.inner.engine,
            &config.compiler,
            &config.compile_budget,
            abi,
            wasm,
        )?;
        self.inner.metrics.record_compile(started.elapsed());
        let stored = self
            .inner
            .artifacts
            .put_compiled(key, &cwasm)
            .map_err(|e| {
                HostFailure::logged(format!("storing the compiled code of `{name}` failed"), e)
            })?;
        Ok(stored)
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
        let code = self.code(function.code(), name).await?;
        function.instantiate(&code).await
    }

    /// Cumulative usage of function `name` (across its versions).
    pub fn usage(&self, name: &str) -> Option<UsageReport> {
        self.inner.registry.snapshot().get(name)?;
        Some(self.inner.per_function.books(name).usage.report())
    }

    /// The recent traffic of function `name` over the last `window`
    /// seconds, with its per-second history.
    pub fn stats(&self, name: &str, window: u64) -> Option<FunctionStats> {
        self.inner.registry.snapshot().get(name)?;
        let history = self.inner.per_function.books(name).history;
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
                stats: self.inner.per_function.books(name).history.stats(window),
                history: Vec::new(),
            })
            .collect()
    }

    /// The log book of function `name`.
    pub fn logs(&self, name: &str) -> Option<Arc<LogBook>> {
        self.inner.registry.snapshot().get(name)?;
        Some(self.inner.per_function.books(name).logs)
    }

    /// True in cluster mode.
    pub(crate) fn in_cluster(&self) -> bool {
        #[cfg(feature = "cluster")]
        return self.inner.cluster.is_some();
        #[cfg(not(feature = "cluster"))]
        false
    }

    /// The state files the host cannot use now, each named under the data
    /// dir with why (see `GET /healthz`); empty when all is well.
    pub fn damage(&self) -> Vec<String> {
        let inner = &self.inner;
        let mut damage: Vec<String> = [inner.kv.damage(), inner.calls.damage()]
            .into_iter()
            .flatten()
            .collect();
        damage.extend(inner.secrets.damage());
        damage
    }

    /// How this host stands with its cluster, in cluster mode.
    pub fn cluster_health(&self) -> Option<wisp_spec::api::ClusterHealth> {
        #[cfg(feature = "cluster")]
        return self.inner.cluster.as_ref().map(|c| c.health());
        #[cfg(not(feature = "cluster"))]
        None
    }

    /// How the host's spans join distributed traces, if it traces.
    pub(crate) fn trace_context(&self) -> Option<&Arc<dyn crate::observe::spans::TraceContext>> {
        self.inner.config.trace_context.as_ref()
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
}
