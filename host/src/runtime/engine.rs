//! The one wasmtime [`Engine`] every function runs on, and its epoch ticker.
//!
//! All engine knobs live here: Cranelift, the pooling instance allocator with
//! copy-on-write memory images (instantiation maps the initial memory instead
//! of copying it), epoch interruption (one ticker thread drives every guest's
//! time slice) and fuel (so a function may opt into metered CPU). Changing a
//! knob that affects generated code changes the engine's compatibility hash,
//! and with it every artifact key, so stale artifacts are never loaded.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};
use wisp_spec::inspect::{Abi, Resources};

/// How often the epoch ticks. A running guest yields to the async runtime at
/// each tick, so this bounds how long one guest can hold a worker thread.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Default number of instances that may be alive at once across all functions
/// (the pooling allocator's slot count and the global concurrency cap).
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;

/// Core instances, memories and tables a component may hold (a Rust
/// `wasm32-wasip2` component has a handful of core instances and 1–2 memories).
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 8;
/// Memories and tables one core module may define (the pool's slots are
/// sized for one of each, as nearly every toolchain emits).
const MEMORIES_PER_MODULE: u32 = 1;
const TABLES_PER_MODULE: u32 = 1;

/// Bytes of each linear memory kept mapped when a pool slot is released. The
/// next instance in the slot then finds its pages resident (no page faults);
/// with `pagemap_scan` only the pages the last guest dirtied are reset.
const LINEAR_MEMORY_KEEP_RESIDENT: usize = 2 << 20;
/// Same, for tables.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Which of the two engines: WASI 0.3 components need the component
/// model's async ABI and wasmtime's concurrency support, which costs every
/// WASI 0.2 call made without it a third of its throughput (measured; see
/// the README) — so they get an engine of their own, and 0.2 components and
/// CGI modules keep the engine they had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// WASI 0.2 components and CGI modules: no concurrency support.
    Plain,
    /// WASI 0.3 components: the async ABI, streams and futures.
    Concurrent,
}

impl Flavor {
    /// The engine a binary of `abi` is compiled for and runs on.
    pub fn of(abi: Abi) -> Flavor {
        match abi {
            Abi::WasiHttp3 => Flavor::Concurrent,
            Abi::WasiHttp | Abi::Cgi => Flavor::Plain,
        }
    }
}

/// How the engine is built.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Instances alive at once across all functions; sizes the pool.
    pub max_instances: u32,
    /// Use the pooling allocator (the default). Off allocates each instance
    /// on demand, which only benchmarks comparing the two want.
    pub pooling: bool,
    /// Which engine.
    pub flavor: Flavor,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_instances: DEFAULT_MAX_INSTANCES,
            pooling: true,
            flavor: Flavor::Plain,
        }
    }
}

/// Builds the engine.
pub fn build(options: &EngineOptions) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config
        .cranelift_opt_level(OptLevel::Speed)
        .epoch_interruption(true)
        .consume_fuel(true)
        .memory_init_cow(true);
    match options.flavor {
        Flavor::Plain => config.concurrency_support(false),
        Flavor::Concurrent => config.wasm_component_model_async(true),
    };
    if options.pooling {
        let n = options.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .total_memories(n.saturating_mul(MEMORIES_PER_COMPONENT))
            .total_tables(n.saturating_mul(TABLES_PER_COMPONENT))
            .total_stacks(n)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .max_memories_per_module(MEMORIES_PER_MODULE)
            .max_tables_per_module(TABLES_PER_MODULE)
            .max_memory_size(wisp_spec::limits::MAX_MEMORY_LIMIT_BYTES as usize)
            .linear_memory_keep_resident(LINEAR_MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            .pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config)
}

/// The host's two engines (see [`Flavor`]), built alike otherwise.
#[derive(Clone)]
pub struct Engines {
    plain: Engine,
    concurrent: Engine,
}

impl Engines {
    /// Builds both, each with a pool of `max_instances` (when `pooling`).
    pub fn build(max_instances: u32, pooling: bool) -> wasmtime::Result<Engines> {
        let options = |flavor| EngineOptions {
            max_instances,
            pooling,
            flavor,
        };
        Ok(Engines {
            plain: build(&options(Flavor::Plain))?,
            concurrent: build(&options(Flavor::Concurrent))?,
        })
    }

    /// The engine a binary of `abi` is compiled for and runs on.
    pub fn for_abi(&self, abi: Abi) -> &Engine {
        match Flavor::of(abi) {
            Flavor::Plain => &self.plain,
            Flavor::Concurrent => &self.concurrent,
        }
    }

    /// Both, for the epoch ticker.
    pub fn all(&self) -> Vec<Engine> {
        vec![self.plain.clone(), self.concurrent.clone()]
    }

    /// What compiled artifacts must match: both engines' fingerprints (a
    /// binary's ABI picks its engine, and either may change).
    pub fn fingerprint(&self) -> String {
        format!(
            "{}-{}",
            compatibility_fingerprint(&self.plain),
            compatibility_fingerprint(&self.concurrent)
        )
    }
}

/// Refuses, before any compile, a binary the instance pool could never
/// instantiate, saying which count is over and by how much.
pub fn check_fits_pool(needs: &Resources) -> Result<(), String> {
    let checks = [
        (
            needs.core_instances,
            CORE_INSTANCES_PER_COMPONENT,
            "core instances",
        ),
        (needs.memories, MEMORIES_PER_COMPONENT, "linear memories"),
        (needs.tables, TABLES_PER_COMPONENT, "tables"),
        (
            needs.memories_per_module,
            MEMORIES_PER_MODULE,
            "linear memories in one core module",
        ),
        (
            needs.tables_per_module,
            TABLES_PER_MODULE,
            "tables in one core module",
        ),
    ];
    for (count, limit, what) in checks {
        if count > limit {
            return Err(format!(
                "it needs {count} {what}, and this host's instance pool allows {limit}"
            ));
        }
    }
    Ok(())
}

/// The fingerprint of everything that makes compiled code compatible with
/// this engine (wasmtime version, target, code-affecting settings), as hex.
pub fn compatibility_fingerprint(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    struct Blake3Hasher(blake3::Hasher);
    impl Hasher for Blake3Hasher {
        fn finish(&self) -> u64 {
            // Unused: `Hash` impls only call `write`; the digest is read below.
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = Blake3Hasher(blake3::Hasher::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().to_hex().to_string()
}

/// Drives the engine's epoch from one background thread; dropping it stops
/// the thread.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engines` every [`EPOCH_TICK`].
    pub fn start(engines: Vec<Engine>) -> std::io::Result<EpochTicker> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("wisp-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(EpochTicker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
