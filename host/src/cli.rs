//! The `wisp` command line: one struct per command, each with `execute`.
//!
//! `serve` runs a host; the other verbs are clients of a running host's admin
//! API. Flags are validated before anything is bound or sent, and a bad value
//! names the flag and the accepted form.

use crate::client::{AdminClient, DEFAULT_ADMIN_URL};
use crate::host::{Host, HostConfig};
use crate::manifest::Manifest;
use crate::server::{self, ServerOptions};
use crate::settings::{EnvSpec, RawSettings, Scalar};
use crate::units;
use crate::{DeployOptions, engine};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// wisp — a WebAssembly function host.
///
/// Upload `.wasm` functions; wisp compiles each one ahead of time and serves
/// every HTTP request from a fresh, isolated sandbox.
#[derive(Debug, Parser)]
#[command(name = "wisp", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a host: serve functions over HTTP, with the admin API beside it.
    Serve(Serve),
    /// Deploy a `.wasm` file as a function (a new version if it exists).
    Deploy(Deploy),
    /// List deployed functions and their effective settings.
    #[command(alias = "list")]
    Ls(Ls),
    /// Remove a function.
    #[command(alias = "remove")]
    Rm(Rm),
    /// Send one request to a function and print the response.
    Invoke(Invoke),
    /// Deploy the functions of a manifest (`wisp.toml`) that changed.
    Up(Up),
    /// List a function's versions.
    Versions(Versions),
    /// Split a function's traffic between versions: `wisp traffic NAME v3=90 v4=10`.
    Traffic(Traffic),
    /// Move a function's traffic back to its previous split.
    Rollback(Rollback),
    /// Print a function's guest logs.
    Logs(Logs),
    /// Show a function's cumulative usage.
    Usage(UsageCommand),
    /// Measure a module's cold start and throughput on this machine.
    Bench(BenchCommand),
    /// Create a new function from a template: `wisp new hello --lang rust`.
    New(New),
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(c) => c.execute().await,
            Command::Deploy(c) => c.execute().await,
            Command::Ls(c) => c.execute().await,
            Command::Rm(c) => c.execute().await,
            Command::Invoke(c) => c.execute().await,
            Command::Up(c) => c.execute().await,
            Command::Versions(c) => c.execute().await,
            Command::Traffic(c) => c.execute().await,
            Command::Rollback(c) => c.execute().await,
            Command::Logs(c) => c.execute().await,
            Command::Usage(c) => c.execute().await,
            Command::Bench(c) => c.execute().await,
            Command::New(c) => c.execute(),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
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
struct Serve {
    /// Address for public HTTP traffic to functions (HTTP/1.1 and HTTP/2).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Address for the admin API. Beyond loopback it requires `--admin-token`.
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR")]
    admin_listen: SocketAddr,
    /// Directory for compiled artifacts and deploy records.
    #[arg(long, default_value = "wisp-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Bearer token required by the admin API.
    #[arg(
        long,
        env = "WISP_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    admin_token: Option<String>,
    /// Largest accepted upload (e.g. `200MiB`).
    #[arg(long, default_value = "200MiB", value_name = "SIZE", value_parser = parse_size_flag)]
    max_upload: u64,
    /// Instances alive at once across all functions (sizes the instance pool).
    #[arg(long, default_value_t = engine::DEFAULT_MAX_INSTANCES, value_name = "N")]
    max_instances: u32,
    /// Versions kept per function: the newest N, plus any that holds traffic
    /// or is the rollback target; older ones are garbage-collected.
    #[arg(long, default_value_t = crate::host::DEFAULT_KEEP_VERSIONS, value_name = "N", value_parser = parse_keep_versions)]
    keep_versions: usize,
    /// Time a client has to send its request headers (e.g. `10s`).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration_flag)]
    header_timeout: std::time::Duration,
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

fn parse_size_flag(text: &str) -> Result<u64, String> {
    units::parse_size(text).ok_or_else(|| format!("expected {}", units::SIZE_FORMS))
}

/// `--method`: an HTTP method.
fn method_flag(text: &str) -> anyhow::Result<http::Method> {
    text.parse().map_err(|_| {
        anyhow::anyhow!("invalid value `{text}` for `--method`: expected an HTTP method")
    })
}

/// A request body flag: the text itself, or `@FILE` for a file's contents.
fn body_flag(data: Option<&str>) -> anyhow::Result<Bytes> {
    Ok(match data {
        Some(data) => match data.strip_prefix('@') {
            Some(file) => {
                Bytes::from(std::fs::read(file).with_context(|| format!("reading `{file}`"))?)
            }
            None => Bytes::copy_from_slice(data.as_bytes()),
        },
        None => Bytes::new(),
    })
}

fn parse_keep_versions(text: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number, at least 1".to_owned()),
    }
}

