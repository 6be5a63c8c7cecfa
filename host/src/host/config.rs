//! [`HostConfig`]: how a host is set up, and what can go wrong starting it.
//!
//! `Default` is the production default; every field is documented with its
//! unit. Problems with single stored functions are [`LoadProblem`]s, reported
//! and never fatal; only an unusable engine or data dir stops a start.

use crate::events::calls::AsyncCalls;
use crate::observe::spans::TraceContext;
use crate::push::WebSocketOptions;
use crate::runtime::code_cache::Residency;
use crate::runtime::compiler::{CompileBudget, Compiler};
use crate::runtime::engine;
use crate::runtime::pacing::BodyPacing;
use crate::state::KvLimits;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wisp_spec::limits;

/// Default cap on an uploaded `.wasm`, in bytes.
const DEFAULT_MAX_UPLOAD: u64 = 200 << 20;

/// Default number of versions kept per function (those holding traffic are
/// always kept besides).
const DEFAULT_KEEP_VERSIONS: usize = 10;

/// How a host is set up. `Default` is the production default. Each field
/// that `wisp serve` sets is named after its flag (`max_upload` is
/// `--max-upload`); the flags, their defaults and help come from
/// [`crate::HOST_SETTINGS`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where artifacts, records, state and secrets live.
    pub data_dir: PathBuf,
    /// Largest accepted upload, in bytes.
    pub max_upload: u64,
    /// Instances alive at once across all functions (pool size and global
    /// concurrency cap; at least 1).
    pub max_instances: u32,
    /// Artifacts whose compiled code stays loaded at once (at least 1);
    /// past it, or past `max_loaded_bytes`, the least recently used is
    /// evicted (its next request loads it again).
    pub max_loaded: usize,
    /// Bytes of compiled code (artifact file sizes) loaded at once. The
    /// artifact just loaded always stays, even when it alone is bigger.
    pub max_loaded_bytes: u64,
    /// Sandboxes prepared ahead of their request, host-wide (one per
    /// component version with recent traffic; 0 turns preparing off).
    /// Their pool slots come on top of `max_instances`.
    pub prepare: usize,
    /// Use the pooling allocator (off only for benchmarks).
    pub pooling: bool,
    /// How long a request waits for a free slot before 503.
    pub queue_timeout: Duration,
    /// Versions kept per function (at least 1).
    pub keep_versions: usize,
    /// Log one access line per request (target `wisp::access`).
    pub access_log: bool,
    /// Longest pause in a request body, and the grace before
    /// `min_body_rate` counts; past it, `408`.
    pub body_timeout: Duration,
    /// Lowest average rate of a request body once it has taken longer than
    /// `body_timeout`, in bytes per second (0: none).
    pub min_body_rate: u64,
    /// Bytes of request bodies held in memory at once across all requests
    /// (CGI bodies are read whole before the guest runs); past it, `503`.
    /// Default: an eighth of physical memory.
    pub max_buffered: u64,
    /// Bytes of linear memory all live sandboxes may hold together; a guest
    /// growing past it gets `503` (`host-memory`). Default: half of
    /// physical memory.
    pub max_guest_memory: u64,
    /// Where compiles run: in this process (the default) or in a child
    /// process, which can cap their memory and gives it all back.
    pub compiler: Compiler,
    /// Where guests run: in this process (`None`, the default), or in
    /// jailed worker processes, one per function version (see
    /// [`WorkerOptions`](crate::WorkerOptions); `wisp serve --isolation
    /// process`).
    pub workers: Option<crate::runtime::workers::WorkerOptions>,
    /// Build source trees uploaded through the admin API (`None`, the
    /// default: source uploads are refused). See
    /// [`BuildOptions`](crate::BuildOptions).
    #[cfg(feature = "build")]
    pub builds: Option<crate::build::BuildOptions>,
    /// Longest one compile may take; past it the deploy gets `400` with
    /// kind `compile-limit`.
    pub max_compile_time: Duration,
    /// Most memory (data segment) one compile may use, in bytes; enforced
    /// only by [`Compiler::Subprocess`].
    pub max_compile_memory: u64,
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
    /// Checked on every deploy and on every record the host loads, its own
    /// or a cluster's. `wisp serve --dir-root PATH`, repeated.
    pub dir_roots: Vec<PathBuf>,
    /// Longest key-value key, in bytes.
    pub max_kv_key: u64,
    /// Largest key-value value, in bytes.
    pub max_kv_value: u64,
    /// Most bytes one key-value bucket may hold, counting each key and its
    /// value.
    pub max_kv_bucket: u64,
    /// Largest SQLite database file, in bytes.
    pub max_sqlite_size: u64,
    /// Async calls (`Prefer: respond-async`) run at once in the background
    /// (at most half of `max_instances`, and at least one).
    pub async_workers: u32,
    /// Retries after a failed async attempt (a 5xx, trap or timeout),
    /// before the call is dead-lettered as failed.
    pub retries: u32,
    /// Wait before an async call's first retry; each later one waits twice
    /// as long as the one before (at most an hour).
    pub retry_backoff: Duration,
    /// How long a finished async call (and its result) is kept; its
    /// request body is deleted as soon as it finishes.
    pub call_retention: Duration,
    /// Most async calls queued at once, all functions together (each
    /// function also has its own cap, a setting); past it a new call is
    /// `429`.
    pub max_queued_calls: u64,
    /// Most request-body bytes of queued async calls at once.
    pub max_queued_call_bytes: u64,
    /// WebSocket connections open at once on this host, all functions
    /// together (each function also has its own
    /// `websocket-max-connections`); past it a handshake is `503`.
    pub max_websockets: usize,
    /// WebSocket connections (and held streams and long-polls) open at
    /// once from one client address; past it a handshake is `503`.
    pub max_websockets_per_ip: usize,
    /// Largest WebSocket message, either way, in bytes; a client's larger
    /// one closes its connection (1009).
    pub websocket_max_message: u64,
    /// Messages a second one WebSocket client may send (a burst of as
    /// many); past it its connection is closed (1008).
    pub websocket_rate: u32,
    /// How long a WebSocket connection may go without a frame from its
    /// client (it is pinged at half of this) before it is closed (1001).
    pub websocket_idle: Duration,
    /// How long one batch of messages may take to reach a WebSocket client
    /// that stopped reading; past it the connection is dropped.
    pub websocket_send_timeout: Duration,
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
    /// Each part's own defaults, gathered.
    fn default() -> Self {
        let residency = Residency::default();
        let pacing = BodyPacing::default();
        let compile = CompileBudget::default();
        let kv = KvLimits::default();
        let calls = AsyncCalls::default();
        let websockets = WebSocketOptions::default();
        HostConfig {
            data_dir: PathBuf::from("wisp-data"),
            max_upload: DEFAULT_MAX_UPLOAD,
            max_instances: engine::DEFAULT_MAX_INSTANCES,
            max_loaded: residency.max_loaded,
            max_loaded_bytes: residency.max_loaded_bytes,
            prepare: crate::runtime::prepared::DEFAULT_MAX_PREPARED,
            pooling: true,
            queue_timeout: limits::DEFAULT_QUEUE_TIMEOUT,
            keep_versions: DEFAULT_KEEP_VERSIONS,
            access_log: true,
            body_timeout: pacing.idle,
            min_body_rate: pacing.min_bytes_per_sec,
            max_buffered: crate::runtime::buffers::default_budget(),
            max_guest_memory: crate::runtime::sandbox::default_guest_memory(),
            compiler: Compiler::default(),
            workers: None,
            #[cfg(feature = "build")]
            builds: None,
            max_compile_time: compile.time,
            max_compile_memory: compile.memory_bytes,
            allow_root_dir: false,
            dir_roots: Vec::new(),
            max_kv_key: kv.max_key_bytes as u64,
            max_kv_value: kv.max_value_bytes as u64,
            max_kv_bucket: kv.max_bucket_bytes,
            max_sqlite_size: crate::state::DEFAULT_MAX_DATABASE_BYTES,
            async_workers: calls.workers,
            retries: calls.retries,
            retry_backoff: calls.backoff,
            call_retention: calls.retention,
            max_queued_calls: calls.max_queued,
            max_queued_call_bytes: calls.max_queued_bytes,
            max_websockets: websockets.max_connections,
            max_websockets_per_ip: websockets.max_per_ip,
            websocket_max_message: websockets.max_message as u64,
            websocket_rate: websockets.rate,
            websocket_idle: websockets.idle,
            websocket_send_timeout: websockets.send_timeout,
            trace_context: None,
            #[cfg(feature = "cluster")]
            cluster: None,
        }
    }
}

