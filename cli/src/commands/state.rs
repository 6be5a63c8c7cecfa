//! `wisp kv` and `wisp secret`: an operator's hands on platform state.
//!
//! `wisp kv` reads and writes key-value buckets — a function's own
//! (`wisp kv get FN KEY`) or an app bucket (`wisp kv get --bucket NAME KEY`).
//! `wisp secret` sets the secrets a function reads through `wasi:config`;
//! values go in on stdin and are never printed by anything.

use super::{AdminArgs, Globals};
use crate::client::Bucket;
use crate::output::table;
use anyhow::{Context, bail};
use base64::Engine as _;
use bytes::Bytes;
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Read};
use std::process::ExitCode;

/// Pages a listing follows at most (a page holds up to 1,000 keys).
const MAX_PAGES: usize = 10_000;

/// `wisp kv`.
#[derive(Debug, Args)]
pub(crate) struct KvCommand {
    #[command(subcommand)]
    action: KvAction,
}

#[derive(Debug, Subcommand)]
enum KvAction {
    /// List a bucket's keys: `wisp kv ls FN` or `wisp kv ls --bucket NAME`.
    Ls(KvArgs),
    /// Print a key's value: `wisp kv get FN KEY` or `wisp kv get --bucket NAME KEY`.
    Get(KvArgs),
    /// Set a key: `wisp kv set FN KEY VALUE` (VALUE `@FILE` reads a file;
    /// `-` or no VALUE reads stdin).
    Set(KvArgs),
    /// Delete a key: `wisp kv rm FN KEY` or `wisp kv rm --bucket NAME KEY`.
    #[command(alias = "delete")]
    Rm(KvArgs),
}

/// The arguments every `wisp kv` verb takes.
#[derive(Debug, Args)]
struct KvArgs {
    /// Use app bucket NAME instead of a function's own bucket; then the
    /// first argument is the KEY.
    #[arg(long, value_name = "NAME")]
    bucket: Option<String>,
    /// `FN` (unless `--bucket`), then `KEY`, then (for `set`) `VALUE`.
    #[arg(value_name = "FN KEY VALUE", num_args = 0..=3)]
    args: Vec<String>,
    /// Print JSON instead of text (`get`: the value as UTF-8 text, or base64
    /// when it is not).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl KvArgs {
    /// The bucket and the positional arguments after it.
    fn bucket(&self) -> anyhow::Result<(Bucket, &[String])> {
        match (&self.bucket, self.args.split_first()) {
            (Some(name), _) => Ok((Bucket::App(name.clone()), &self.args)),
            (None, Some((function, rest))) => Ok((Bucket::Function(function.clone()), rest)),
            (None, None) => {
                bail!("name a function (`wisp kv ls FN`) or an app bucket (`--bucket NAME`)")
            }
        }
    }

    /// The bucket and exactly `names.len()` arguments after it (a trailing
    /// optional one may be missing when `optional_last`).
    fn expect<'a>(
        &'a self,
        names: &[&str],
        optional_last: bool,
    ) -> anyhow::Result<(Bucket, Vec<&'a str>)> {
        let (bucket, rest) = self.bucket()?;
        let fewest = names.len() - usize::from(optional_last);
        if rest.len() < fewest || rest.len() > names.len() {
            let target = if self.bucket.is_some() {
                "--bucket NAME"
            } else {
                "FN"
            };
            bail!("expected {target} {}", names.join(" "));
        }
        Ok((bucket, rest.iter().map(String::as_str).collect()))
    }
}

impl KvCommand {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        match self.action {
            KvAction::Ls(args) => list(args, globals).await,
            KvAction::Get(args) => {
                let (bucket, rest) = args.expect(&["KEY"], false)?;
                let value = args.admin.client(globals)?.kv_get(&bucket, rest[0]).await?;
                if globals.json(args.json) {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&value_json(rest[0], &value))?
                    );
                } else {
                    use std::io::Write;
                    std::io::stdout().write_all(&value)?;
                }
                Ok(ExitCode::SUCCESS)
            }
            KvAction::Set(args) => {
                let (bucket, rest) = args.expect(&["KEY", "VALUE"], true)?;
                let value = value_argument(rest.get(1).copied())?;
                let bytes = value.len();
                args.admin
                    .client(globals)?
                    .kv_set(&bucket, rest[0], value)
                    .await?;
                report(
                    globals.json(args.json),
                    serde_json::json!({ "set": rest[0], "bytes": bytes }),
                    || format!("set {} ({bytes} bytes)", rest[0]),
                )
            }
            KvAction::Rm(args) => {
                let (bucket, rest) = args.expect(&["KEY"], false)?;
                args.admin
                    .client(globals)?
                    .kv_delete(&bucket, rest[0])
                    .await?;
                report(
                    globals.json(args.json),
                    serde_json::json!({ "deleted": rest[0] }),
                    || format!("deleted {}", rest[0]),
                )
            }
        }
    }
}

