//! `wisp serve`: run a host, with the public listener and the admin API
//! beside it, until SIGINT or SIGTERM.
//!
//! Flags are validated before anything is bound; logging (the one
//! `tracing` subscriber) is installed here, not by the library.

use super::{parse_duration_flag, parse_keep_versions, parse_size_flag};
use crate::telemetry::Telemetry;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use wisp_host::{
    AdminApi, AsyncCalls, BodyPacing, CompileBudget, Compiler, DeployRequest, Host, HostConfig,
    KvLimits, ServerOptions,
};
use wisp_spec::manifest::Manifest;

/// Open connections the admin listener holds at most.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// A size that may be zero (`0` turns the bound off).
fn parse_size_or_zero(text: &str) -> Result<u64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    parse_size_flag(text)
}

/// A count of at least one.
fn parse_at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a whole number of at least 1, got `{text}`"
        )),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct Serve {
    /// Address for public HTTP traffic to functions (HTTP/1.1 and HTTP/2).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Address for the admin API. Beyond loopback it requires `--admin-token`.
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR")]
    admin_listen: SocketAddr,
    /// Directory for compiled artifacts and deploy records.
    #[arg(long, default_value = "wisp-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Bearer token required by the admin API (an empty one is refused).
    #[arg(
        long,
        env = "WISP_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    admin_token: Option<String>,
    /// A host name (without port) the admin API also answers when it has no
    /// token; loopback names (`localhost`, `127.0.0.1`, `[::1]`) always are.
    /// Any other `Host` is refused, so a web page cannot reach the API
    /// through DNS rebinding. Repeatable.
    #[arg(long = "admin-host", value_name = "NAME")]
    admin_hosts: Vec<String>,
    /// An origin (`https://ops.example.com`) whose pages may change state
    /// through the admin API from a browser; by default only the admin
    /// API's own pages may (a cross-origin change is refused, 403).
    /// Repeatable.
    #[arg(long = "admin-origin", value_name = "ORIGIN")]
    admin_origins: Vec<String>,
    /// Join a cluster: keep deployed functions, their sources, key-value
    /// buckets and cron claims in this NATS server's JetStream, shared with
    /// every host started with the same URL (e.g. `nats://10.0.0.5:4222`;
    /// `nats://user:pass@host:4222` for a password, `nats://TOKEN@host` for
    /// a token, `tls://` to require TLS). The host serves its last known
    /// state while NATS is away and refuses changes (503). Credentials are
    /// never shown (`/healthz`, logs and errors show the URL without them).
    #[arg(long, env = "WISP_CLUSTER", hide_env_values = true, value_name = "URL")]
    cluster: Option<String>,
    /// A token to authenticate to the cluster's NATS server with.
    #[arg(
        long,
        env = "WISP_CLUSTER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        requires = "cluster"
    )]
    cluster_token: Option<String>,
    /// The CA certificate (PEM) that signed the NATS server's; requires TLS.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    cluster_tls_ca: Option<PathBuf>,
    /// This host's TLS client certificate (PEM), for a NATS server that
    /// verifies clients; needs `--cluster-tls-key`.
    #[arg(long, value_name = "FILE", requires_all = ["cluster", "cluster_tls_key"])]
    cluster_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--cluster-tls-cert`.
    #[arg(long, value_name = "FILE", requires_all = ["cluster", "cluster_tls_cert"])]
    cluster_tls_key: Option<PathBuf>,
    /// A NATS credentials file (`.creds`: JWT and NKey seed) for `--cluster`.
    #[arg(
        long,
        env = "WISP_CLUSTER_CREDS",
        value_name = "FILE",
        requires = "cluster"
    )]
    cluster_creds: Option<PathBuf>,
    /// Largest accepted upload (e.g. `200MiB`).
    #[arg(long, default_value = "200MiB", value_name = "SIZE", value_parser = parse_size_flag)]
    max_upload: u64,
    /// Instances alive at once across all functions (sizes the instance pool).
    #[arg(long, default_value_t = wisp_host::DEFAULT_MAX_INSTANCES, value_name = "N")]
    max_instances: u32,
    /// Functions' compiled code kept loaded at once (artifacts; versions
    /// with the same binary share one). Code loads on a function's first
    /// request; past this, the least recently used is evicted and loads
    /// again when next called. Idle functions then cost no code memory.
    #[arg(long, default_value_t = wisp_host::DEFAULT_MAX_LOADED, value_name = "N", value_parser = parse_at_least_one)]
    max_loaded: usize,
    /// Bytes of compiled code (artifact file sizes) kept loaded at once;
    /// past it, the least recently used is evicted.
    #[arg(long, default_value = "512MiB", value_name = "SIZE", value_parser = parse_size_flag)]
    max_loaded_bytes: u64,
    /// Fresh sandboxes made ahead of their request, host-wide: after a
    /// request of a component, its next sandbox is created in spare time, so
    /// the next request skips instantiation. Each serves one request, never
    /// more; one unused for 5 s is dropped. Their pool slots come on top of
    /// `--max-instances`. `0` turns it off.
    #[arg(long, default_value_t = wisp_host::DEFAULT_MAX_PREPARED, value_name = "N")]
    prepare: usize,
    /// Versions kept per function: the newest N, plus any that holds traffic
    /// or is the rollback target; older ones are garbage-collected.
    #[arg(long, default_value_t = wisp_host::DEFAULT_KEEP_VERSIONS, value_name = "N", value_parser = parse_keep_versions)]
    keep_versions: usize,
    /// Time a client has to send its request headers, and a new connection
    /// its first request (e.g. `10s`).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration_flag)]
    header_timeout: Duration,
    /// Time a connection with no request open is kept (HTTP/1 keep-alive
    /// and HTTP/2 alike).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration_flag)]
    idle_timeout: Duration,
    /// Time a request waits for a concurrency slot (its function's
    /// `max-concurrency`, or the host's `--max-instances`) before it gets
    /// `503` with `Retry-After`.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration_flag)]
    queue_timeout: Duration,
    /// Time a response may wait for its client to read before the
    /// connection is closed.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration_flag)]
    write_timeout: Duration,
    /// Longest pause in a request body before it gets `408`.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration_flag)]
    body_timeout: Duration,
    /// Lowest average rate of a request body once it has taken longer than
    /// `--body-timeout`, per second (e.g. `1KiB`; `0` turns it off).
    #[arg(long, default_value = "1KiB", value_name = "SIZE", value_parser = parse_size_or_zero)]
    min_body_rate: u64,
    /// Open connections on the public listener at most (never more than
    /// half the open-file limit).
    #[arg(long, default_value_t = wisp_host::DEFAULT_MAX_CONNECTIONS, value_name = "N", value_parser = parse_at_least_one)]
    max_connections: usize,
    /// Open connections on the public listener from one IP address at most.
    #[arg(long, default_value_t = wisp_host::DEFAULT_MAX_CONNECTIONS_PER_IP, value_name = "N", value_parser = parse_at_least_one)]
    max_connections_per_ip: usize,
    /// Linear memory all running guests may hold together (past it a
    /// request gets `503`); default: half of physical memory.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_flag)]
    max_guest_memory: Option<u64>,
    /// Longest one compile may take; a module over it gets `400`
    /// (`compile-limit`).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration_flag)]
    max_compile_time: Duration,
    /// Most memory one compile may use; compiles run in a child process
    /// capped at this.
    #[arg(long, default_value = "2GiB", value_name = "SIZE", value_parser = parse_size_flag)]
    max_compile_memory: u64,
    /// Longest key-value key a guest or operator may write.
    #[arg(long, default_value = "1KiB", value_name = "SIZE", value_parser = parse_size_flag)]
    max_kv_key: u64,
    /// Largest key-value value; a bigger write is an error to the guest.
    #[arg(long, default_value = "1MiB", value_name = "SIZE", value_parser = parse_size_flag)]
    max_kv_value: u64,
    /// Most bytes (keys plus values) one key-value bucket may hold.
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = parse_size_flag)]
    max_kv_bucket: u64,
    /// Async calls (`Prefer: respond-async`) run at once in the background
    /// (at most half of `--max-instances`). They take a slot only when one
    /// is free, so client requests never wait behind them.
    #[arg(long, default_value_t = wisp_host::DEFAULT_ASYNC_WORKERS, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    async_workers: u32,
    /// Retries of an async call whose attempt fails (5xx, trap or timeout)
    /// before it is dead-lettered as failed.
    #[arg(long, default_value_t = wisp_host::DEFAULT_RETRIES, value_name = "N")]
    retries: u32,
    /// Wait before an async call's first retry; it doubles for each one
    /// after (at most an hour).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration_flag)]
    retry_backoff: Duration,
    /// How long a finished async call, and its result, is kept (its
    /// request body is deleted as soon as it finishes).
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_duration_flag)]
    call_retention: Duration,
    /// Most async calls queued on this host at once, all functions together
    /// (each function also has its own `async-max-queued`); past it a new
    /// call is answered 429 with `Retry-After`. In a cluster, the cluster's.
    #[arg(long, default_value_t = wisp_host::DEFAULT_MAX_QUEUED_CALLS, value_name = "N")]
    max_queued_calls: u64,
    /// Most bytes of queued async calls' request bodies at once, all
    /// functions together. In a cluster, request and kept result bodies.
    #[arg(long, default_value = "1GiB", value_name = "SIZE", value_parser = parse_size_flag)]
    max_queued_call_bytes: u64,
    /// Bytes of request bodies held in memory at once (CGI bodies are read
    /// whole); default: an eighth of physical memory.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_flag)]
    max_buffered: Option<u64>,
    /// Let a function's `--dir` grant the host's root directory (`/`), and
    /// with it every file this process can read. Without it such a deploy is
    /// refused, and a stored version with one is not loaded.
    #[arg(long)]
    allow_root_dir: bool,
    /// The only host directories a function's `--dir` may grant (each one
    /// or any directory below it); repeatable. Without it, any directory but
    /// the data dir (and `/`, see `--allow-root-dir`). Deploys, stored
    /// versions and cluster records granting anything else are refused.
    #[arg(long = "dir-root", value_name = "DIR")]
    dir_roots: Vec<PathBuf>,
    /// Deploy the functions of this manifest (building them first) at start.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Log format on stderr (level from `RUST_LOG`, default `info`).
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
    /// Log one access line per request (`--access-log false` turns it off).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    access_log: bool,
}

impl Serve {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        if self.admin_token.as_deref() == Some("") {
            bail!(
                "the admin token is empty; set a non-empty `--admin-token` or `WISP_ADMIN_TOKEN`, or unset both to run the admin API on loopback without a token"
            );
        }
        if !self.admin_listen.ip().is_loopback() && self.admin_token.is_none() {
            bail!(
                "the admin API would listen on {} beyond loopback without a token; set `--admin-token` or `WISP_ADMIN_TOKEN`",
                self.admin_listen
            );
        }
        if self.max_instances == 0 {
            bail!("`--max-instances` must be at least 1");
        }
        let manifest = match &self.manifest {
            Some(path) => Some(Manifest::load(path)?),
            None => None,
        };
        let telemetry = Telemetry::install(matches!(self.log_format, LogFormat::Json))?;
        // Bound before the host starts: an address in use is refused before
        // anything is written (no new data directory left behind). Nothing
        // is accepted until the host is ready.
        let public = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("binding the public listener to {}", self.listen))?;
        let admin = tokio::net::TcpListener::bind(self.admin_listen)
            .await
            .with_context(|| format!("binding the admin listener to {}", self.admin_listen))?;
        let defaults = HostConfig::default();
        let config = HostConfig {
            data_dir: self.data_dir.clone(),
            max_upload_bytes: self.max_upload,
            max_instances: self.max_instances,
            queue_timeout: self.queue_timeout,
            max_prepared: self.prepare,
            residency: wisp_host::Residency {
                max_loaded: self.max_loaded,
                max_loaded_bytes: self.max_loaded_bytes,
            },
            keep_versions: self.keep_versions,
            access_log: self.access_log,
            body_pacing: BodyPacing {
                idle: self.body_timeout,
                min_bytes_per_sec: self.min_body_rate,
            },
            max_buffered_bytes: self.max_buffered.unwrap_or(defaults.max_buffered_bytes),
            max_guest_memory_bytes: self
                .max_guest_memory
                .unwrap_or(defaults.max_guest_memory_bytes),
            compiler: Compiler::Subprocess {
                program: std::env::current_exe()
                    .context("finding the wisp binary to compile with")?,
                args: vec![super::COMPILE_WORKER_COMMAND.into()],
            },
            compile_budget: CompileBudget {
                time: self.max_compile_time,
                memory_bytes: self.max_compile_memory,
            },
            allow_root_dir: self.allow_root_dir,
            dir_roots: self.dir_roots.clone(),
            kv_limits: KvLimits {
                max_key_bytes: usize::try_from(self.max_kv_key).unwrap_or(usize::MAX),
                max_value_bytes: usize::try_from(self.max_kv_value).unwrap_or(usize::MAX),
                max_bucket_bytes: self.max_kv_bucket,
            },
            async_calls: AsyncCalls {
                workers: self.async_workers,
                retries: self.retries,
                backoff: self.retry_backoff,
                retention: self.call_retention,
                max_queued: self.max_queued_calls,
                max_queued_bytes: self.max_queued_call_bytes,
            },
            trace_context: telemetry.trace_context(),
            cluster: self.cluster.clone().map(|url| wisp_host::ClusterConfig {
                url,
                credentials: self.cluster_creds.clone(),
                token: self.cluster_token.clone(),
                tls_ca: self.cluster_tls_ca.clone(),
                tls_cert: self.cluster_tls_cert.clone(),
                tls_key: self.cluster_tls_key.clone(),
            }),
            ..defaults
        };
        let (host, problems) = Host::start(config).await?;
        if !problems.is_empty() {
            tracing::warn!(
                count = problems.len(),
                "some stored functions were not loaded; see above"
            );
        }
        if let Some(manifest) = &manifest {
            deploy_manifest(&host, manifest).await?;
        }
        let public_addr = public.local_addr()?;
        let admin_addr = admin.local_addr()?;
        // Listening for the signals before saying we are up: a SIGTERM sent as
        // soon as the addresses are printed must stop us gracefully, not kill
        // us by its default action.
        let shutdown = shutdown_signal()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "public: http://{public_addr}")?;
        writeln!(out, "admin: http://{admin_addr}")?;
        out.flush()?;
        drop(out);
        tracing::info!(%public_addr, %admin_addr, functions = host.functions().len(), "wisp is serving");

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let options = ServerOptions {
            header_read_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            write_timeout: self.write_timeout,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            ..ServerOptions::default()
        };
        // The admin API has few clients: its own small caps keep it
        // answering when the public listener is flooded.
        let admin_options = ServerOptions {
            max_connections: ADMIN_MAX_CONNECTIONS,
            max_connections_per_ip: ADMIN_MAX_CONNECTIONS,
            ..options.clone()
        };
        let public_host = host.clone();
        let public_handler: wisp_host::Handler = Arc::new(move |request| {
            let host = public_host.clone();
            Box::pin(async move { host.handle(request).await })
        });
        let admin_handler = AdminApi::new(host.clone(), self.admin_token.clone())
            .with_allowed_hosts(self.admin_hosts.clone())
            .with_allowed_origins(self.admin_origins.clone())
            .handler();
        let public_task = tokio::spawn(wisp_host::serve(
            public,
            public_handler,
            options.clone(),
            stopped.clone(),
        ));
        let admin_task = tokio::spawn(wisp_host::serve(
            admin,
            admin_handler,
            admin_options,
            stopped,
        ));
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        let _ = stop.send(true);
        let _ = tokio::join!(public_task, admin_task);
        tracing::info!("stopped");
        tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Registers for SIGINT and SIGTERM now; the future completes at the first
/// that arrives from then on.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Builds and deploys every function of `manifest` into `host`.
async fn deploy_manifest(host: &Host, manifest: &Manifest) -> anyhow::Result<()> {
    for function in &manifest.functions {
        crate::up::build(manifest, function).await?;
        let wanted = crate::up::Wanted::of(function).await?;
        if host
            .function(&function.name)
            .is_some_and(|info| wanted.is_served_by(&function.route, &info))
        {
            tracing::info!(function = %function.name, "unchanged; already deployed");
            continue;
        }
        let request = DeployRequest::new(&function.name, &function.route, wanted.wasm)
            .with_settings(function.settings.clone())
            .as_declared();
        let report = host
            .deploy(request)
            .await
            .with_context(|| format!("deploying function `{}`", function.name))?;
        tracing::info!(function = %report.name, version = report.version, route = %report.route, "deployed from manifest");
    }
    Ok(())
}
