//! Running guests: the wasmtime engines (one for WASI 0.3 components, one
//! for the rest: `engine.rs`), deployed versions and their compiled code
//! (loaded on demand, least recently used evicted: `code_cache.rs`), the per-request sandbox (and the next one, prepared
//! ahead), the budgets a run takes (concurrency slots: `slots.rs`; buffered
//! request bodies: `buffers.rs`), the guest ABIs, and the platform services
//! (key-value, config) components may import; the artifact store of
//! sources and compiled code (`artifacts.rs`); request and response bodies
//! and their pacing (`body.rs`, `pacing.rs`, `connection.rs`); and a
//! guest's chained calls to other functions (`chain.rs`), which leave the
//! sandbox through the narrow [`chain::Dispatch`] handle.

pub(crate) mod abi;
pub(crate) mod artifacts;
pub mod body;
pub(crate) mod buffers;
pub(crate) mod chain;
pub(crate) mod code_cache;
pub(crate) mod compiler;
pub mod connection;
#[cfg(feature = "escape-drill")]
pub(crate) mod drill;
pub(crate) mod engine;
pub(crate) mod function;
pub(crate) mod jail;
pub(crate) mod loading;
pub mod pacing;
pub(crate) mod prepared;
pub(crate) mod reuse;
pub(crate) mod sandbox;
pub(crate) mod services;
pub(crate) mod slots;
pub(crate) mod workers;

use crate::observe::metrics::Metrics;
use artifacts::ArtifactStore;
use buffers::BufferBudget;
use code_cache::{CodeCache, Residency};
use compiler::{CompileBudget, Compiler};
use engine::{Engines, EpochTicker};
use function::Linkers;
use prepared::PreparedBudget;
use sandbox::GuestMemory;
use slots::HostSlots;
use std::path::Path;
use std::sync::Arc;

/// What the runtime is built from: the host-wide bounds of running guests.
pub(crate) struct RuntimeOptions {
    /// Sandboxes running at once, host-wide.
    pub(crate) max_instances: u32,
    /// Sandboxes prepared ahead at once, host-wide (their pool slots come
    /// on top of `max_instances`).
    pub(crate) max_prepared: usize,
    /// Whether sandboxes come from the pooling allocator.
    pub(crate) pooling: bool,
    /// How much compiled code stays loaded.
    pub(crate) residency: Residency,
    /// Bytes of request bodies buffered at once, host-wide.
    pub(crate) max_buffered_bytes: u64,
    /// Bytes of guest linear memory held at once, host-wide.
    pub(crate) max_guest_memory_bytes: u64,
    /// How to compile.
    pub(crate) compiler: Compiler,
    /// What one compile may use.
    pub(crate) compile_budget: CompileBudget,
}

/// Why the runtime could not start.
pub(crate) enum RuntimeError {
    /// The engine (or its epoch ticker, or its linkers) could not be built.
    Engine(String),
    /// The artifact store under the data dir could not be opened.
    Artifacts(String),
}

/// The runtime: the engines and everything a run takes from it — the
/// compiled code (stored and loaded), the host-wide budgets (slots,
/// buffers, guest memory, prepared sandboxes). Owned by the composition
/// root and handed to the deployer (which compiles into it) and the
/// dispatcher (which runs guests on it).
pub(crate) struct Runtime {
    /// The engines: WASI 0.3 components run on one of their own.
    pub(crate) engines: Engines,
    _ticker: EpochTicker,
    pub(crate) linkers: Linkers,
    pub(crate) artifacts: ArtifactStore,
    pub(crate) code: CodeCache,
    pub(crate) slots: HostSlots,
    pub(crate) buffers: Arc<BufferBudget>,
    pub(crate) guest_memory: Arc<GuestMemory>,
    pub(crate) prepared: PreparedBudget,
    pub(crate) metrics: Arc<Metrics>,
    compiler: Compiler,
    compile_budget: CompileBudget,
}

/// What a guest worker's runtime is built from: its one function's bounds.
pub(crate) struct WorkerBounds {
    /// Sandboxes at once (its engine's pool).
    pub(crate) max_instances: u32,
    /// The host's guest memory budget, of which its front grants it
    /// shares as its guests grow.
    pub(crate) max_guest_memory_bytes: u64,
    /// Bytes of buffered request bodies at once.
    pub(crate) max_buffered_bytes: u64,
    /// Bytes of that budget its front granted with its assignment.
    pub(crate) granted_guest_memory: u64,
}

impl Runtime {
    /// The engines and linkers of a guest worker, each engine's pool sized
    /// for `max_instances`: built before it is jailed (the pooling
    /// allocator opens `/proc/self/pagemap`, which the jail then keeps it
    /// from opening) and before it is assigned a function (so a spare has
    /// them ready).
    pub(crate) fn worker_engines(max_instances: u32) -> Result<(Engines, Linkers), RuntimeError> {
        let engines = Engines::build(max_instances, true)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let linkers = Linkers::new(&engines).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        Ok((engines, linkers))
    }

    /// The runtime of a guest worker, on `engines` (see
    /// [`Runtime::worker_engines`]): budgets, no artifact store (its code
    /// is handed to it loaded) and no compiler. Starts the epoch ticker's
    /// thread: call it once jailed.
    pub(crate) fn for_worker(
        (engines, linkers): (Engines, Linkers),
        bounds: &WorkerBounds,
        metrics: Arc<Metrics>,
    ) -> Result<Runtime, RuntimeError> {
        let ticker =
            EpochTicker::start(engines.all()).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        Ok(Runtime {
            slots: HostSlots::new(bounds.max_instances, &metrics),
            buffers: BufferBudget::new(bounds.max_buffered_bytes, metrics.buffered().clone()),
            guest_memory: GuestMemory::leased(
                bounds.max_guest_memory_bytes,
                bounds.granted_guest_memory,
                metrics.guest_memory().clone(),
            ),
            code: CodeCache::new(Residency::default()),
            prepared: PreparedBudget::new(1),
            artifacts: ArtifactStore::none(engines.fingerprint()),
            engines,
            _ticker: ticker,
            linkers,
            metrics,
            compiler: Compiler::InProcess,
            compile_budget: CompileBudget::default(),
        })
    }

    /// Builds the engine and opens the artifact store under `data_dir`.
    pub(crate) fn start(
        options: RuntimeOptions,
        data_dir: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Runtime, RuntimeError> {
        let engines = Engines::build(
            options
                .max_instances
                .saturating_add(u32::try_from(options.max_prepared).unwrap_or(u32::MAX)),
            options.pooling,
        )
        .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let ticker =
            EpochTicker::start(engines.all()).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let linkers = Linkers::new(&engines).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let artifacts = ArtifactStore::open(&data_dir.join("artifacts"), engines.fingerprint())
            .map_err(|e| RuntimeError::Artifacts(e.to_string()))?;
        Ok(Runtime {
            slots: HostSlots::new(options.max_instances, &metrics),
            buffers: BufferBudget::new(options.max_buffered_bytes, metrics.buffered().clone()),
            guest_memory: GuestMemory::new(
                options.max_guest_memory_bytes,
                metrics.guest_memory().clone(),
            ),
            code: CodeCache::new(options.residency),
            prepared: PreparedBudget::new(options.max_prepared),
            engines,
            _ticker: ticker,
            linkers,
            artifacts,
            metrics,
            compiler: options.compiler,
            compile_budget: options.compile_budget,
        })
    }
}
