//! `wisp up`: make a running host match a manifest.
//!
//! The whole manifest is validated first (nothing is built or deployed if a
//! line is wrong); then every `build` command runs; then each function is
//! compared with what the host serves — same binary and same settings means
//! unchanged — and only the changed ones are deployed. Functions the manifest
//! does not list are left alone unless pruning. `--watch` repeats this for the
//! functions whose watched files change (debounced), and for everything when
//! the manifest itself changes.

use crate::client::{AdminClient, ClientError, DeployHow};
use anyhow::{Context, bail};
use bytes::Bytes;
use http::StatusCode;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wisp_spec::api::FunctionInfo;
use wisp_spec::manifest::{Manifest, ManifestFunction};
use wisp_spec::settings::{RawSettings, RootDir, Settings};
use wisp_spec::source::SourceHash;

/// How long file changes are collected before one rebuild.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(300);

/// What `up` did, or with `--dry-run` would do, to one function.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    /// Deployed for the first time.
    Created {
        /// The function.
        name: String,
        /// Its version.
        version: u32,
    },
    /// Redeployed: its code or settings changed.
    Updated {
        /// The function.
        name: String,
        /// Its new version.
        version: u32,
    },
    /// Already deployed as described.
    Unchanged {
        /// The function.
        name: String,
    },
    /// Removed (not in the manifest, `--prune`).
    Removed {
        /// The function.
        name: String,
    },
    /// Deployed but not in the manifest, left alone.
    NotInManifest {
        /// The function.
        name: String,
    },
    /// `--dry-run`: would be deployed for the first time.
    WouldCreate {
        /// The function.
        name: String,
    },
    /// `--dry-run`: would be redeployed.
    WouldUpdate {
        /// The function.
        name: String,
    },
    /// `--dry-run` with `--prune`: would be removed.
    WouldRemove {
        /// The function.
        name: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Created { name, version } => write!(f, "+ {name}: created (v{version})"),
            Change::Updated { name, version } => write!(f, "~ {name}: updated (v{version})"),
            Change::Unchanged { name } => write!(f, "= {name}: unchanged"),
            Change::Removed { name } => write!(f, "- {name}: removed"),
            Change::NotInManifest { name } => write!(
                f,
                "? {name}: not in the manifest, left alone (--prune removes it)"
            ),
            Change::WouldCreate { name } => write!(f, "+ {name}: would be created"),
            Change::WouldUpdate { name } => write!(f, "~ {name}: would be updated"),
            Change::WouldRemove { name } => write!(
                f,
                "- {name}: would be removed, with its key-value bucket, secrets and logs"
            ),
        }
    }
}

/// What `up` may do besides deploying what changed.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpOptions {
    /// Remove deployed functions the manifest does not list.
    pub prune: bool,
    /// Change nothing: report what would change.
    pub dry_run: bool,
}

/// Builds, compares and deploys every function of `manifest`.
pub async fn up(
    client: &AdminClient,
    manifest: &Manifest,
    options: UpOptions,
) -> anyhow::Result<Vec<Change>> {
    for function in &manifest.functions {
        build(manifest, function).await?;
    }
    let mut changes = Vec::new();
    for function in &manifest.functions {
        changes.push(apply(client, function, options.dry_run).await?);
    }
    let listed: BTreeSet<&str> = manifest.functions.iter().map(|f| f.name.as_str()).collect();
    let deployed = client.list().await?;
    for info in deployed {
        if listed.contains(info.name.as_str()) {
            continue;
        }
        if options.prune && options.dry_run {
            changes.push(Change::WouldRemove { name: info.name });
        } else if options.prune {
            client.remove(&info.name).await?;
            changes.push(Change::Removed { name: info.name });
        } else {
            changes.push(Change::NotInManifest { name: info.name });
        }
    }
    Ok(changes)
}

/// Makes a function's `.wasm`: fetches it when the manifest names it by
/// URL, then runs its build command (in the manifest's directory, through
/// the shell), if it has one.
pub(crate) async fn build(manifest: &Manifest, function: &ManifestFunction) -> anyhow::Result<()> {
    if let Some(download) = &function.download {
        crate::download::fetch(download, &function.wasm)
            .await
            .with_context(|| format!("function `{}`", function.name))?;
    }
    let Some(command) = &function.build else {
        return Ok(());
    };
    let name = &function.name;
    tracing::info!(function = %name, command, "building");
    let progress = crate::output::spinner(format!("building {name}"));
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(&manifest.dir)
        .status()
        .await
        .with_context(|| format!("running the build command of `{name}`"))?;
    progress.finish_and_clear();
    if !status.success() {
        bail!("the build command of function `{name}` failed ({status}): {command}");
    }
    Ok(())
}

/// A manifest function as it should be deployed: its binary, the binary's
/// hash and its settings in the canonical form the host reports them in.
pub(crate) struct Wanted {
    /// The `.wasm`.
    pub wasm: Bytes,
    /// Hash of `wasm`.
    pub source: SourceHash,
    /// The settings, canonical, for comparison with a deployed function.
    pub canonical: RawSettings,
}

