//! The `wisp` command line: one struct per command, each with `execute`.
//!
//! `serve` runs a host; the other verbs are clients of a running host's admin
//! API. Flags are validated before anything is bound or sent, and a bad value
//! names the flag and the accepted form.

mod build;
mod calls;
mod functions;
mod host_flags;
mod observe;
mod serve;
mod settings_flags;
mod state;
mod tools;

use crate::client::{AdminClient, DEFAULT_ADMIN_URL};
use anyhow::Context;
use bytes::Bytes;
use calls::CallsCommand;
use clap::{Args, Parser, Subcommand};
use functions::{Deploy, Invoke, Ls, Push, Retire, Rm, Rollback, Traffic, Versions, Workers};
use observe::{Logs, UsageCommand};
use serve::Serve;
use state::{KvCommand, SecretCommand};
use std::process::ExitCode;
use tools::{BenchCommand, New, Up};
use wisp_spec::units;

/// wisp — a WebAssembly function host.
///
/// Upload `.wasm` functions; wisp compiles each one ahead of time and serves
/// every HTTP request from a fresh, isolated sandbox.
#[derive(Debug, Parser)]
#[command(name = "wisp", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

/// The flags every client verb takes, before its name as well as after it
/// (`wisp --admin URL ls` or `wisp ls --admin URL`; after it wins).
#[derive(Debug, Args)]
pub(crate) struct Globals {
    /// Admin API URL of the host to talk to [default: $WISP_ADMIN_URL, else
    /// http://127.0.0.1:8081].
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// Admin API bearer token [default: $WISP_ADMIN_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Print JSON instead of text (every verb that reports something).
    #[arg(long)]
    json: bool,
}

impl Globals {
    /// Whether to print JSON, given the verb's own `--json`.
    pub(crate) fn json(&self, own: bool) -> bool {
        own || self.json
    }

