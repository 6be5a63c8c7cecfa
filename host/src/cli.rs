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
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
    #[arg(long, env = "WISP_ADMIN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// Largest accepted upload (e.g. `200MiB`).
    #[arg(long, default_value = "200MiB", value_name = "SIZE", value_parser = parse_size_flag)]
    max_upload: u64,
    /// Instances alive at once across all functions (sizes the instance pool).
    #[arg(long, default_value_t = engine::DEFAULT_MAX_INSTANCES, value_name = "N")]
    max_instances: u32,
    /// Time a client has to send its request headers (e.g. `10s`).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration_flag)]
    header_timeout: std::time::Duration,
    /// Deploy the functions of this manifest (building them first) at start.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Log format on stderr (level from `RUST_LOG`, default `info`).
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
}

fn parse_size_flag(text: &str) -> Result<u64, String> {
    units::parse_size(text).ok_or_else(|| format!("expected {}", units::SIZE_FORMS))
}

fn parse_duration_flag(text: &str) -> Result<std::time::Duration, String> {
    units::parse_duration(text).ok_or_else(|| format!("expected {}", units::DURATION_FORMS))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

impl Serve {
    async fn execute(self) -> anyhow::Result<ExitCode> {
        if !self.admin_listen.ip().is_loopback() && self.admin_token.as_deref().is_none_or(str::is_empty) {
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
            ..HostConfig::default()
        };
        let (host, problems) = Host::start(config).await?;
        if !problems.is_empty() {
            tracing::warn!(count = problems.len(), "some stored functions were not loaded; see above");
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
        let public_task = tokio::spawn(server::serve(public, public_handler, options.clone(), stopped.clone()));
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
        if let Some(command) = &function.build {
            run_build(&manifest.dir, &function.name, command).await?;
        }
        let wasm = tokio::fs::read(&function.wasm)
            .await
            .with_context(|| format!("reading `{}` for function `{}`", function.wasm.display(), function.name))?;
        let report = host
            .deploy(&function.name, Bytes::from(wasm), function.settings.clone(), DeployOptions::default())
            .await
            .with_context(|| format!("deploying function `{}`", function.name))?;
        tracing::info!(function = %report.name, version = report.version, route = ?report.settings.route, "deployed from manifest");
    }
    Ok(())
}

/// Runs a manifest `build` command in `dir` through the shell.
pub(crate) async fn run_build(dir: &std::path::Path, function: &str, command: &str) -> anyhow::Result<()> {
    tracing::info!(function, command, "building");
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .status()
        .await
        .with_context(|| format!("running the build command of `{function}`"))?;
    if !status.success() {
        bail!("the build command of function `{function}` failed ({status}): {command}");
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
    #[arg(long, env = "WISP_ADMIN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
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
                        let host = std::path::absolute(host).unwrap_or_else(|_| PathBuf::from(host));
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
                units::format_size(report["artifact_bytes"].as_u64().unwrap_or(0)),
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
        let mut rows = vec![[
            "NAME", "ROUTE", "VERSION", "ABI", "MEMORY", "TIMEOUT", "CONCURRENCY", "FUEL",
        ]
        .map(str::to_owned)];
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
            let newest = function["versions"].as_array().and_then(|v| v.last()).cloned().unwrap_or_default();
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
        let method: http::Method = self
            .method
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid value `{}` for `--method`: expected an HTTP method", self.method))?;
        let body = match &self.data {
            Some(data) => match data.strip_prefix('@') {
                Some(file) => Bytes::from(std::fs::read(file).with_context(|| format!("reading `{file}`"))?),
                None => Bytes::from(data.clone()),
            },
            None => Bytes::new(),
        };
        let mut headers = http::HeaderMap::new();
        for header in &self.headers {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("invalid value `{header}` for `--header`: expected `Name: value`"))?;
            headers.append(
                http::HeaderName::try_from(name.trim()).with_context(|| format!("header name `{name}`"))?,
                http::HeaderValue::try_from(value.trim()).with_context(|| format!("header value `{value}`"))?,
            );
        }
        let path = if self.path.starts_with('/') { self.path.clone() } else { format!("/{}", self.path) };
        let client = self.admin.client()?;
        let response = client
            .send(method, &format!("/v1/functions/{}/invoke{path}", self.name), headers, body)
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
        Ok(if status.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}