impl Wanted {
    /// Reads the function's `.wasm` (as the host will keep it: a core
    /// module carrying its component type made a component, see
    /// [`wisp_host::componentize`]) and canonicalizes its settings.
    pub(crate) async fn of(function: &ManifestFunction) -> anyhow::Result<Wanted> {
        let wasm = tokio::fs::read(&function.wasm).await.with_context(|| {
            format!(
                "reading `{}` for function `{}`",
                function.wasm.display(),
                function.name
            )
        })?;
        let canonical = canonical_settings(&function.settings)
            .with_context(|| format!("function `{}`", function.name))?;
        let kept = tokio::task::spawn_blocking(move || wisp_host::componentize(Bytes::from(wasm)))
            .await?
            .with_context(|| format!("function `{}`", function.name))?;
        Ok(Wanted {
            source: SourceHash::of(&kept),
            wasm: kept,
            canonical,
        })
    }

    /// Whether `info` already serves exactly this.
    pub(crate) fn is_served_by(&self, route: &str, info: &FunctionInfo) -> bool {
        info.serves(route, self.source.as_str(), &self.canonical)
    }
}

/// Deploys one function unless the host already serves it as described
/// (with `dry_run`, says what it would do).
async fn apply(
    client: &AdminClient,
    function: &ManifestFunction,
    dry_run: bool,
) -> anyhow::Result<Change> {
    let wanted = Wanted::of(function).await?;
    let existing = match client.get(&function.name).await {
        Ok(info) => Some(info),
        Err(ClientError::Api {
            status: StatusCode::NOT_FOUND,
            ..
        }) => None,
        Err(e) => return Err(e.into()),
    };
    if existing
        .as_ref()
        .is_some_and(|info| wanted.is_served_by(&function.route, info))
    {
        if !dry_run {
            set_secrets(client, function).await?;
        }
        return Ok(Change::Unchanged {
            name: function.name.clone(),
        });
    }
    if dry_run {
        let name = function.name.clone();
        return Ok(match existing {
            None => Change::WouldCreate { name },
            Some(_) => Change::WouldUpdate { name },
        });
    }
    // An existing function gets its secrets before its new code serves; a
    // new one can only get them once it exists, right after its deploy.
    if existing.is_some() {
        set_secrets(client, function).await?;
    }
    let progress = crate::output::spinner(format!("deploying {}", function.name));
    let report = client
        .deploy(
            &function.name,
            wanted.wasm,
            &function.settings,
            // The manifest is the whole truth: settings it leaves out are
            // the defaults, and its route is where the function goes.
            &DeployHow {
                route: Some(&function.route),
                take_traffic: true,
                reset_settings: true,
                move_route: true,
                origin: None,
            },
        )
        .await
        .with_context(|| format!("deploying function `{}`", function.name))?;
    if existing.is_none() {
        set_secrets(client, function).await?;
    }
    progress.finish_and_clear();
    let version = report.version;
    let name = function.name.clone();
    Ok(match existing {
        None => Change::Created { name, version },
        Some(_) => Change::Updated { name, version },
    })
}

/// Sets the secrets the manifest gives `function` (a `spin.toml`'s
/// variables drawn from secret ones), whether or not its code changed.
async fn set_secrets(client: &AdminClient, function: &ManifestFunction) -> anyhow::Result<()> {
    for (secret, value) in &function.secrets {
        client
            .set_secret(&function.name, secret, Bytes::from(value.clone()))
            .await
            .with_context(|| {
                format!("setting secret `{secret}` of function `{}`", function.name)
            })?;
    }
    Ok(())
}

/// The canonical form the host reports settings in, for comparison.
fn canonical_settings(raw: &RawSettings) -> anyhow::Result<RawSettings> {
    // Directories are checked (and made canonical) where they exist here;
    // otherwise the host, which may be elsewhere, is the judge — also of
    // whether it grants its root directory, so that is allowed here.
    let settings = Settings::validate(raw, RootDir::Allowed).or_else(|_| raw.check())?;
    Ok(settings.to_raw())
}