/// Each part's own settings, cut from the flat config.
impl HostConfig {
    /// How much compiled code stays loaded.
    pub(crate) fn residency(&self) -> Residency {
        Residency {
            max_loaded: self.max_loaded,
            max_loaded_bytes: self.max_loaded_bytes,
        }
    }

    /// The bounds of WebSocket connections.
    pub(crate) fn websockets(&self) -> WebSocketOptions {
        WebSocketOptions {
            max_connections: self.max_websockets,
            max_per_ip: self.max_websockets_per_ip,
            max_message: usize::try_from(self.websocket_max_message).unwrap_or(usize::MAX),
            rate: self.websocket_rate,
            idle: self.websocket_idle,
            send_timeout: self.websocket_send_timeout,
        }
    }

    /// How fast request bodies must arrive.
    pub(crate) fn body_pacing(&self) -> BodyPacing {
        BodyPacing {
            idle: self.body_timeout,
            min_bytes_per_sec: self.min_body_rate,
        }
    }

    /// How much one compile may take.
    pub(crate) fn compile_budget(&self) -> CompileBudget {
        CompileBudget {
            time: self.max_compile_time,
            memory_bytes: self.max_compile_memory,
        }
    }

    /// The key-value store's size limits.
    pub(crate) fn kv_limits(&self) -> KvLimits {
        KvLimits {
            max_key_bytes: usize::try_from(self.max_kv_key).unwrap_or(usize::MAX),
            max_value_bytes: usize::try_from(self.max_kv_value).unwrap_or(usize::MAX),
            max_bucket_bytes: self.max_kv_bucket,
        }
    }

    /// How async calls run.
    pub(crate) fn async_calls(&self) -> AsyncCalls {
        AsyncCalls {
            workers: self.async_workers,
            retries: self.retries,
            backoff: self.retry_backoff,
            retention: self.call_retention,
            max_queued: self.max_queued_calls,
            max_queued_bytes: self.max_queued_call_bytes,
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