    /// Refuses flags given before a verb that does not take them.
    fn check(&self, command: &Command) -> anyhow::Result<()> {
        let (verb, takes_admin, takes_json) = match command {
            Command::Serve(_) => ("serve", false, false),
            Command::New(_) => ("new", false, false),
            Command::Bench(_) => ("bench", false, true),
            Command::Invoke(_) => ("invoke", true, false),
            _ => return Ok(()),
        };
        if verb == "serve" && self.admin.is_some() {
            anyhow::bail!(
                "`wisp --admin URL` names the host a client verb talks to; `wisp serve` listens for the admin API where `wisp serve --admin-listen ADDR` says (after the verb)"
            );
        }
        let refused = [
            ("--admin", !takes_admin && self.admin.is_some()),
            ("--token", !takes_admin && self.token.is_some()),
            ("--json", !takes_json && self.json),
        ];
        match refused.iter().find(|(_, refused)| *refused) {
            Some((flag, _)) => anyhow::bail!("`wisp {verb}` does not take `{flag}`"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a host: serve functions over HTTP, with the admin API beside it.
    Serve(Box<Serve>),
    /// Deploy a `.wasm` file, or an OCI artifact (`oci://REGISTRY/REPO:TAG`),
    /// as a function (a new version if it exists).
    Deploy(Deploy),
    /// Publish a function's `.wasm` to an OCI registry as a CNCF wasm
    /// artifact: `wisp push hello registry.example.com/fns/hello:v1`.
    Push(Push),
    /// List deployed functions and their effective settings.
    #[command(alias = "list")]
    Ls(Ls),
    /// List the guest worker processes of a host run with `--isolation
    /// process`: function, version, pid (check its jail in
    /// `/proc/PID/status`: `Seccomp: 2`, `NoNewPrivs: 1`), calls in flight.
    Workers(Workers),
    /// Remove a function, with its own key-value bucket, its secrets and its
    /// logs.
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
    /// Delete a version that holds no traffic, from every path at once:
    /// `wisp retire NAME v2`.
    Retire(Retire),
    /// Print a function's guest logs.
    Logs(Logs),
    /// Show a function's cumulative usage.
    Usage(UsageCommand),
    /// Read and write key-value buckets: `wisp kv get FN KEY`,
    /// `wisp kv set --bucket NAME KEY VALUE`.
    Kv(KvCommand),
    /// Set, list and remove a function's secrets (read by guests through
    /// `wasi:config`; never shown).
    Secret(SecretCommand),
    /// Make, list and remove deploy tokens: credentials that may push to
    /// one function's git remote and nothing else.
    Token(build::TokenCommand),
    /// Follow async calls (`Prefer: respond-async`): `wisp calls get ID`,
    /// `wisp calls ls --function FN --state failed`.
    Calls(CallsCommand),
    /// Measure a module's cold start and throughput on this machine.
    Bench(BenchCommand),
    /// Create a new function from a template: `wisp new hello --lang rust`.
    New(New),
    /// Internal: compile one module for `wisp serve` (stdin to stdout).
    #[command(name = COMPILE_WORKER_COMMAND, hide = true)]
    CompileWorker,
    /// Internal: run one function's guests for `wisp serve --isolation
    /// process` (its front process speaks to it on stdin and stdout).
    #[command(name = GUEST_WORKER_COMMAND, hide = true)]
    GuestWorker,
    /// Internal: the pre-receive hook of a function's git repository.
    #[command(name = wisp_host::HOOK_COMMAND, hide = true)]
    GitHook,
    /// Internal: run one build for `wisp serve`, jailed (its job on stdin).
    #[command(name = BUILD_CHILD_COMMAND, hide = true)]
    BuildChild,
}

/// The hidden subcommand `wisp serve` runs itself with to compile in a
/// child process.
pub(crate) const COMPILE_WORKER_COMMAND: &str = "__compile-worker";

/// The hidden subcommand `wisp serve --isolation process` runs itself with
/// for each guest worker.
pub(crate) const GUEST_WORKER_COMMAND: &str = "__guest-worker";

/// The hidden subcommand `wisp serve` runs itself with for each build.
pub(crate) const BUILD_CHILD_COMMAND: &str = "__build-child";

/// Keeps `RUST_BACKTRACE` for panics but, unless `RUST_LIB_BACKTRACE` says
/// otherwise, stops every error capturing a stack trace: wasmtime makes
/// errors in its normal flow (a WASI 0.3 store's teardown makes one per
/// request), and with `RUST_BACKTRACE=1` each capture cost a 0.3 request
/// 13 % of its throughput (`benches/http-load.sh`, c=32).
fn quiet_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first thing in `main`, before the async runtime or
        // any other thread exists, so nothing reads the environment
        // concurrently.
        #[expect(unsafe_code, reason = "setting an env var before any thread starts")]
        unsafe {
            std::env::set_var("RUST_LIB_BACKTRACE", "0");
        }
    }
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.globals.check(&cli.command) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    if let Command::CompileWorker = cli.command {
        // No async runtime, no logging: one compile, then exit.
        return wisp_host::compile_worker_main();
    }
    if let Command::BuildChild = cli.command {
        // No runtime, no logging: it jails itself and becomes the build.
        return wisp_host::build_child_main();
    }
    if let Command::GuestWorker = cli.command {
        // It jails itself while it has one thread, then starts its own
        // runtime; it logs to stderr, which its front process reads.
        crate::telemetry::Telemetry::install_for_worker();
        return wisp_host::guest_worker_main();
    }
    quiet_error_backtraces();
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
    let globals = cli.globals;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(c) => c.execute().await,
            Command::Deploy(c) => c.execute(&globals).await,
            Command::Push(c) => c.execute(&globals).await,
            Command::Ls(c) => c.execute(&globals).await,
            Command::Workers(c) => c.execute(&globals).await,
            Command::Rm(c) => c.execute(&globals).await,
            Command::Invoke(c) => c.execute(&globals).await,
            Command::Up(c) => c.execute(&globals).await,
            Command::Versions(c) => c.execute(&globals).await,
            Command::Traffic(c) => c.execute(&globals).await,
            Command::Rollback(c) => c.execute(&globals).await,
            Command::Retire(c) => c.execute(&globals).await,
            Command::Logs(c) => c.execute(&globals).await,
            Command::Usage(c) => c.execute(&globals).await,
            Command::Kv(c) => c.execute(&globals).await,
            Command::Secret(c) => c.execute(&globals).await,
            Command::Token(c) => c.execute(&globals).await,
            Command::GitHook => build::git_hook().await,
            Command::Calls(c) => c.execute(&globals).await,
            Command::Bench(c) => c.execute(&globals).await,
            Command::New(c) => c.execute(),
            Command::CompileWorker | Command::GuestWorker | Command::BuildChild => {
                unreachable!("the workers run before the runtime")
            }
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

/// `--method`: an HTTP method.
pub(crate) fn method_flag(text: &str) -> anyhow::Result<http::Method> {
    text.parse().map_err(|_| {
        anyhow::anyhow!("invalid value `{text}` for `--method`: expected an HTTP method")
    })
}

/// A request body flag: the text itself, or `@FILE` for a file's contents.
pub(crate) fn body_flag(data: Option<&str>) -> anyhow::Result<Bytes> {
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

pub(crate) fn parse_duration_flag(text: &str) -> Result<std::time::Duration, String> {
    units::parse_duration(text).ok_or_else(|| format!("expected {}", units::DURATION_FORMS))
}

/// Where the admin API is, and its token.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// Admin API URL of the host to talk to [default: $WISP_ADMIN_URL, else
    /// http://127.0.0.1:8081].
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// Admin API bearer token [default: $WISP_ADMIN_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
}

impl AdminArgs {
    /// A client of the admin API this verb names: its own flags, else
    /// those before the verb, else the environment, else the default.
    pub(crate) fn client(&self, globals: &Globals) -> anyhow::Result<AdminClient> {
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let url = self
            .admin
            .clone()
            .or_else(|| globals.admin.clone())
            .or_else(|| from_env(ADMIN_URL_ENV))
            .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned());
        let token = self
            .token
            .clone()
            .or_else(|| globals.token.clone())
            .or_else(|| from_env(ADMIN_TOKEN_ENV));
        Ok(AdminClient::new(&url, token)?)
    }
}

/// The environment variable naming the admin API a client verb talks to.
const ADMIN_URL_ENV: &str = "WISP_ADMIN_URL";

/// The environment variable holding the admin API token.
const ADMIN_TOKEN_ENV: &str = "WISP_ADMIN_TOKEN";

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_is_well_formed() {
        // Clap checks argument names only when a command is built: this
        // catches a clash (e.g. an argument called `version`) in every verb.
        Cli::command().debug_assert();
    }

    #[test]
    fn retire_takes_a_version_with_or_without_v() {
        for typed in ["v2", "2"] {
            assert!(Cli::try_parse_from(["wisp", "retire", "hello", typed]).is_ok());
        }
        let bad = Cli::try_parse_from(["wisp", "retire", "hello", "two"]).unwrap_err();
        assert!(bad.to_string().contains("`v3` or `3`"), "{bad}");
    }
}