fn parse_duration_flag(text: &str) -> Result<std::time::Duration, String> {
    units::parse_duration(text).ok_or_else(|| format!("expected {}", units::DURATION_FORMS))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

impl Serve {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        if !self.admin_listen.ip().is_loopback()
            && self.admin_token.as_deref().is_none_or(str::is_empty)
        {
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
        init_logging(self.log_format);
        let config = HostConfig {
            data_dir: self.data_dir.clone(),
            max_upload_bytes: self.max_upload,
            max_instances: self.max_instances,
            keep_versions: self.keep_versions,
            access_log: self.access_log,
            ..HostConfig::default()
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
        let public = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("binding the public listener to {}", self.listen))?;
        let admin = tokio::net::TcpListener::bind(self.admin_listen)
            .await
            .with_context(|| format!("binding the admin listener to {}", self.admin_listen))?;
        let public_addr = public.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "public: http://{public_addr}")?;
        writeln!(out, "admin: http://{admin_addr}")?;
        out.flush()?;
        drop(out);
        tracing::info!(%public_addr, %admin_addr, functions = host.functions().len(), "wisp is serving");

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let options = ServerOptions {
            header_read_timeout: self.header_timeout,
            ..ServerOptions::default()
        };
        let public_host = host.clone();
        let public_handler: server::Handler = Arc::new(move |request| {
            let host = public_host.clone();
            Box::pin(async move { host.handle(request).await })
        });
        let admin_handler = crate::admin::handler(host.clone(), self.admin_token.clone());
        let public_task = tokio::spawn(server::serve(
            public,
            public_handler,
            options.clone(),
            stopped.clone(),
        ));
        let admin_task = tokio::spawn(server::serve(admin, admin_handler, options, stopped));
        wait_for_shutdown_signal().await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        let _ = stop.send(true);
        let _ = tokio::join!(public_task, admin_task);
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    }
}

async fn wait_for_shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Builds and deploys every function of `manifest` into `host`.
async fn deploy_manifest(host: &Host, manifest: &Manifest) -> anyhow::Result<()> {
    for function in &manifest.functions {
        crate::up::build(manifest, function).await?;
        let wanted = crate::up::Wanted::of(function).await?;
        if host
            .function(&function.name)
            .is_some_and(|info| wanted.is_served_by(&info))
        {
            tracing::info!(function = %function.name, "unchanged; already deployed");
            continue;
        }
        let report = host
            .deploy(
                &function.name,
                wanted.wasm,
                function.settings.clone(),
                DeployOptions::default(),
            )
            .await
            .with_context(|| format!("deploying function `{}`", function.name))?;
        tracing::info!(function = %report.name, version = report.version, route = ?report.settings.route, "deployed from manifest");
    }
    Ok(())
}

/// Where the admin API is, and its token.
#[derive(Debug, Args)]
struct AdminArgs {
    /// Admin API URL of the host to talk to.
    #[arg(long, env = "WISP_ADMIN_URL", default_value = DEFAULT_ADMIN_URL, value_name = "URL")]
    admin: String,
    /// Admin API bearer token.
    #[arg(
        long,
        env = "WISP_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
}

