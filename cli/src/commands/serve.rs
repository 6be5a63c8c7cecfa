//! `wisp serve`: run a host, with the public listener and the admin API
//! beside it, until SIGINT or SIGTERM.
//!
//! Flags are validated before anything is bound; logging (the one
//! `tracing` subscriber) is installed here, not by the library.

use super::host_flags::HostArgs;
use crate::telemetry::Telemetry;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use wisp_host::{AdminApi, Compiler, DeployRequest, Host, HostConfig, ServerOptions};
use wisp_spec::manifest::{Manifest, ManifestFunction};

/// Open connections the admin listener holds at most.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Where guests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Isolation {
    /// In the host process: one wall, the wasm sandbox.
    InProcess,
    /// In jailed worker processes, one per function version: the wasm
    /// sandbox, then the OS (no_new_privs, seccomp, Landlock, rlimits; an
    /// unprivileged user when run as root).
    Process,
}

/// Whether builds may reach the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BuildNetwork {
    /// No internet sockets (an empty network namespace as root, and a
    /// seccomp filter): dependencies must be in the tree (vendored) or in
    /// the function's build cache.
    Deny,
    /// Builds may fetch dependencies (crates.io, PyPI, npm) — and reach
    /// whatever this host can reach, its cloud metadata service included.
    Allow,
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
    /// Bearer token required by the admin API (an empty one is refused).
    /// A flag or environment variable can be read through `/proc` by other
    /// processes of the same user; `--admin-token-file` keeps it out of both.
    #[arg(
        long,
        env = "WISP_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        conflicts_with = "admin_token_file"
    )]
    admin_token: Option<String>,
    /// Read the admin API's bearer token from this file (its first line),
    /// so it sits in no process's command line or environment. The file
    /// must be readable by its owner only (`chmod 600`).
    #[arg(long, value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
    /// A token that may only publish to channels (`POST /v1/publish` and
    /// Pushpin's `/publish/` on the admin listener): give it to publishers
    /// instead of the admin token.
    #[arg(
        long,
        env = "WISP_PUBLISH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    publish_token: Option<String>,
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
    /// Deploy the functions of this manifest (building them first) at start.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Where guests run: `in-process`, or `process` — each function
    /// version's guests in a worker process of their own, jailed before it
    /// maps their code, holding only that function's settings and secrets
    /// (key-value, outbound and chained calls go through this process,
    /// checked here). See the README's security model.
    #[arg(long, value_enum, default_value = "in-process")]
    isolation: Isolation,
    /// Worker processes alive at once with `--isolation process`; past it
    /// the least recently used idle one stops.
    #[arg(long, default_value_t = wisp_host::DEFAULT_MAX_WORKERS, value_name = "N")]
    max_workers: usize,
    /// How long a worker without requests lives (`--isolation process`).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = super::parse_duration_flag)]
    worker_idle: std::time::Duration,
    /// Worker processes started ahead, waiting for a function's first
    /// request (`--isolation process`).
    #[arg(long, default_value_t = wisp_host::DEFAULT_SPARE_WORKERS, value_name = "N")]
    spare_workers: usize,
    /// Build source trees sent through the admin API (`wisp deploy NAME
    /// --source DIR`), each in a jailed child process (no_new_privs,
    /// Landlock, seccomp, rlimits; as root, its own user, mount and
    /// network namespaces). The toolchains found are in `/healthz`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    builds: bool,
    /// Longest a build may take; each of its processes also gets as many
    /// CPU seconds.
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = super::parse_duration_flag)]
    build_timeout: std::time::Duration,
    /// Builds at once; the rest wait their turn (and are told so).
    #[arg(long, default_value_t = 1, value_name = "N")]
    max_builds: usize,
    /// Whether builds may reach the network to fetch dependencies.
    #[arg(long, value_enum, default_value = "deny")]
    build_network: BuildNetwork,
    /// Memory (data segment) of each build process, e.g. `4GiB`.
    #[arg(long, default_value = "4GiB", value_name = "SIZE", value_parser = parse_size_flag)]
    build_memory: u64,
    /// Disk a function's source tree and build cache may take together: a
    /// build past it is stopped, a cache past it emptied.
    #[arg(long, default_value = "8GiB", value_name = "SIZE", value_parser = parse_size_flag)]
    build_disk: u64,
    /// The branch whose pushes to a function's git remote are built and
    /// deployed (pushes to other branches are kept, not built).
    #[arg(long, default_value = "main", value_name = "BRANCH", value_parser = parse_branch_flag)]
    deploy_branch: String,
    /// Largest size of a function's git repository; a push past it is
    /// refused (413).
    #[arg(long, default_value = "256MiB", value_name = "SIZE", value_parser = parse_size_flag)]
    repo_quota: u64,
    /// Log format on stderr (level from `RUST_LOG`, default `info`).
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
    /// The host settings (`host/src/host/settings.rs`).
    #[command(flatten)]
    settings: HostArgs,
}