/// Runs `up`, then again for each change of watched files, until interrupted.
pub async fn watch(
    client: &AdminClient,
    manifest_path: &Path,
    prune: bool,
    json: bool,
) -> anyhow::Result<()> {
    let options = UpOptions {
        prune,
        dry_run: false,
    };
    use notify::{RecursiveMode, Watcher};
    let mut manifest = Manifest::load(manifest_path)?;
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                let _ = events_tx.send(path);
            }
        }
    })
    .context("starting the file watcher")?;
    let manifest_file =
        std::fs::canonicalize(manifest_path).unwrap_or_else(|_| manifest_path.to_owned());
    watcher
        .watch(
            manifest_file.parent().unwrap_or(Path::new(".")),
            RecursiveMode::NonRecursive,
        )
        .context("watching the manifest")?;
    for function in &manifest.functions {
        let paths = watched_paths(function);
        if function.watch.is_empty() {
            let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            eprintln!(
                "watching {} for function `{}` (set `watch = [...]` in its manifest table to choose)",
                shown.join(", "),
                function.name
            );
        }
        for path in paths {
            watcher
                .watch(&path, RecursiveMode::Recursive)
                .with_context(|| {
                    format!(
                        "watching `{}` for function `{}`",
                        path.display(),
                        function.name
                    )
                })?;
        }
    }
    // Watching starts before the first `up`, so no change is missed.
    print_changes(&up(client, &manifest, options).await?, json)?;
    eprintln!("watching for changes (Ctrl-C stops)");
    loop {
        let Some(first) = events.recv().await else {
            bail!("the file watcher stopped")
        };
        let mut changed = vec![first];
        let deadline = tokio::time::sleep(WATCH_DEBOUNCE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                Some(path) = events.recv() => changed.push(path),
                () = &mut deadline => break,
            }
        }
        let result = if changed.iter().any(|p| p == &manifest_file) {
            match Manifest::load(manifest_path) {
                Ok(reloaded) => {
                    manifest = reloaded;
                    up(client, &manifest, options).await
                }
                Err(e) => Err(e.into()),
            }
        } else {
            redeploy_touched(client, &manifest, &changed).await
        };
        match result {
            Ok(changes) => print_changes(&changes, json)?,
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
}

/// Rebuilds and redeploys the functions whose watched paths include one of
/// `changed`.
async fn redeploy_touched(
    client: &AdminClient,
    manifest: &Manifest,
    changed: &[PathBuf],
) -> anyhow::Result<Vec<Change>> {
    let mut changes = Vec::new();
    for function in &manifest.functions {
        let paths = watched_paths(function);
        let touched = changed.iter().any(|c| {
            paths.iter().any(|p| c.starts_with(p))
                && (!function.watch.is_empty() || !is_build_output(c))
        });
        if !touched {
            continue;
        }
        build(manifest, function).await?;
        changes.push(apply(client, function, false).await?);
    }
    Ok(changes)
}

/// What to watch for a function: its `watch` paths; else, when it has a
/// build command, its source tree (the directory of its `.wasm`, above
/// any build output directory); else its `.wasm` (someone else builds it).
fn watched_paths(function: &ManifestFunction) -> Vec<PathBuf> {
    if !function.watch.is_empty() {
        return function.watch.clone();
    }
    if function.build.is_none() {
        return vec![function.wasm.clone()];
    }
    let mut tree = function.wasm.parent().unwrap_or(Path::new("/"));
    while let Some(inside) = tree.ancestors().find(|dir| {
        dir.file_name()
            .is_some_and(|n| BUILD_OUTPUT_DIRS.iter().any(|o| n == *o))
    }) {
        tree = inside.parent().unwrap_or(Path::new("/"));
    }
    vec![tree.to_owned()]
}

/// Directories builds write into: changes there (and to `.wasm` files) are
/// a build's own output, not a source change, in a watched source tree.
const BUILD_OUTPUT_DIRS: [&str; 5] = ["target", "node_modules", ".git", "__pycache__", "dist"];

/// Whether `path` is a build's output rather than a source file.
fn is_build_output(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
        || path.components().any(|c| {
            BUILD_OUTPUT_DIRS
                .iter()
                .any(|o| c.as_os_str() == std::ffi::OsStr::new(o))
        })
}

/// Prints what changed: one line per function, or JSON (one document per
/// run; one line each under `--watch`).
pub fn print_changes(changes: &[Change], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(changes)?);
    } else {
        for change in changes {
            println!("{change}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(wasm: &str, build: Option<&str>) -> ManifestFunction {
        ManifestFunction {
            name: "hello".into(),
            wasm: PathBuf::from(wasm),
            build: build.map(str::to_owned),
            watch: Vec::new(),
            route: "/hello".into(),
            settings: RawSettings::new(),
            secrets: Default::default(),
            download: None,
            line: 1,
        }
    }

    #[test]
    fn a_built_function_is_watched_from_its_source_tree() {
        let built = function(
            "/app/hello/target/wasm32-wasip2/release/hello.wasm",
            Some("cargo build"),
        );
        assert_eq!(watched_paths(&built), [PathBuf::from("/app/hello")]);
        let templated = function("/app/hello/hello.wasm", Some("hello/build.sh"));
        assert_eq!(watched_paths(&templated), [PathBuf::from("/app/hello")]);
        let prebuilt = function("/app/hello.wasm", None);
        assert_eq!(watched_paths(&prebuilt), [PathBuf::from("/app/hello.wasm")]);
    }

    #[test]
    fn a_builds_own_output_is_not_a_source_change() {
        assert!(is_build_output(Path::new("/app/hello/hello.wasm")));
        assert!(is_build_output(Path::new("/app/hello/target/debug/x.d")));
        assert!(is_build_output(Path::new("/app/js/node_modules/a/b.js")));
        assert!(!is_build_output(Path::new("/app/hello/src/lib.rs")));
    }
}