impl AdminArgs {
    fn client(&self) -> anyhow::Result<AdminClient> {
        Ok(AdminClient::new(&self.admin, self.token.clone())?)
    }
}

/// Every per-function setting, as flags.
#[derive(Debug, Args)]
struct SettingsArgs {
    /// Path prefix the function serves, e.g. `/hello`.
    #[arg(long, value_name = "PREFIX")]
    route: String,
    /// Wall-clock deadline per request, e.g. `2s` (default 30s).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Linear memory cap, e.g. `64MiB` (default 128MiB).
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,
    /// Requests served at once (default 256).
    #[arg(long, value_name = "N")]
    max_concurrency: Option<String>,
    /// Request body cap, e.g. `10MiB` (default 100MiB).
    #[arg(long, value_name = "SIZE")]
    max_request_body: Option<String>,
    /// Response body cap, e.g. `10MiB` (default 100MiB).
    #[arg(long, value_name = "SIZE")]
    max_response_body: Option<String>,
    /// Instruction budget per request; turns on metering.
    #[arg(long, value_name = "N")]
    fuel: Option<String>,
    /// Environment variable for the guest (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read-only directory for the guest (repeatable).
    #[arg(long, value_name = "HOST_DIR:GUEST_DIR")]
    dir: Vec<String>,
    /// Outbound HTTP origin the guest may call (repeatable).
    #[arg(long, value_name = "URL")]
    allow_outbound: Vec<String>,
}

impl SettingsArgs {
    /// The raw settings, checked here so a bad flag is reported before
    /// anything is sent. Host directories are made absolute.
    fn to_raw(&self) -> anyhow::Result<RawSettings> {
        let text = |v: &Option<String>| v.clone().map(Scalar::Text);
        let raw = RawSettings {
            route: Some(self.route.clone()),
            timeout: text(&self.timeout),
            memory: text(&self.memory),
            max_concurrency: text(&self.max_concurrency),
            max_request_body: text(&self.max_request_body),
            max_response_body: text(&self.max_response_body),
            fuel: text(&self.fuel),
            env: EnvSpec::List(self.env.clone()),
            dir: self
                .dir
                .iter()
                .map(|d| match d.rsplit_once(':') {
                    Some((host, guest)) => {
                        let host =
                            std::path::absolute(host).unwrap_or_else(|_| PathBuf::from(host));
                        format!("{}:{guest}", host.display())
                    }
                    None => d.clone(),
                })
                .collect(),
            allow_outbound: self.allow_outbound.clone(),
        };
        if let Err(e) = raw.check() {
            bail!("{}", e.as_flag_message());
        }
        Ok(raw)
    }
}

