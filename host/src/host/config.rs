//! [`HostConfig`]: how a host is set up, and what can go wrong starting it.
//!
//! `Default` is the production default; every field is documented with its
//! unit. Problems with single stored functions are [`LoadProblem`]s, reported
//! and never fatal; only an unusable engine or data dir stops a start.

use crate::events::calls::AsyncCalls;
use crate::observe::spans::TraceContext;
use crate::runtime::compiler::{CompileBudget, Compiler};
use crate::runtime::engine;
use crate::runtime::pacing::BodyPacing;
use crate::state::KvLimits;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wisp_spec::limits;

/// Default cap on an uploaded `.wasm`, in bytes.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 200 << 20;

/// Default number of versions kept per function (those holding traffic are
/// always kept besides).
pub const DEFAULT_KEEP_VERSIONS: usize = 10;

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
    /// How much compiled code stays loaded: past `--max-loaded` artifacts
    /// or `--max-loaded-bytes`, the least recently used is evicted (its
    /// next request loads it again).
    pub residency: super::Residency,
    /// Sandboxes prepared ahead of their request, host-wide (one per
    /// component version with recent traffic; 0 turns preparing off).
    /// Their pool slots come on top of `max_instances`.
    pub max_prepared: usize,
    /// Use the pooling allocator (off only for benchmarks).
    pub pooling: bool,
    /// How long a request waits for a free slot before 503.
    pub queue_timeout: Duration,
    /// Versions kept per function.
    pub keep_versions: usize,
    /// Log one access line per request (target `wisp::access`).
    pub access_log: bool,
    /// How fast a request body must arrive (else `408`).
    pub body_pacing: BodyPacing,
    /// Bytes of request bodies held in memory at once across all requests
    /// (CGI bodies are read whole before the guest runs); past it, `503`.
    /// Default: an eighth of physical memory.
    pub max_buffered_bytes: u64,
    /// Bytes of linear memory all live sandboxes may hold together; a guest
    /// growing past it gets `503` (`host-memory`). Default: half of
    /// physical memory.
    pub max_guest_memory_bytes: u64,
    /// Where compiles run: in this process (the default) or in a child
    /// process, which can cap their memory and gives it all back.
    pub compiler: Compiler,
    /// How long, and how much memory, one compile may take; past it the
    /// deploy gets `400` with kind `compile-limit`.
    pub compile_budget: CompileBudget,
    /// Let a function's `dir` setting grant the host's root directory (`/`,
    /// however written), which hands the guest every file the host process
    /// can read. Off by default: such a deploy is refused (`400`,
    /// `invalid-settings`), and a stored version with one is not loaded
    /// (a [`LoadProblem`]). `wisp serve --allow-root-dir` turns it on.
    pub allow_root_dir: bool,
    /// The only host directories a function's `dir` setting may grant (each
    /// a directory or one below it); empty: any, as long as the other rules
    /// hold. Whatever the list, the data directory and anything inside it
    /// (secrets, stored calls, artifacts) is never granted (a directory
    /// above it is the operator's call, like `/` with `allow_root_dir`).
    /// Checked on every
    /// deploy and on every record the host loads, its own or a cluster's.
    /// `wisp serve --dir-root PATH`.
    pub dir_roots: Vec<PathBuf>,
    /// Size limits of the key-value store: key, value and bytes per bucket.
    pub kv_limits: KvLimits,
    /// How async calls (`Prefer: respond-async`) run: workers, retries,
    /// backoff and retention.
    pub async_calls: AsyncCalls,
    /// How request spans join distributed traces (see
    /// [`crate::TraceContext`]); `None`: they carry no trace context, and
    /// log lines no trace id.
    pub trace_context: Option<Arc<dyn TraceContext>>,
    /// Cluster mode: keep the desired state, sources, key-value buckets
    /// and cron claims in NATS JetStream, shared with every host of the
    /// cluster (see `wisp serve --cluster`). `None`: a single node.
    #[cfg(feature = "cluster")]
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            data_dir: PathBuf::from("wisp-data"),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_instances: engine::DEFAULT_MAX_INSTANCES,
            residency: super::Residency::default(),
            max_prepared: crate::runtime::prepared::DEFAULT_MAX_PREPARED,
            pooling: true,
            queue_timeout: limits::DEFAULT_QUEUE_TIMEOUT,
            keep_versions: DEFAULT_KEEP_VERSIONS,
            access_log: true,
            body_pacing: BodyPacing::default(),
            max_buffered_bytes: crate::runtime::buffers::default_budget(),
            max_guest_memory_bytes: crate::runtime::sandbox::default_guest_memory(),
            compiler: Compiler::default(),
            compile_budget: CompileBudget::default(),
            allow_root_dir: false,
            dir_roots: Vec::new(),
            kv_limits: KvLimits::default(),
            async_calls: AsyncCalls::default(),
            trace_context: None,
            #[cfg(feature = "cluster")]
            cluster: None,
        }
    }
}

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The engine could not be built.
    #[error("creating the wasmtime engine failed: {0}")]
    Engine(String),
    /// The cluster's NATS server cannot be used (bad URL or credentials;
    /// an unreachable server is not an error: the host starts and retries).
    #[error("joining the cluster failed: {0}")]
    Cluster(String),
    /// Another host (this process's or another's) uses the data dir.
    #[error(
        "the data dir `{path}` is in use by another wisp host{}: stop it, or give this host its own `--data-dir`",
        pid.map(|pid| format!(" (PID {pid})")).unwrap_or_default()
    )]
    DataDirInUse {
        /// The data dir.
        path: PathBuf,
        /// The process that holds it, when known.
        pid: Option<u32>,
    },
    /// The data dir is unusable.
    #[error("opening the data dir `{path}` failed: {reason}")]
    DataDir {
        /// The data dir.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}