/// `wisp kv ls`: every key, following pages.
async fn list(args: KvArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let (bucket, _) = args.expect(&[], false)?;
    let client = args.admin.client(globals)?;
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = client.kv_keys(&bucket, after.as_deref()).await?;
        keys.extend(page.keys);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if globals.json(args.json) {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "keys": keys }))?
        );
    } else {
        for key in keys {
            println!("{key}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A value as JSON: UTF-8 text as is, anything else as base64.
fn value_json(key: &str, value: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(value) {
        Ok(text) => serde_json::json!({ "key": key, "value": text }),
        Err(_) => serde_json::json!({
            "key": key,
            "value_base64": base64::engine::general_purpose::STANDARD.encode(value),
        }),
    }
}

/// `VALUE`: the text, `@FILE`'s contents, or stdin for `-` or nothing.
fn value_argument(value: Option<&str>) -> anyhow::Result<Bytes> {
    match value {
        None | Some("-") => read_stdin(false),
        Some(text) => super::body_flag(Some(text)),
    }
}

/// All of stdin; with `trim_newline`, without one trailing newline (what
/// `echo` adds). Refuses a terminal, so nothing waits on a prompt silently.
fn read_stdin(trim_newline: bool) -> anyhow::Result<Bytes> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!(
            "expected the value on stdin (e.g. `printf %s VALUE | wisp ...`), but stdin is a terminal"
        );
    }
    let mut value = Vec::new();
    stdin
        .read_to_end(&mut value)
        .context("reading the value from stdin")?;
    if trim_newline {
        if value.ends_with(b"\r\n") {
            value.truncate(value.len() - 2);
        } else if value.ends_with(b"\n") {
            value.pop();
        }
    }
    Ok(Bytes::from(value))
}

/// Prints `json` or `text()`.
pub(crate) fn report(
    json: bool,
    value: serde_json::Value,
    text: impl FnOnce() -> String,
) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{}", text());
    }
    Ok(ExitCode::SUCCESS)
}

/// `wisp secret`.
#[derive(Debug, Args)]
pub(crate) struct SecretCommand {
    #[command(subcommand)]
    action: SecretAction,
}

#[derive(Debug, Subcommand)]
enum SecretAction {
    /// Set a secret from stdin: `printf %s VALUE | wisp secret set FN KEY`
    /// (one trailing newline is dropped). The function's guests read it
    /// through `wasi:config` from the next request on.
    Set(SecretArgs),
    /// List a function's secret names (values are never shown).
    Ls(SecretListArgs),
    /// Remove a secret.
    #[command(alias = "delete")]
    Rm(SecretArgs),
}

#[derive(Debug, Args)]
struct SecretArgs {
    /// The function.
    function: String,
    /// The secret's name (letters, digits, `_`, `.`, `-`).
    key: String,
    /// Print what was done as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, Args)]
struct SecretListArgs {
    /// The function.
    function: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl SecretCommand {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        match self.action {
            SecretAction::Set(args) => {
                let value = read_stdin(true)?;
                if value.is_empty() {
                    bail!(
                        "stdin was empty: expected the secret's value (e.g. `printf %s VALUE | wisp secret set {} {}`); nothing was stored",
                        args.function,
                        args.key
                    );
                }
                args.admin
                    .client(globals)?
                    .set_secret(&args.function, &args.key, value)
                    .await?;
                return report(
                    globals.json(args.json),
                    serde_json::json!({ "function": args.function, "set": args.key }),
                    || format!("set secret {} of {}", args.key, args.function),
                );
            }
            SecretAction::Ls(args) => {
                let names = args
                    .admin
                    .client(globals)?
                    .secret_names(&args.function)
                    .await?;
                if globals.json(args.json) {
                    println!("{}", serde_json::to_string_pretty(&names)?);
                } else if names.secrets.is_empty() {
                    println!("{} has no secrets", names.function);
                } else {
                    println!(
                        "{}",
                        table(&["SECRET"], names.secrets.into_iter().map(|n| vec![n]))
                    );
                }
            }
            SecretAction::Rm(args) => {
                let existed = args
                    .admin
                    .client(globals)?
                    .remove_secret(&args.function, &args.key)
                    .await?;
                if !existed {
                    bail!(
                        "{} has no secret named {} (`wisp secret ls {}` lists them)",
                        args.function,
                        args.key,
                        args.function
                    );
                }
                return report(
                    globals.json(args.json),
                    serde_json::json!({ "function": args.function, "removed": args.key }),
                    || format!("removed secret {} of {}", args.key, args.function),
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