#[derive(Debug, Args)]
struct Deploy {
    /// Function name: lowercase letters, digits, `-` and `_`.
    name: String,
    /// The `.wasm` file: a `wasi:http` component or a WASI command module.
    file: PathBuf,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Deploy without giving the new version traffic (try it with the
    /// `x-wisp-version` header first).
    #[arg(long)]
    no_traffic: bool,
    /// Print the deploy report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Deploy {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        let raw = self.settings.to_raw()?;
        let wasm = tokio::fs::read(&self.file)
            .await
            .with_context(|| format!("reading `{}`", self.file.display()))?;
        let report = self
            .admin
            .client()?
            .deploy(&self.name, Bytes::from(wasm), &raw, !self.no_traffic)
            .await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            let compiled = match report["compile_ms"].as_u64() {
                Some(ms) => format!("compiled in {ms} ms"),
                None => "artifact reused".to_owned(),
            };
            println!(
                "deployed {} v{} ({}) at {} — {compiled}, {}",
                report["name"].as_str().unwrap_or(&self.name),
                report["version"],
                report["abi"].as_str().unwrap_or("?"),
                report["settings"]["route"].as_str().unwrap_or("?"),
                units::format_size_approx(report["artifact_bytes"].as_u64().unwrap_or(0)),
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
struct Ls {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Ls {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        let functions = self.admin.client()?.list().await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&functions)?);
            return Ok(ExitCode::SUCCESS);
        }
        let mut rows = vec![
            [
                "NAME",
                "ROUTE",
                "VERSION",
                "ABI",
                "MEMORY",
                "TIMEOUT",
                "CONCURRENCY",
                "FUEL",
            ]
            .map(str::to_owned),
        ];
        for function in functions.as_array().into_iter().flatten() {
            let serving: Vec<String> = function["traffic"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    if s["weight"] == 100 {
                        format!("v{}", s["version"])
                    } else {
                        format!("v{}={}%", s["version"], s["weight"])
                    }
                })
                .collect();
            let newest = function["versions"]
                .as_array()
                .and_then(|v| v.last())
                .cloned()
                .unwrap_or_default();
            let setting = |key: &str| match &newest["settings"][key] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".to_owned(),
                other => other.to_string(),
            };
            rows.push([
                function["name"].as_str().unwrap_or("?").to_owned(),
                function["route"].as_str().unwrap_or("?").to_owned(),
                serving.join(","),
                newest["abi"].as_str().unwrap_or("?").to_owned(),
                setting("memory"),
                setting("timeout"),
                setting("max-concurrency"),
                setting("fuel"),
            ]);
        }
        print_table(&rows);
        Ok(ExitCode::SUCCESS)
    }
}

/// Prints rows as left-aligned columns.
fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