impl Serve {
    pub(crate) async fn execute(mut self) -> anyhow::Result<ExitCode> {
        if let Some(path) = &self.admin_token_file {
            self.admin_token = Some(read_token_file(path)?);
        }
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
        let program = std::env::current_exe().context("finding the wisp binary")?;
        let mut config = HostConfig {
            compiler: Compiler::Subprocess {
                program: program.clone(),
                args: vec![super::COMPILE_WORKER_COMMAND.into()],
            },
            workers: (self.isolation == Isolation::Process).then(|| wisp_host::WorkerOptions {
                program: program.clone(),
                args: vec![super::GUEST_WORKER_COMMAND.into()],
                max_workers: self.max_workers.max(1),
                idle: self.worker_idle,
                spares: self.spare_workers,
            }),
            builds: self.builds.then(|| wisp_host::BuildOptions {
                program,
                args: vec![super::BUILD_CHILD_COMMAND.into()],
                timeout: self.build_timeout,
                max_builds: self.max_builds.max(1),
                network: self.build_network == BuildNetwork::Allow,
                memory: self.build_memory,
                max_source: wisp_host::DEFAULT_MAX_SOURCE,
                max_output: 0,
                deploy_branch: self.deploy_branch.clone(),
                repo_quota: self.repo_quota,
                disk: self.build_disk,
                public_port: public.local_addr().ok().map(|a| a.port()),
            }),
            trace_context: telemetry.trace_context(),
            cluster: self.cluster.clone().map(|url| wisp_host::ClusterConfig {
                url,
                credentials: self.cluster_creds.clone(),
                token: self.cluster_token.clone(),
                tls_ca: self.cluster_tls_ca.clone(),
                tls_cert: self.cluster_tls_cert.clone(),
                tls_key: self.cluster_tls_key.clone(),
            }),
            ..HostConfig::default()
        };
        let mut options = ServerOptions::default();
        self.settings.apply(&mut config, &mut options)?;
        if let Some(builds) = &mut config.builds {
            builds.max_output = config.max_upload;
        }
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
            .with_publish_token(self.publish_token.clone().filter(|t| !t.is_empty()))
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
        // Held WebSockets have no request to finish: they are told the
        // host is going away (1001), alongside the drain.
        let grace = options.shutdown_grace;
        let _ = tokio::join!(public_task, admin_task, host.close_websockets(grace));
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

/// Builds and deploys every function of `manifest` into `host`, with the
/// secrets it gives (a `spin.toml`'s secret variables), as `wisp up` does.
async fn deploy_manifest(host: &Host, manifest: &Manifest) -> anyhow::Result<()> {
    for function in &manifest.functions {
        crate::up::build(manifest, function).await?;
        let wanted = crate::up::Wanted::of(function).await?;
        let existing = host.function(&function.name);
        // An existing function gets its secrets before its new code serves;
        // a new one once it exists.
        let is_new = existing.is_none();
        if !is_new {
            set_secrets(host, function).await?;
        }
        if existing.is_some_and(|info| wanted.is_served_by(&function.route, &info)) {
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
        if is_new {
            set_secrets(host, function).await?;
        }
    }
    Ok(())
}

/// Sets the secrets `manifest` gives `function`.
async fn set_secrets(host: &Host, function: &ManifestFunction) -> anyhow::Result<()> {
    for (secret, value) in &function.secrets {
        host.set_secret(&function.name, secret, value.clone().into_bytes())
            .await
            .with_context(|| {
                format!("setting secret `{secret}` of function `{}`", function.name)
            })?;
    }
    Ok(())
}

/// The admin token in `path`: its first line, from a file only its owner
/// may read (a token others can read is no secret).
fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("reading `--admin-token-file` `{shown}`"))?;
    if !metadata.is_file() {
        bail!("`--admin-token-file` `{shown}` is not a file");
    }
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "`--admin-token-file` `{shown}` may be read by others (mode {:o}); make it the owner's alone: chmod 600 {shown}",
            mode & 0o777
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading `--admin-token-file` `{shown}`"))?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        bail!("`--admin-token-file` `{shown}` holds no token (its first line is empty)");
    }
    Ok(token.to_owned())
}

/// `--build-memory`: a size such as `4GiB`.
fn parse_size_flag(text: &str) -> Result<u64, String> {
    wisp_spec::units::parse_size(text)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{text}` is not a size such as `4GiB` or `512MiB`"))
}

/// `--deploy-branch`: a branch name git accepts (letters, digits, `-`,
/// `_`, `.`, `/`; no `..`, no leading `-` or `/`).
fn parse_branch_flag(text: &str) -> Result<String, String> {
    let good = !text.is_empty()
        && !text.starts_with(['-', '/', '.'])
        && !text.ends_with(['/', '.'])
        && !text.contains("..")
        && !text.contains("//")
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if good {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a branch name such as `main` or `release/prod`"
        ))
    }
}
