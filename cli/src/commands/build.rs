//! Building on the host: `wisp token` (deploy tokens for a function's git
//! remote) and the hidden `__git-hook`, the `pre-receive` hook of every
//! function's repository, which builds and deploys a push to the deploy
//! branch before the branch moves.

use super::state::report;
use super::{AdminArgs, Globals};
use crate::client::{AdminClient, BuildOutcome, DeployHow};
use crate::output::table;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::io::BufRead;
use std::process::ExitCode;
use wisp_spec::settings::RawSettings;

#[derive(Debug, Args)]
pub(crate) struct TokenCommand {
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Make a deploy token for a function: it may push to the function's
    /// git remote (`git push http://x:TOKEN@HOST:8081/git/NAME.git main`)
    /// and nothing else. Shown once; the host keeps only its hash. The
    /// function need not exist yet: the first push creates it.
    Create(TokenArgs),
    /// List a function's deploy tokens (ids and ages, never the tokens).
    Ls(TokenArgs),
    /// Remove a deploy token by its id.
    #[command(alias = "delete")]
    Rm(TokenRmArgs),
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The function.
    function: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, Args)]
struct TokenRmArgs {
    /// The function.
    function: String,
    /// The token's id (`wisp token ls FUNCTION`).
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

impl TokenCommand {
    pub(crate) async fn execute(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        match self.action {
            TokenAction::Create(args) => {
                let made = args
                    .admin
                    .client(globals)?
                    .create_token(&args.function)
                    .await?;
                if globals.json(args.json) {
                    println!("{}", serde_json::to_string_pretty(&made)?);
                } else {
                    println!("{}", made.token.as_deref().unwrap_or_default());
                    eprintln!(
                        "deploy token {} for {}: shown once; push with it as the password:\n  git remote add wisp http://wisp:TOKEN@HOST:PORT/git/{}.git",
                        made.id, args.function, args.function
                    );
                }
            }
            TokenAction::Ls(args) => {
                let tokens = args.admin.client(globals)?.tokens(&args.function).await?;
                if globals.json(args.json) {
                    println!("{}", serde_json::to_string_pretty(&tokens)?);
                } else if tokens.is_empty() {
                    println!("{} has no deploy tokens", args.function);
                } else {
                    let rows = tokens.into_iter().map(|t| {
                        let made = jiff::Timestamp::from_second(t.created as i64)
                            .map_or_else(|_| t.created.to_string(), |at| at.to_string());
                        vec![t.id, made]
                    });
                    println!("{}", table(&["ID", "CREATED"], rows));
                }
            }
            TokenAction::Rm(args) => {
                args.admin
                    .client(globals)?
                    .remove_token(&args.function, &args.id)
                    .await?;
                return report(
                    globals.json(args.json),
                    serde_json::json!({ "function": args.function, "removed": args.id }),
                    || format!("removed deploy token {} of {}", args.id, args.function),
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The all-zero object id git gives a ref that does not exist.
fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// The `pre-receive` hook: for a push to the deploy branch, builds the
/// pushed commit on the host and deploys it; anything git prints from here
/// reaches the pusher as `remote:` lines. Exits non-zero (rejecting the
/// push) when the build or the deploy fails.
pub(crate) async fn git_hook() -> anyhow::Result<ExitCode> {
    let var = |name: &str| {
        std::env::var(name).with_context(|| {
            format!("{name} is not set: this hook runs only inside a push to a wisp host")
        })
    };
    let (name, url, token, branch) = (
        var("WISP_FUNCTION")?,
        var("WISP_PUSH_URL")?,
        var("WISP_PUSH_TOKEN")?,
        var("WISP_DEPLOY_BRANCH")?,
    );
    let deploy_ref = format!("refs/heads/{branch}");
    let mut updates = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [old, new, reference] = parts.as_slice() {
            updates.push((old.to_string(), new.to_string(), reference.to_string()));
        }
    }
    let mut code = ExitCode::SUCCESS;
    for (old, new, reference) in updates {
        if reference != deploy_ref {
            eprintln!("wisp: {reference} is not the deploy branch ({branch}): kept, not built");
            continue;
        }
        if is_zero(&new) {
            eprintln!("wisp: deleting {branch} deploys nothing: {name} keeps serving");
            continue;
        }
        let current = git(&["rev-parse", "--verify", "--quiet", &deploy_ref]).unwrap_or_default();
        let current = current.trim();
        let expected = if is_zero(&old) { "" } else { old.as_str() };
        if current != expected {
            eprintln!(
                "wisp: {branch} moved since this push began (another push landed first): fetch, and push again"
            );
            code = ExitCode::FAILURE;
            continue;
        }
        if let Err(e) = build_and_deploy(&name, &url, &token, &new).await {
            eprintln!("wisp: {e:#}");
            eprintln!("wisp: push rejected: {name} keeps serving what it served");
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}

async fn build_and_deploy(name: &str, url: &str, token: &str, commit: &str) -> anyhow::Result<()> {
    let short = &commit[..commit.len().min(12)];
    let archive = archive(commit, short)?;
    let client = AdminClient::new(url, Some(token.to_owned()))?;
    let origin = format!("git {short}");
    let outcome = client
        .build(
            name,
            archive.into(),
            &RawSettings::default(),
            &DeployHow {
                take_traffic: true,
                origin: Some(&origin),
                ..DeployHow::default()
            },
            |line| eprintln!("{line}"),
        )
        .await?;
    let (verb, version, route) = match outcome {
        BuildOutcome::Deployed(report) => ("deployed", report.version, report.route),
        BuildOutcome::Unchanged { version, route } => ("serving", version, route),
    };
    let at = match std::env::var("WISP_PUBLIC_URL") {
        Ok(base) => format!("{base}{route}"),
        Err(_) => route,
    };
    eprintln!("wisp: {verb} {name} v{version} from {short}: {at}");
    Ok(())
}

/// `git archive` of `commit` as a tar, within `WISP_MAX_ARCHIVE` bytes (the
/// host's upload limit): a small push can hold a tree that archives to far
/// more (one large blob under many names), so git is stopped past it.
fn archive(commit: &str, short: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let cap: u64 = std::env::var("WISP_MAX_ARCHIVE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200 << 20);
    let mut child = std::process::Command::new("git")
        .args(["archive", "--format=tar", commit])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running git archive")?;
    let mut bytes = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        stdout
            .take(cap + 1)
            .read_to_end(&mut bytes)
            .context("reading git archive")?;
    }
    if bytes.len() as u64 > cap {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "the tree of {short} is larger than this host accepts ({} bytes; `wisp serve --max-upload`)",
            cap
        );
    }
    let output = child.wait_with_output().context("running git archive")?;
    if !output.status.success() {
        bail!(
            "git archive {short} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(bytes)
}

/// Runs git (in the repository the hook runs in) and returns its output.
fn git(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
