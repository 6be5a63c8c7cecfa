//! The developer tools: `wisp up` (an app from a manifest), `wisp bench`
//! (cold starts on this machine) and `wisp new` (a function from a
//! template).

use super::{AdminArgs, Globals, body_flag, method_flag, parse_duration_flag};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use wisp_spec::manifest::Manifest;

#[derive(Debug, Args)]
pub(crate) struct Up {
    /// The manifest: a `wisp.toml`, or a Spin app's `spin.toml` (its
    /// variables from `SPIN_VARIABLE_*`). It is the whole truth: a
    /// function's settings are those it lists (the others are defaults,
    /// not the previous version's), and its route is where the function
    /// goes. [default: `wisp.toml`, else `spin.toml` when only that exists]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Remove deployed functions the manifest does not list (with their
    /// key-value buckets, secrets and logs); try `--dry-run` first.
    #[arg(long)]
    prune: bool,
    /// Change nothing: build, compare, and print what would be created,
    /// updated and (with `--prune`) removed.
    #[arg(long, conflicts_with = "watch")]
    dry_run: bool,
    /// Keep running: rebuild and redeploy a function when its files change
    /// (its `watch = [...]` paths, else the directory its `.wasm` is built
    /// in), and everything when the manifest changes.
    #[arg(long)]
    watch: bool,
    /// Print the changes as JSON (one line per run).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

/// `wisp.toml` in this directory, else `spin.toml` when only that exists.
fn default_manifest() -> PathBuf {
    let wisp = PathBuf::from(wisp_spec::manifest::DEFAULT_MANIFEST);
    let spin = PathBuf::from(wisp_spec::spin::manifest::SPIN_MANIFEST);
    if !wisp.exists() && spin.exists() {
        return spin;
    }
    wisp
}

impl Up {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let client = self.admin.client(globals)?;
        let json = globals.json(self.json);
        let file = self.file.unwrap_or_else(default_manifest);
        if self.watch {
            crate::up::watch(&client, &file, self.prune, json).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let manifest = Manifest::load(&file)?;
        let options = crate::up::UpOptions {
            prune: self.prune,
            dry_run: self.dry_run,
        };
        let changes = crate::up::up(&client, &manifest, options).await?;
        crate::up::print_changes(&changes, json)?;
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
pub(crate) struct BenchCommand {
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
    /// Sandboxes prepared ahead of their request, as `wisp serve --prepare`
    /// (`0`: every request instantiates on its own critical path).
    #[arg(long, default_value_t = wisp_host::HostConfig::default().prepare, value_name = "N")]
    prepare: usize,
    /// Reuse each instance for up to N requests (WASI 0.3 components only;
    /// the deploy setting `reuse`): measures the weaker-isolation mode.
    #[arg(long, value_name = "N")]
    reuse: Option<u32>,
    /// With `--reuse`: requests one instance serves at once.
    #[arg(long, value_name = "M", requires = "reuse")]
    reuse_concurrency: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Exit 0 even when the function answered with an error status (to
    /// measure an error path on purpose).
    #[arg(long)]
    allow_errors: bool,
}

impl BenchCommand {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
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
            prepare: self.prepare,
            reuse: self.reuse,
            reuse_concurrency: self.reuse_concurrency,
        };
        let report = crate::bench::run(Bytes::from(wasm), &options).await?;
        if globals.json(self.json) {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.table());
        }
        if report.measured_errors() && !self.allow_errors {
            eprintln!(
                "error: the function answered {} (other statuses: {}): exiting non-zero; `--allow-errors` measures an error path on purpose",
                report.status, report.other_statuses
            );
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Args)]
pub(crate) struct New {
    /// The function's name (also its directory).
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum, default_value = "rust")]
    lang: crate::template::Language,
    /// What it starts as: `hello` (routes and a key-value counter) or
    /// `chat` (a chat room over WebSockets, with server-sent events and
    /// long-polls; Rust only).
    #[arg(long, value_enum, default_value = "hello")]
    template: crate::template::Template,
    /// The WASI version of a Rust function: `0.3` (a `wasi:http/service`
    /// component) or `0.2` (a `wasi:http/proxy` one). The other languages'
    /// toolchains decide theirs: C builds a WASI 0.1 module run CGI-style;
    /// JavaScript (componentize-js) and Python (componentize-py) build WASI
    /// 0.2 components.
    #[arg(long, value_enum, value_name = "VERSION")]
    wasi: Option<crate::template::Wasi>,
    /// Where to create the directory.
    #[arg(long, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
}

impl New {
    pub(crate) fn execute(self) -> anyhow::Result<ExitCode> {
        use crate::template::{Language, Template, Wasi};
        if self.wasi.is_some() && self.lang != Language::Rust {
            bail!(
                "`--wasi` chooses the WASI version of a Rust function; the {} toolchain decides its own (see `wisp new --help`)",
                self.lang
            );
        }
        if self.template == Template::Chat && self.lang != Language::Rust {
            bail!(
                "the chat template is written in Rust; leave out `--lang {}` or choose `--template hello`",
                self.lang
            );
        }
        let wasi = self.wasi.unwrap_or(Wasi::V0_3);
        let dir = crate::template::scaffold(&self.name, self.lang, self.template, wasi, &self.dir)?;
        let name = &self.name;
        match self.lang {
            Language::Rust => {
                println!("created {} ({} function, {wasi})", dir.display(), self.lang)
            }
            _ => println!("created {} ({} function)", dir.display(), self.lang),
        }
        println!("next:");
        if self.lang == crate::template::Language::Js {
            println!("  (cd {} && npm install)", dir.display());
        }
        println!("  {}/build.sh", dir.display());
        let websocket = match self.template {
            Template::Chat => " --websocket on --allow-outbound http://wisp.internal",
            Template::Hello => "",
        };
        println!(
            "  wisp deploy {name} {}/{name}.wasm --route /{name}{websocket}",
            dir.display()
        );
        println!("  curl http://127.0.0.1:8080/{name}");
        Ok(ExitCode::SUCCESS)
    }
}