#[derive(Debug, Args)]
struct Rm {
    /// The function to remove.
    name: String,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Rm {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        self.admin.client()?.remove(&self.name).await?;
        println!("removed {}", self.name);
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
struct Invoke {
    /// The function to run.
    name: String,
    /// The request path (and query) the function sees.
    #[arg(default_value = "/")]
    path: String,
    /// HTTP method.
    #[arg(short = 'X', long, default_value = "GET")]
    method: String,
    /// Request body (`@FILE` reads a file).
    #[arg(short = 'd', long)]
    data: Option<String>,
    /// Request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Print the status line and response headers too.
    #[arg(short = 'i', long)]
    include: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Invoke {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        let method = method_flag(&self.method)?;
        let body = body_flag(self.data.as_deref())?;
        let mut headers = http::HeaderMap::new();
        for header in &self.headers {
            let (name, value) = header.split_once(':').ok_or_else(|| {
                anyhow::anyhow!("invalid value `{header}` for `--header`: expected `Name: value`")
            })?;
            headers.append(
                http::HeaderName::try_from(name.trim())
                    .with_context(|| format!("header name `{name}`"))?,
                http::HeaderValue::try_from(value.trim())
                    .with_context(|| format!("header value `{value}`"))?,
            );
        }
        let path = if self.path.starts_with('/') {
            self.path.clone()
        } else {
            format!("/{}", self.path)
        };
        let client = self.admin.client()?;
        let response = client
            .send(
                method,
                &format!("/v1/functions/{}/invoke{path}", self.name),
                headers,
                body,
            )
            .await?;
        let status = response.status();
        let mut out = std::io::stdout().lock();
        if self.include {
            writeln!(out, "{:?} {}", response.version(), status)?;
            for (name, value) in response.headers() {
                writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()))?;
            }
            writeln!(out)?;
        }
        out.write_all(response.body())?;
        out.flush()?;
        Ok(if status.is_success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

#[derive(Debug, Args)]
struct Up {
    /// The manifest.
    #[arg(short = 'f', long = "file", default_value = crate::manifest::DEFAULT_MANIFEST, value_name = "FILE")]
    file: PathBuf,
    /// Remove deployed functions the manifest does not list.
    #[arg(long)]
    prune: bool,
    /// Keep running: rebuild and redeploy functions when their files change.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Up {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        let client = self.admin.client()?;
        if self.watch {
            crate::up::watch(&client, &self.file, self.prune).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let manifest = Manifest::load(&self.file)?;
        let changes = crate::up::up(&client, &manifest, self.prune).await?;
        crate::up::print_changes(&changes);
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
struct Versions {
    /// The function.
    name: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Versions {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        let info: crate::deploy::FunctionInfo =
            serde_json::from_value(self.admin.client()?.get(&self.name).await?)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&info.versions)?);
            return Ok(ExitCode::SUCCESS);
        }
        let mut rows =
            vec![["VERSION", "TRAFFIC", "ABI", "CREATED", "SOURCE", "SETTINGS"].map(str::to_owned)];
        for v in &info.versions {
            let mut settings = v.settings.clone();
            settings.route = None;
            rows.push([
                format!("v{}", v.number),
                format!("{}%", v.weight),
                v.abi.as_str().to_owned(),
                format_unix_time(v.created_unix),
                v.source.chars().take(12).collect(),
                if v.loaded {
                    settings.to_query().replace('&', " ")
                } else {
                    "(not loaded)".to_owned()
                },
            ]);
        }
        print_table(&rows);
        Ok(ExitCode::SUCCESS)
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for seconds since the Unix epoch.
fn format_unix_time(secs: u64) -> String {
    let days = secs / 86_400;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}")
}

#[derive(Debug, Args)]
struct Traffic {
    /// The function.
    name: String,
    /// Shares as `VERSION=WEIGHT` (e.g. `v3=90 v4=10`); weights sum to 100.
    #[arg(required = true, value_name = "vN=WEIGHT")]
    split: Vec<String>,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Traffic {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        let shares =
            crate::traffic::parse_split(&self.split).map_err(|e| anyhow::anyhow!("{e}"))?;
        let info = self
            .admin
            .client()?
            .set_traffic(&self.name, &shares)
            .await?;
        println!("{}: {}", self.name, describe_traffic(&info));
        Ok(ExitCode::SUCCESS)
    }
}

fn describe_traffic(info: &serde_json::Value) -> String {
    info["traffic"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("v{}={}%", s["version"], s["weight"]))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Args)]
struct Rollback {
    /// The function.
    name: String,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Rollback {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        let info = self.admin.client()?.rollback(&self.name).await?;
        println!("{}: rolled back to {}", self.name, describe_traffic(&info));
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
struct Logs {
    /// The function.
    name: String,
    /// Keep printing new lines as they come.
    #[arg(short, long)]
    follow: bool,
    /// Only lines newer than this (e.g. `5m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    since: Option<std::time::Duration>,
    /// Print at most this many of the stored lines.
    #[arg(short = 'n', long, default_value_t = 1000)]
    limit: usize,
    /// Print raw JSON lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Logs {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        use http_body_util::BodyExt;
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("limit", &self.limit.to_string());
        if let Some(since) = self.since {
            query.append_pair("since", &units::format_duration(since));
        }
        if self.follow {
            query.append_pair("follow", "true");
        }
        let mut body = self
            .admin
            .client()?
            .logs(&self.name, &query.finish())
            .await?;
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                self.print_line(&line[..line.len() - 1])?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    fn print_line(&self, raw: &[u8]) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json {
            out.write_all(raw)?;
            writeln!(out)?;
            return Ok(out.flush()?);
        }
        let line: serde_json::Value = serde_json::from_slice(raw)?;
        if let Some(dropped) = line.get("dropped") {
            writeln!(
                out,
                "({dropped} older lines were dropped to stay within the log bound)"
            )?;
        } else if let Some(skipped) = line.get("skipped") {
            writeln!(out, "({skipped} lines skipped: this reader fell behind)")?;
        } else {
            let time = line["time_unix_ms"].as_u64().unwrap_or(0);
            writeln!(
                out,
                "{}.{:03} v{} {} {}: {}",
                format_unix_time(time / 1000),
                time % 1000,
                line["version"],
                line["request_id"].as_str().unwrap_or(""),
                line["stream"].as_str().unwrap_or(""),
                line["text"].as_str().unwrap_or(""),
            )?;
        }
        Ok(out.flush()?)
    }
}

#[derive(Debug, Args)]
struct UsageCommand {
    /// The function.
    name: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl UsageCommand {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        let reply = self.admin.client()?.usage(&self.name).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&reply)?);
            return Ok(ExitCode::SUCCESS);
        }
        let u = &reply["usage"];
        println!("function           {}", self.name);
        println!("requests           {}", u["requests"]);
        println!(
            "wall time          {:.6} s",
            u["wall_seconds"].as_f64().unwrap_or(0.0)
        );
        println!(
            "cpu time           {:.6} s",
            u["cpu_seconds"].as_f64().unwrap_or(0.0)
        );
        println!("fuel               {}", u["fuel"]);
        println!(
            "memory-time        {:.9} GB·s",
            u["memory_gb_seconds"].as_f64().unwrap_or(0.0)
        );
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
struct BenchCommand {
    /// The module: a `wasi:http` component or a CGI command module.
    file: PathBuf,
    /// Cold starts to time (and instantiations alone).
    #[arg(short = 'n', long, default_value_t = 10_000)]
    samples: usize,
    /// Requests in flight at once for the throughput run.
    #[arg(short = 'c', long, default_value_t = 1)]
    concurrency: usize,
    /// Length of the throughput run (e.g. `5s`).
    #[arg(long, default_value = "5s", value_parser = parse_duration_flag)]
    duration: std::time::Duration,
    /// Request path (and query).
    #[arg(long, default_value = "/")]
    path: String,
    /// Request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request body (`@FILE` reads a file).
    #[arg(long)]
    body: Option<String>,
    /// Sandboxes held alive at once to measure memory per sandbox.
    #[arg(long, default_value_t = 100)]
    memory_probe: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl BenchCommand {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        let method = method_flag(&self.method)?;
        if !self.path.starts_with('/') {
            bail!(
                "invalid value `{}` for `--path`: expected a path starting with `/`",
                self.path
            );
        }
        if self.samples == 0 {
            bail!("invalid value `0` for `-n`: expected at least 1 sample");
        }
        let body = body_flag(self.body.as_deref())?;
        let wasm = tokio::fs::read(&self.file)
            .await
            .with_context(|| format!("reading `{}`", self.file.display()))?;
        let options = crate::bench::BenchOptions {
            samples: self.samples,
            concurrency: self.concurrency.max(1),
            duration: self.duration,
            method,
            path: self.path,
            body,
            memory_probe: self.memory_probe,
        };
        let report = crate::bench::run(Bytes::from(wasm), &options).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.table());
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
struct New {
    /// The function's name (also its directory).
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum, default_value = "rust")]
    lang: crate::template::Language,
    /// Where to create the directory.
    #[arg(long, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
}

impl New {
    fn execute(self) -> anyhow::Result<ExitCode> {
        let dir = crate::template::scaffold(&self.name, self.lang, &self.dir)?;
        let name = &self.name;
        println!("created {} ({} function)", dir.display(), self.lang);
        println!("next:");
        if self.lang == crate::template::Language::Js {
            println!("  (cd {} && npm install)", dir.display());
        }
        println!("  {}/build.sh", dir.display());
        println!(
            "  wisp deploy {name} {}/{name}.wasm --route /{name}",
            dir.display()
        );
        println!("  curl http://127.0.0.1:8080/{name}");
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_format_as_utc_dates() {
        assert_eq!(format_unix_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_unix_time(1_795_000_000), "2026-11-18 11:06:40");
        assert_eq!(format_unix_time(951_782_400), "2000-02-29 00:00:00");
    }
}
