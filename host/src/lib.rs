//! # wisp-host
//!
//! An embeddable WebAssembly function host: it compiles uploaded `.wasm`
//! functions ahead of time and serves every HTTP request from a fresh,
//! isolated sandbox that starts in microseconds. The `wisp` command line
//! (crate `wisp-cli`) is one program built on it; an edge node, a proxy or a
//! gateway can be another (see `examples/edge_node.rs`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use wisp_host::{DeployRequest, Host, HostConfig, RawSettings};
//!
//! let (host, _problems) = Host::start(HostConfig::default()).await?;
//! let wasm = std::fs::read("hello.wasm")?;
//! let settings = RawSettings::new().with("timeout", "2s")?;
//! host.deploy(DeployRequest::new("hello", "/hello", wasm).with_settings(settings))
//!     .await?;
//! let request = http::Request::get("/hello").body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! let response = host.handle(request).await;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```
//!
//! The crate installs no `tracing` subscriber and no exporter: it emits
//! events and spans, and the embedder decides where they go.
//!
//! ## Map of the crate
//!
//! `host/` is the composition root: [`Host::start`] builds each part with
//! exactly the parts it uses and wires them; [`Host`] is the facade whose
//! methods hand off to them. No part imports the root or holds the `Host`
//! (`.ci/run` checks it, with `scripts/check-module-cycles.py`, and that
//! the top-level modules import each other in no cycle). The full map,
//! with the request, deploy and cluster paths, is `docs/architecture.md`.
//!
//! | folder | owns | must not know |
//! | --- | --- | --- |
//! | `host/` | the composition root, [`Host`], [`HostConfig`] and the host-wide settings table ([`HOST_SETTINGS`], [`SERVER_SETTINGS`]), the choice of backplane | — |
//! | `request/` | the dispatcher: routing, version choice, slots, dispatch, the access log | async calls, deploys, the cluster |
//! | `runtime/` | the engine, compiled code (store, cache, loading), the host-wide budgets, the sandbox, the guest ABIs, bodies and pacing, chained calls (through the narrow `Dispatch` handle), guest worker processes and their jail (`workers/`, `jail.rs`) | the registry, the request path, deploys |
//! | `deploy/` | the deployer: deploy, traffic, rollback, retire, remove, the start-up load | requests, the cluster |
//! | `registry/` | name → versions → traffic, read lock-free; damage in records | how records are stored or shared |
//! | `backplane/` | what hosts share: the function records and the `SharedState` trait, with the host-alone implementation | NATS |
//! | `cluster/` | the NATS JetStream backplane (feature `cluster`) and its converger | the request path |
//! | `build/` | builds on the host (feature `build`): toolchains, unpacking a source upload, the build plan, the jailed build child | deploys, requests |
//! | `events/` | async calls and cron | the engine, deploys |
//! | `observe/` | metrics, guest logs, usage, per-function books, spans, request ids and trace context | everything above it |
//! | `state/` | the key-value store ([`KvBackend`], [`RedbStore`]), bucket grants, secrets | functions, requests |
//! | `admin/` | the admin API as a service ([`AdminApi`]), on the facade | the parts behind the facade |
//! | `server/` | an HTTP/1.1 + HTTP/2 front door ([`serve`]) for either handler, with connection bounds | wisp itself |
//! | `disk/` | atomic writes, private modes, the data-dir lock, crash points | — |
//! | `error.rs` | errors and their one HTTP mapping | — |
//!
//! Pure parsing and validation (settings, routes, units, the CGI response,
//! upload inspection, the admin API's bodies) come from [`wisp_spec`],
//! re-exported as [`spec`].
#![deny(missing_docs)]

mod admin;
mod backplane;
#[cfg(feature = "build")]
mod build;
mod channels;
#[cfg(feature = "cluster")]
mod cluster;
mod deploy;
mod disk;
mod error;
mod events;
mod host;
mod observe;
mod push;
mod registry;
mod request;
mod runtime;
mod server;
mod state;

pub use admin::AdminApi;
#[cfg(feature = "build")]
pub use build::{
    BUILD_USER, BuildOptions, Builder, Builds, Built, DEFAULT_BUILD_DISK, DEFAULT_BUILD_MEMORY,
    DEFAULT_BUILD_TIMEOUT, DEFAULT_MAX_SOURCE, DEFAULT_REPO_QUOTA, DeployTokens, HOOK_COMMAND,
    Language, MAX_TOKENS_PER_FUNCTION, build_child_main,
};
pub use channels::PublishError;
#[cfg(feature = "cluster")]
pub use cluster::ClusterConfig;
pub use deploy::DeployRequest;
pub use deploy::componentize::componentize;
pub use deploy::load::LoadProblem;
pub use error::{DeployError, HostFailure, InvokeError, Limit};
pub use events::calls::{CallFilter, Full, MAX_RESULT_BODY_BYTES, QueueError};
pub use host::{
    Form, HOST_SETTINGS, Host, HostConfig, HostSetting, MAX_KEYS_PER_LIST, SERVER_SETTINGS,
    StartError,
};
pub use observe::logs::LogBook;
pub use observe::metrics::{Metrics, resident_bytes};
pub use observe::spans::{SPAN_TARGET, TraceContext};
pub use runtime::body::{BoxError, ResponseBody};
pub use runtime::compiler::{Compiler, compile_worker_main};
pub use runtime::connection::ConnectionInfo;
pub use runtime::function::IdleSandbox;
pub use runtime::workers::{
    DEFAULT_MAX_WORKERS, DEFAULT_SPARE_WORKERS, DEFAULT_WORKER_IDLE, WorkerOptions,
    guest_worker_main,
};
pub use server::{Handler, ServerOptions, serve};
pub use state::{
    AccessDenied, BucketId, KeyPage, KvBackend, KvError, KvFuture, KvLimits, MAX_SECRET_NAME_BYTES,
    MAX_SECRET_VALUE_BYTES, RedbStore, resolve_bucket,
};
pub use wisp_spec as spec;
pub use wisp_spec::api::{DeployReport, FunctionInfo, UsageReport, VersionSummary};
pub use wisp_spec::settings::{RawSettings, RootDir, Settings, SettingsError};
