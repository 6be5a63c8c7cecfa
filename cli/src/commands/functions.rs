//! The verbs on functions: deploy, push, list, remove, invoke, versions, traffic,
//! rollback and retire. Each is a client of the admin API and reads its
//! typed answers.

use super::settings_flags::SettingsArgs;
use super::{AdminArgs, Globals, body_flag, method_flag};
use crate::client::DeployHow;
use crate::{oci, output};
use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use wisp_spec::api::FunctionInfo;
use wisp_spec::units;

#[derive(Debug, Args)]
pub(crate) struct Deploy {
    /// Function name: lowercase letters, digits, `-` and `_`.
    name: String,
    /// The `.wasm` file (a `wasi:http` component or a WASI command module),
    /// or an OCI artifact: `oci://REGISTRY/REPO:TAG` or `…@sha256:DIGEST`,
    /// whose digest the version records.
    #[arg(required_unless_present = "source")]
    file: Option<PathBuf>,
    /// Build this source tree on the host instead (Rust, C, Python or
    /// JavaScript, told from its files, or its `wisp.toml`'s `build` and
    /// `wasm`), and deploy the result; the build's output streams here. The
    /// tree is sent without `.git/` and `target/`.
    #[arg(long, value_name = "DIR", conflicts_with = "file")]
    source: Option<PathBuf>,
    /// Let `oci://` pulls use plain HTTP (a registry without TLS, on a
    /// network you trust). Without it, registries are spoken to over HTTPS.
    #[arg(long)]
    insecure_registry: bool,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Deploy without giving the new version traffic (try it with the
    /// `x-wisp-version` header first). Nothing that serves changes: with a
    /// new `--route`, the deploy is refused unless `--move-route` is given.
    #[arg(long)]
    no_traffic: bool,
    /// Start from the default settings. Without it, a new version keeps
    /// the previous version's settings except those given here (the
    /// output says which were kept).
    #[arg(long)]
    reset_settings: bool,
    /// Move the function to the `--route` given: every version, live
    /// traffic included. Without it, a `--route` other than the function's
    /// is refused.
    #[arg(long)]
    move_route: bool,
    /// Print the deploy report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Deploy {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let raw = self.settings.to_raw()?;
        let how = DeployHow {
            route: self.settings.route.as_deref(),
            take_traffic: !self.no_traffic,
            reset_settings: self.reset_settings,
            move_route: self.move_route,
            origin: None,
        };
        let file = match (&self.source, &self.file) {
            (Some(dir), _) => {
                let archive = crate::source::archive(dir)?;
                let outcome = self
                    .admin
                    .client(globals)?
                    .build(&self.name, archive, &raw, &how, |line| eprintln!("{line}"))
                    .await?;
                match outcome {
                    crate::client::BuildOutcome::Deployed(report) => {
                        self.report(globals, &report, None)?;
                    }
                    crate::client::BuildOutcome::Unchanged { version, route } => {
                        println!("{} v{version} already serves this at {route}", self.name);
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            (None, Some(file)) => file,
            (None, None) => {
                anyhow::bail!("give a `.wasm` file, an `oci://` reference or `--source DIR`")
            }
        };
        let (wasm, origin) = match file.to_str().filter(|f| f.starts_with(oci::SCHEME)) {
            Some(text) => {
                let reference = oci::reference(text)?;
                let pulling = output::spinner(format!("pulling {reference}"));
                let pulled = oci::pull(&reference, self.insecure_registry).await;
                pulling.finish_and_clear();
                let (wasm, digest) = pulled?;
                (wasm, Some(oci::origin(&reference, &digest)))
            }
            None => {
                let wasm = tokio::fs::read(file)
                    .await
                    .with_context(|| format!("reading `{}`", file.display()))?;
                (wasm, None)
            }
        };
        let progress = output::spinner(format!("deploying {} (compiling)", self.name));
        let report = self
            .admin
            .client(globals)?
            .deploy(
                &self.name,
                Bytes::from(wasm),
                &raw,
                &DeployHow {
                    origin: origin.as_deref(),
                    ..how
                },
            )
            .await;
        progress.finish_and_clear();
        self.report(globals, &report?, origin.as_deref())?;
        Ok(ExitCode::SUCCESS)
    }

    /// Prints what a deploy did.
    fn report(
        &self,
        globals: &Globals,
        report: &wisp_spec::api::DeployReport,
        origin: Option<&str>,
    ) -> anyhow::Result<()> {
        if globals.json(self.json) {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            let compiled = match report.compile_ms {
                Some(ms) => format!("compiled in {ms} ms"),
                None => "artifact reused".to_owned(),
            };
            println!(
                "deployed {} v{} ({}) at {} — {compiled}, {}",
                report.name,
                report.version,
                report.abi.as_str(),
                report.route,
                units::format_size_approx(report.artifact_bytes),
            );
            if let Some(origin) = origin {
                println!("from {origin}");
            }
            for user in &report.recomposed {
                println!(
                    "composed again: {user} (it has {} as middleware)",
                    report.name
                );
            }
            if let Some(from) = &report.moved_from {
                println!(
                    "moved from {from} to {}: every version serves there now",
                    report.route
                );
            }
            if let Some(kept_from) = report.kept_from {
                if report.kept_settings.is_empty() {
                    println!("settings kept from v{kept_from}: none but the defaults");
                } else {
                    println!(
                        "settings kept from v{kept_from}: {} (`--reset-settings` starts from the defaults)",
                        report.kept_settings.join(", ")
                    );
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
pub(crate) struct Push {
    /// The deployed function whose `.wasm` to publish.
    name: String,
    /// Where: `REGISTRY/REPO:TAG` (`oci://` in front is allowed).
    reference: String,
    /// The version to publish, e.g. `v3` (default: the one with most
    /// traffic).
    #[arg(long, value_name = "VERSION", value_parser = parse_version_flag)]
    pin: Option<u32>,
    /// Speak plain HTTP to the registry (no TLS, on a network you trust).
    #[arg(long)]
    insecure_registry: bool,
    /// Print what was pushed as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Push {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let reference = oci::reference(&self.reference)?;
        let (version, wasm) = self
            .admin
            .client(globals)?
            .source(&self.name, self.pin)
            .await?;
        let progress = output::spinner(format!("pushing {} v{version} to {reference}", self.name));
        let pushed = oci::push(&reference, wasm.to_vec(), self.insecure_registry).await;
        progress.finish_and_clear();
        let digest = pushed?;
        if globals.json(self.json) {
            let pushed = serde_json::json!({
                "function": self.name,
                "version": version,
                "reference": reference.to_string(),
                "digest": digest,
            });
            println!("{}", serde_json::to_string_pretty(&pushed)?);
        } else {
            println!("pushed {} v{version} to {reference}", self.name);
            println!("digest {digest}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn parse_version_flag(text: &str) -> Result<u32, String> {
    wisp_spec::traffic::parse_version(text)
        .ok_or_else(|| format!("`{text}` is not a version number: expected e.g. `v3` or `3`"))
}

#[derive(Debug, Args)]
pub(crate) struct Ls {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, Args)]
pub(crate) struct Workers {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Workers {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let workers = self.admin.client(globals)?.workers().await?;
        if globals.json(self.json) {
            println!("{}", serde_json::to_string_pretty(&workers)?);
            return Ok(ExitCode::SUCCESS);
        }
        if workers.is_empty() {
            println!(
                "no guest workers: the host runs guests in-process, or none has had a request lately (`wisp serve --isolation process`)"
            );
            return Ok(ExitCode::SUCCESS);
        }
        let rows = workers.iter().map(|w| {
            vec![
                w.function.clone(),
                w.version.to_string(),
                w.pid.to_string(),
                w.calls_in_flight.to_string(),
                format!("{}s", w.idle_seconds),
            ]
        });
        let header = ["FUNCTION", "VERSION", "PID", "IN FLIGHT", "IDLE"];
        println!("{}", output::table(&header, rows));
        Ok(ExitCode::SUCCESS)
    }
}

impl Ls {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let client = self.admin.client(globals)?;
        let functions = client.list().await?;
        if globals.json(self.json) {
            println!("{}", serde_json::to_string_pretty(&functions)?);
            return Ok(ExitCode::SUCCESS);
        }
        // What the host can build from source, under whatever is listed.
        let builders = client
            .health()
            .await
            .map(|h| h.builders)
            .unwrap_or_default();
        let say_builders = || {
            let (can, cannot): (Vec<_>, Vec<_>) = builders.iter().partition(|b| b.available);
            if !can.is_empty() {
                let names: Vec<&str> = can.iter().map(|b| b.language.as_str()).collect();
                println!(
                    "builds from source (`wisp deploy NAME --source DIR`, `git push`): {}",
                    names.join(", ")
                );
            }
            for builder in cannot {
                println!("cannot build {}: {}", builder.language, builder.detail);
            }
        };
        if functions.is_empty() {
            println!(
                "no functions yet — deploy one with `wisp deploy NAME FILE.wasm --route /PATH` (or `wisp new NAME` to start one)"
            );
            say_builders();
            return Ok(ExitCode::SUCCESS);
        }
        let rows = functions.iter().map(|function| {
            let newest = function.versions.last();
            let setting = |key: &str| {
                newest
                    .and_then(|v| v.settings.get(key).first().cloned())
                    .unwrap_or_else(|| "-".to_owned())
            };
            vec![
                function.name.clone(),
                function.route.clone(),
                serving(function),
                if function.unavailable.is_some() {
                    "unavailable".to_owned()
                } else {
                    "serving".to_owned()
                },
                newest.map_or("?", |v| v.abi.as_str()).to_owned(),
                setting("memory"),
                setting("timeout"),
                setting("max-concurrency"),
                setting("fuel"),
            ]
        });
        let header = [
            "NAME",
            "ROUTE",
            "VERSION",
            "STATUS",
            "ABI",
            "MEMORY",
            "TIMEOUT",
            "CONCURRENCY",
            "FUEL",
        ];
        println!("{}", output::table(&header, rows));
        // Reasons and schedules are sentences: under the table.
        for function in &functions {
            if let Some(reason) = &function.unavailable {
                println!("{} is unavailable: {reason}", function.name);
            }
            if let Some(settings) = function.versions.last().map(|v| &v.settings)
                && let Some(requests) = settings.get("reuse").first()
            {
                let first = |key: &str, default: &str| {
                    settings
                        .get(key)
                        .first()
                        .cloned()
                        .unwrap_or_else(|| default.to_owned())
                };
                println!(
                    "{} reuses each instance for up to {requests} requests ({} at once, dropped after {} idle): its memory survives between them",
                    function.name,
                    first("reuse-concurrency", "1"),
                    first("reuse-idle", "1s"),
                );
            }
            for schedule in &function.schedules {
                let next = schedule
                    .next_run_unix
                    .map_or_else(|| "never".to_owned(), output::unix_time);
                println!(
                    "{} runs on cron `{}` (POST {}), next at {next}",
                    function.name, schedule.schedule, schedule.target
                );
            }
        }
        say_builders();
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
pub(crate) struct Rm {
    /// The function to remove.
    name: String,
    /// Print what was removed as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Rm {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let removed = self.admin.client(globals)?.remove(&self.name).await?;
        if globals.json(self.json) {
            println!("{}", serde_json::to_string_pretty(&removed)?);
        } else {
            println!(
                "removed {}, with its key-value bucket ({}), its secrets and its logs",
                removed.removed,
                wisp_spec::units::format_size_approx(removed.bucket_bytes)
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
pub(crate) struct Invoke {
    /// The function to run.
    name: String,
    /// The request path (and query) the function sees.
    #[arg(default_value = "/")]
    path: String,
    /// HTTP method [default: POST with `--data`, else GET].
    #[arg(short = 'X', long, value_name = "METHOD")]
    method: Option<String>,
    /// Request body (`@FILE` reads a file); makes the request a POST
    /// unless `-X` says otherwise, as with curl.
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
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let method = match (&self.method, &self.data) {
            (Some(method), _) => method_flag(method)?,
            (None, Some(_)) => http::Method::POST,
            (None, None) => http::Method::GET,
        };
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
        let client = self.admin.client(globals)?;
        let response = client
            .send(
                method,
                &format!("/v1/functions/{}/invoke{path}", self.name),
                headers,
                body,
            )
            .await?;
        let status = response.status();
        if let Some(refusal) = host_refusal(&response) {
            anyhow::bail!("{refusal}");
        }
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

/// The host's own refusal to run anything (no such function or version),
/// as opposed to a response of the function's.
fn host_refusal(response: &http::Response<Bytes>) -> Option<String> {
    if response.status() != http::StatusCode::NOT_FOUND {
        return None;
    }
    let body: wisp_spec::api::ErrorBody = serde_json::from_slice(response.body()).ok()?;
    matches!(body.kind.as_str(), "unknown-function" | "no-such-version").then_some(body.error)
}

#[derive(Debug, Args)]
pub(crate) struct Versions {
    /// The function.
    name: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Versions {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let versions = self.admin.client(globals)?.versions(&self.name).await?;
        if globals.json(self.json) {
            println!("{}", serde_json::to_string_pretty(&versions)?);
            return Ok(ExitCode::SUCCESS);
        }
        let rows = versions.iter().map(|v| {
            vec![
                format!("v{}", v.number),
                format!("{}%", v.weight),
                v.abi.as_str().to_owned(),
                output::unix_time(v.created_unix),
                v.source.chars().take(12).collect(),
                if v.loaded {
                    output::settings_line(&v.settings)
                } else {
                    "(not loaded)".to_owned()
                },
            ]
        });
        let header = ["VERSION", "TRAFFIC", "ABI", "CREATED", "SOURCE", "SETTINGS"];
        println!("{}", output::table(&header, rows));
        // Where each came from (a registry, a commit and its build) is a
        // sentence: under the table.
        for version in &versions {
            if let Some(origin) = &version.origin {
                println!("v{} from {origin}", version.number);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
pub(crate) struct Traffic {
    /// The function.
    name: String,
    /// Shares as `VERSION=WEIGHT` (e.g. `v3=90 v4=10`); weights sum to 100.
    #[arg(required = true, value_name = "vN=WEIGHT")]
    split: Vec<String>,
    /// Print the function, with its new split, as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Traffic {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let shares =
            wisp_spec::traffic::parse_split(&self.split).map_err(|e| anyhow::anyhow!("{e}"))?;
        let info = self
            .admin
            .client(globals)?
            .set_traffic(&self.name, &shares)
            .await?;
        if globals.json(self.json) {
            println!("{}", serde_json::to_string_pretty(&info)?);
        } else {
            println!("{}: {}", self.name, describe_traffic(&info));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A function's split, as `wisp traffic` and `wisp rollback` report it:
/// `v3=90% v4=10%`.
fn describe_traffic(info: &FunctionInfo) -> String {
    info.traffic
        .iter()
        .map(|s| format!("v{}={}%", s.version, s.weight))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A function's split in a table cell: `v3` alone, or `v3=90%,v4=10%`.
fn serving(info: &FunctionInfo) -> String {
    info.traffic
        .iter()
        .map(|s| match s.weight {
            100 => format!("v{}", s.version),
            weight => format!("v{}={weight}%", s.version),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Args)]
pub(crate) struct Rollback {
    /// The function.
    name: String,
    /// Print the function, with its restored split, as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Rollback {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let info = self.admin.client(globals)?.rollback(&self.name).await?;
        if globals.json(self.json) {
            println!("{}", serde_json::to_string_pretty(&info)?);
        } else {
            println!("{}: rolled back to {}", self.name, describe_traffic(&info));
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
pub(crate) struct Retire {
    /// The function.
    name: String,
    /// The version to retire: `v3` or `3`. It must not hold traffic.
    #[arg(value_name = "vN", value_parser = version_arg)]
    number: u32,
    /// Print what was retired as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Retire {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let retired = self
            .admin
            .client(globals)?
            .retire(&self.name, self.number)
            .await?;
        if globals.json(self.json) {
            println!("{}", serde_json::to_string_pretty(&retired)?);
        } else if retired.rollback_cleared {
            println!(
                "retired {} v{} (it was the rollback target: `wisp rollback {}` has nothing to go back to now)",
                retired.function, retired.retired, retired.function
            );
        } else {
            println!("retired {} v{}", retired.function, retired.retired);
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A version argument: `v3` or `3`.
fn version_arg(text: &str) -> Result<u32, String> {
    wisp_spec::traffic::parse_version(text)
        .ok_or_else(|| "expected a version such as `v3` or `3`".to_owned())
}
