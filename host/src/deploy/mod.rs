//! The deploy path: upload → checks → compile → store → pre-link → publish.
//!
//! The slow part, compiling with Cranelift, runs before the writer lock is
//! taken, so a long compile never blocks `ls`, `rm`, traffic changes or the
//! deploys of other functions. The lock is held only to pick the version
//! number, write the record and publish. The order of effects makes a deploy
//! atomic: the source and artifact are written (atomically) first, then the
//! record is replaced (atomically), then the new snapshot is published. A
//! failure at any step changes nothing that was deployed, and garbage
//! collection never removes the files of a deploy still in progress.
//! `disk/crash_point.rs` names the steps in between, so the tests can crash the
//! host inside each one.

pub(crate) mod componentize;
mod listing;
pub(crate) mod load;
pub(crate) mod middleware;
pub(crate) mod publish;
mod release;
mod state;

use crate::backplane::records::RecordStore;
use crate::backplane::records::{Composition, FunctionRecord, LayerUse, VersionRecord};
use crate::backplane::{Committed, SharedState};
use crate::disk::crash_point::CrashPoint;
use crate::error::{DeployError, HostFailure};
use crate::observe::books::Books;
use crate::observe::metrics::FunctionMetrics;
use crate::observe::metrics::Metrics;
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::runtime::engine;
use crate::runtime::function::{Function, VersionInfo};
use crate::state::{KvBackend, SecretStore, SqlDatabases};
use bytes::Bytes;
pub(crate) use publish::Pending;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use wisp_spec::api::DeployReport;
use wisp_spec::inspect;
use wisp_spec::name::validate_name;
use wisp_spec::route::Route;
use wisp_spec::settings::RootDir;
use wisp_spec::settings::{RawSettings, Settings, SettingsError};
use wisp_spec::source::SourceHash;
use wisp_spec::traffic::TrafficShare;

/// One deploy: a name, a route, the `.wasm` bytes and the version's settings.
///
/// A new version of an existing function keeps the newest version's
/// settings where `settings` gives none (unless `reset_settings`), and the
/// function's route when `route` is `None`. A route that differs from the
/// function's is a move of every version, live traffic included, and is
/// refused unless `move_route` says so.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The function's name.
    pub name: String,
    /// The path prefix it serves, e.g. `/hello`; `None` keeps the
    /// function's (required when creating one).
    pub route: Option<String>,
    /// The uploaded `.wasm`.
    pub wasm: Bytes,
    /// The new version's settings: those given; the rest are the previous
    /// version's, or the defaults with `reset_settings`.
    pub settings: RawSettings,
    /// Start from the defaults, not from the previous version's settings.
    pub reset_settings: bool,
    /// Let a `route` other than the function's move the function.
    pub move_route: bool,
    /// Give the new version all traffic (the default). Off deploys it for
    /// testing by header only (blue/green).
    pub take_traffic: bool,
    /// Where the binary came from (e.g. `oci://registry/repo@sha256:…`),
    /// kept with the version and listed.
    pub origin: Option<String>,
}

impl DeployRequest {
    /// Deploys `wasm` as `name` at `route`, taking all traffic, with the
    /// previous version's settings (or the defaults for a new function).
    pub fn new(name: impl Into<String>, route: impl Into<String>, wasm: impl Into<Bytes>) -> Self {
        DeployRequest {
            name: name.into(),
            route: Some(route.into()),
            wasm: wasm.into(),
            settings: RawSettings::default(),
            reset_settings: false,
            move_route: false,
            take_traffic: true,
            origin: None,
        }
    }

    /// The same deploy with `settings`.
    pub fn with_settings(mut self, settings: RawSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The same deploy as the whole truth: settings not given are the
    /// defaults, and a route other than the function's moves it (what a
    /// manifest deploy means).
    pub fn as_declared(mut self) -> Self {
        self.reset_settings = true;
        self.move_route = true;
        self
    }
}

/// Where and how a built version goes, decided before it is built.
struct Placement {
    route: Route,
    /// The route was not given: keep the function's.
    keep_route: bool,
    move_route: bool,
    take_traffic: bool,
    origin: Option<String>,
    kept_from: Option<u32>,
    kept_settings: Vec<&'static str>,
    /// How the binary was composed with middleware, if it was.
    composition: Option<Composition>,
}

/// How many times a deploy renumbers its version after another host's
/// deploy of the same function committed first, before it gives up (409).
const MAX_DEPLOY_CONFLICTS: u32 = 8;

/// A checked upload, compiled and pre-linked, not yet published.
struct Built {
    abi: inspect::Abi,
    source: SourceHash,
    /// Its code, loaded (and so resident until evicted).
    code: Arc<crate::runtime::code_cache::CodeSlot>,
    compile_ms: Option<u64>,
    artifact_bytes: u64,
}

/// What the deployer is built from: the host-wide rules for deploys.
#[derive(Debug, Clone)]
pub(crate) struct DeployOptions {
    /// The data directory (no `dir` mount may reach it).
    pub(crate) data_dir: PathBuf,
    /// Largest upload, in bytes.
    pub(crate) max_upload_bytes: u64,
    /// Versions kept per function besides those with traffic.
    pub(crate) keep_versions: usize,
    /// Whether sandboxes come from the pooling allocator (a deploy then
    /// instantiates once to check the pool can hold the function).
    pub(crate) pooling: bool,
    /// Whether a function may mount `/` of the host (`--allow-root-dir`).
    pub(crate) allow_root_dir: bool,
    /// The directories `dir` mounts must lie under (empty: anywhere but
    /// the data dir).
    pub(crate) dir_roots: Vec<PathBuf>,
    /// Whether a deploy instantiates the function once here; off when
    /// guests run in worker processes, where no guest code runs in this
    /// process (a core module's `start` runs at instantiation), and the
    /// upload's static check of what the pool holds stands alone.
    pub(crate) trial_instantiation: bool,
}

impl DeployOptions {
    /// Refuses `settings` whose `dir`s (already canonical) reach the data
    /// directory or lie outside [`DeployOptions::dir_roots`].
    pub(crate) fn check_dirs(&self, settings: &Settings) -> Result<(), SettingsError> {
        let data_dir =
            std::fs::canonicalize(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        for mount in &settings.dirs {
            let typed = format!("{}:{}", mount.host.display(), mount.guest);
            if mount.host.starts_with(&data_dir) {
                return Err(SettingsError::invalid(
                    "dir",
                    typed,
                    "a HOST_DIR outside the host's data directory (it holds secrets and stored calls)",
                ));
            }
            let allowed = self.dir_roots.is_empty()
                || self.dir_roots.iter().any(|root| {
                    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
                    mount.host.starts_with(root)
                });
            if !allowed {
                return Err(SettingsError::invalid(
                    "dir",
                    typed,
                    "a HOST_DIR under one of the host's `--dir-root` directories",
                ));
            }
        }
        Ok(())
    }

    /// What `dir` settings may grant on this host.
    pub(crate) fn root_dir(&self) -> RootDir {
        if self.allow_root_dir {
            RootDir::Allowed
        } else {
            RootDir::Refused
        }
    }
}

/// The deployer: every change of the deployed set goes through it —
/// deploys, traffic, rollback, retire, remove, the start-up load and what
/// the converger applies from the shared desired state. It compiles into
/// the runtime, commits to the backplane and publishes to the registry;
/// it never runs a request.
pub(crate) struct Deployer {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) books: Arc<Books>,
    pub(crate) metrics: Arc<Metrics>,
    /// This host's copy of the records.
    pub(crate) records: RecordStore,
    /// The desired state shared with other hosts (or none).
    pub(crate) shared: Arc<dyn SharedState>,
    /// The key-value store, for guests' services and removed functions.
    pub(crate) kv: Arc<dyn KvBackend>,
    /// This host's SQLite databases, for guests' services and removed
    /// functions.
    pub(crate) sql: Arc<SqlDatabases>,
    /// Every function's secrets.
    pub(crate) secrets: Arc<SecretStore>,
    /// Serializes changes to the deployed set (record writes and
    /// publishing; never compiling). Requests never take it.
    pub(crate) writer: tokio::sync::Mutex<()>,
    /// Sources of deploys still compiling, which garbage collection keeps.
    pub(crate) pending: Pending,
    pub(crate) options: DeployOptions,
}

impl Deployer {
    /// Deploys a new version of a function.
    pub async fn deploy(
        self: &Arc<Self>,
        request: DeployRequest,
    ) -> Result<DeployReport, DeployError> {
        let DeployRequest {
            name,
            route,
            wasm,
            settings: mut raw,
            reset_settings,
            move_route,
            take_traffic,
            origin,
        } = request;
        validate_name(&name).map_err(DeployError::InvalidName)?;
        if let Some(origin) = &origin {
            check_origin(origin)?;
        }
        let limit = self.options.max_upload_bytes;
        if wasm.len() as u64 > limit {
            return Err(DeployError::TooLarge { limit });
        }
        // A core module carrying its component type becomes a component
        // first: what is stored, hashed and compiled is the component.
        let wasm = tokio::task::spawn_blocking(move || componentize::componentize(wasm))
            .await
            .map_err(|e| HostFailure::logged(format!("making `{name}` a component failed"), e))??;
        let existing = self.registry.snapshot().get(&name).cloned();
        let keep_route = route.is_none();
        let route = match (route, &existing) {
            (Some(route), _) => route,
            (None, Some(entry)) => entry.record.route.clone(),
            (None, None) => {
                return Err(DeployError::InvalidSettings(SettingsError::invalid(
                    "route",
                    "",
                    format!(
                        "a path prefix such as `/{name}`: function `{name}` is new, so it needs one (later deploys keep it)"
                    ),
                )));
            }
        };
        let route = parse_route(&route)?;
        let previous = existing
            .as_ref()
            .filter(|_| !reset_settings)
            .and_then(|entry| entry.record.versions.last());
        let (kept_from, kept_settings) = match previous {
            Some(previous) => (Some(previous.number), raw.inherit(&previous.settings)),
            None => (None, Vec::new()),
        };
        let settings = Settings::validate(&raw, self.options.root_dir())?;
        self.options.check_dirs(&settings)?;
        if let Some(spin) = settings
            .spin_route
            .as_ref()
            .filter(|s| !s.is_private() && *s.base() != route)
        {
            return Err(SettingsError::invalid(
                "spin-route",
                spin,
                format!(
                    "a Spin route under the function's route `{route}` (`{route}` or `{route}/...`)"
                ),
            )
            .into());
        }
        // The function's own binary, kept for composing again, is held
        // from garbage collection from before it is stored.
        let own = (!settings.middleware.is_empty()).then(|| SourceHash::of(&wasm));
        let _own_held = own.as_ref().map(|own| self.pending.hold(own));
        let (wasm, composition) = self.with_middleware(&name, &settings, wasm).await?;
        let (abi, needs) = inspect::inspect_with_resources(&wasm)?;
        let calls_functions = settings.allow_outbound.iter().any(|rule| {
            // `*.wisp.internal` (or `*.spin.internal`): the only wildcards.
            rule.host.starts_with("*.")
                || crate::runtime::chain::internal_callee(&rule.host).is_some()
        });
        if settings.reuse.is_on() && settings.reuse.concurrency > 1 && calls_functions {
            // A reused instance's outbound calls carry the request it took
            // last: with several at once, a chain's depth and call budget
            // could be another request's.
            return Err(SettingsError::invalid(
                "reuse-concurrency",
                settings.reuse.concurrency,
                "1 for a function that may call functions (`http://…wisp.internal` in `allow-outbound`): with several requests in one instance, a chained call cannot tell which request it belongs to",
            )
            .into());
        }
        if settings.reuse.is_on() && abi != inspect::Abi::WasiHttp3 {
            return Err(SettingsError::invalid(
                "reuse",
                settings.reuse.requests,
                format!(
                    "`off`: instances are reused only for WASI 0.3 components, and this binary is {}",
                    abi.as_str()
                ),
            )
            .into());
        }
        if self.options.pooling {
            engine::check_fits_pool(&needs).map_err(DeployError::Instantiate)?;
        }
        // Checked now to fail fast, and again under the writer lock.
        self.check_route(&route, &name)?;

        let source = SourceHash::of(&wasm);
        self.shared.put_source(&source, &wasm).await?;
        let pending = self.pending.hold(&source);
        let built = self.build(abi, source, wasm, &name, &settings).await;
        let placement = Placement {
            route,
            keep_route,
            move_route,
            take_traffic,
            origin,
            kept_from,
            kept_settings,
            composition,
        };
        let published = match built {
            Ok(built) => {
                self.publish_version(&name, &placement, settings, built)
                    .await
            }
            Err(e) => Err(e),
        };
        drop(pending);
        let published = match published {
            Ok(mut report) => {
                report.recomposed = self.recompose_users_of(&name).await;
                Ok(report)
            }
            Err(e) => Err(e),
        };
        if published.is_err() {
            // Whatever this deploy stored is referenced by nothing: remove it.
            let _writer = self.writer.lock().await;
            let current = self.registry.snapshot_full();
            self.collect_garbage(current.entries()).await;
        }
        published
    }

    /// `wasm` with the middleware `settings` name composed in front of it
    /// (their serving versions), and how; `wasm` as it is without any.
    async fn with_middleware(
        self: &Arc<Self>,
        name: &str,
        settings: &Settings,
        wasm: Bytes,
    ) -> Result<(Bytes, Option<Composition>), DeployError> {
        if settings.middleware.is_empty() {
            return Ok((wasm, None));
        }
        let current = self.registry.snapshot();
        let mut layers = Vec::new();
        for function in &settings.middleware {
            if function == name {
                return Err(middleware::refused(
                    function,
                    "another function: a function cannot be its own middleware".into(),
                ));
            }
            let version = current
                .get(function)
                .and_then(|entry| entry.record.serving())
                .ok_or_else(|| middleware::refused(function, "a deployed function".into()))?;
            if version.composition.is_some() {
                return Err(middleware::refused(
                    function,
                    format!("middleware that has no middleware of its own (`{function}` has)"),
                ));
            }
            let path = version
                .source_hash()
                .map(|hash| self.runtime.artifacts.source_path(&hash))
                .ok_or_else(|| {
                    middleware::refused(function, "a function whose binary is stored".into())
                })?;
            let wasm = tokio::fs::read(&path).await.map_err(|e| {
                HostFailure::logged(
                    format!("reading middleware `{function}` failed"),
                    format_args!("{}: {e}", path.display()),
                )
            })?;
            layers.push(middleware::Layer {
                used: LayerUse {
                    function: function.clone(),
                    version: version.number,
                },
                wasm,
            });
        }
        let target = SourceHash::of(&wasm);
        let function = name.to_owned();
        let own = wasm.clone();
        let (composed, layers) = tokio::task::spawn_blocking(move || {
            (middleware::compose(&function, &own, &layers), layers)
        })
        .await
        .map_err(|e| HostFailure::logged(format!("composing `{name}` failed"), e))?;
        let composed = composed?;
        // The function's own binary is kept, to compose it again when a
        // middleware is redeployed.
        self.shared.put_source(&target, &wasm).await?;
        let host = self.clone();
        tokio::task::spawn_blocking(move || host.runtime.artifacts.put_source(&wasm))
            .await
            .map_err(|e| HostFailure::logged(format!("storing `{name}`'s own binary failed"), e))?
            .map_err(|e| HostFailure::logged(format!("storing `{name}`'s own binary failed"), e))?;
        let composition = Composition {
            target: target.as_str().to_owned(),
            middleware: layers.into_iter().map(|layer| layer.used).collect(),
        };
        Ok((Bytes::from(composed), Some(composition)))
    }

    /// When `middleware`'s serving version is new, deploys a new version of
    /// every function whose serving version (taking all its traffic) has an
    /// older one composed in: its own binary, with its serving version's
    /// settings and origin, so the middleware's new version takes effect
    /// there too. Says which (`NAME vN`); logs any it skipped or that
    /// failed.
    async fn recompose_users_of(self: &Arc<Self>, middleware: &str) -> Vec<String> {
        let current = self.registry.snapshot();
        let Some(newest) = current
            .get(middleware)
            .and_then(|entry| entry.record.serving())
            .map(|version| version.number)
        else {
            return Vec::new();
        };
        let mut users = Vec::new();
        for entry in current.entries().values() {
            let Some(serving) = entry.record.serving() else {
                continue;
            };
            let uses_older = serving.composition.as_ref().is_some_and(|composition| {
                composition
                    .middleware
                    .iter()
                    .any(|layer| layer.function == middleware && layer.version != newest)
            });
            if !uses_older {
                continue;
            }
            let user = entry.record.name.clone();
            if entry.record.traffic.len() > 1 {
                tracing::warn!(function = %user, middleware, "not composed again with the middleware's new version: it is on a traffic split (redeploy it to)");
                continue;
            }
            users.push((user, serving.clone()));
        }
        let mut recomposed = Vec::new();
        for (user, serving) in users {
            let Some(own) = serving.own_source_hash() else {
                continue;
            };
            let redeployed = async {
                let path = self.runtime.artifacts.source_path(&own);
                let wasm = tokio::fs::read(&path).await.map_err(|e| {
                    HostFailure::logged(
                        format!("reading `{user}`'s own binary failed"),
                        format_args!("{}: {e}", path.display()),
                    )
                })?;
                let request = DeployRequest {
                    name: user.clone(),
                    route: None,
                    wasm: Bytes::from(wasm),
                    settings: serving.settings.clone(),
                    reset_settings: true,
                    move_route: false,
                    take_traffic: true,
                    origin: serving.origin.clone(),
                };
                Box::pin(self.deploy(request)).await
            };
            match redeployed.await {
                Ok(report) => {
                    tracing::info!(function = %user, version = report.version, middleware, "composed again with the middleware's new version");
                    recomposed.push(format!("{user} v{}", report.version));
                }
                Err(error) => {
                    tracing::warn!(function = %user, middleware, %error, "composing again with the middleware's new version failed; the function keeps its version");
                }
            }
        }
        recomposed
    }

    /// Refuses `route` when a function other than `name` serves it.
    fn check_route(self: &Arc<Self>, route: &Route, name: &str) -> Result<(), DeployError> {
        let current = self.registry.snapshot();
        match current.route_owner(route, name) {
            Some(owner) => Err(DeployError::RouteTaken {
                route: route.to_string(),
                owner: owner.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Stores the source, compiles it (unless an artifact for it exists),
    /// loads the code and (in-process) instantiates it once, to catch what
    /// the pool cannot hold. Runs without the writer lock.
    async fn build(
        self: &Arc<Self>,
        abi: inspect::Abi,
        source: SourceHash,
        wasm: Bytes,
        name: &str,
        settings: &Settings,
    ) -> Result<Built, DeployError> {
        let key = self.runtime.artifacts.compiled_key(&source);
        let host = self.clone();
        let function = name.to_owned();
        let slot = self.runtime.code.slot(&key, abi, source.clone(), name);
        let to_load = slot.clone();
        let (code, compile_ms, artifact_bytes) =
            tokio::task::spawn_blocking(move || -> Result<_, DeployError> {
                host.runtime.artifacts.put_source(&wasm).map_err(|e| {
                    HostFailure::logged(format!("storing the upload of `{function}` failed"), e)
                })?;
                CrashPoint::SourceWritten.reached();
                let mut compile_ms = None;
                let mut turn = to_load.blocking_turn();
                let code = host.runtime.load_code(&to_load, &mut turn, || {
                    if let Ok(path) = host.runtime.artifacts.verified_compiled(&key) {
                        return Ok(path);
                    }
                    let started = Instant::now();
                    let path = host
                        .runtime
                        .compile_and_store(abi, &wasm, &key, &function)?;
                    CrashPoint::ArtifactWritten.reached();
                    compile_ms =
                        Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
                    Ok(path)
                })?;
                let artifact_bytes = std::fs::metadata(host.runtime.artifacts.compiled_path(&key))
                    .map_or(0, |m| m.len());
                Ok((code, compile_ms, artifact_bytes))
            })
            .await
            .map_err(|e| HostFailure::logged(format!("compiling `{name}` failed"), e))??;
        if self.options.trial_instantiation {
            let outbound = settings.allow_outbound.clone().into();
            let services = self.services(name, settings, Arc::new(FunctionMetrics::detached()));
            code.instantiate(
                &Arc::from(name),
                settings,
                &outbound,
                &services,
                &self.runtime.guest_memory,
            )
            .await
            .map_err(|e| DeployError::Instantiate(e.to_string()))?;
        }
        Ok(Built {
            abi,
            source,
            code: slot,
            compile_ms,
            artifact_bytes,
        })
    }

    /// Numbers, records and publishes a built version. In a cluster,
    /// another host's deploy of the same function may commit first: then
    /// this one catches up and numbers its version after that one.
    async fn publish_version(
        self: &Arc<Self>,
        name: &str,
        placement: &Placement,
        settings: Settings,
        built: Built,
    ) -> Result<DeployReport, DeployError> {
        let mut conflicts = 0;
        loop {
            let published = self
                .commit_version(name, placement, &settings, &built)
                .await;
            match published {
                Ok((report, committed)) => {
                    self.settle(committed).await;
                    return Ok(report);
                }
                Err(DeployError::Conflict(_)) if conflicts < MAX_DEPLOY_CONFLICTS => {
                    conflicts += 1;
                    self.shared.catch_up().await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Numbers, records and commits a built version, under the writer lock.
    async fn commit_version(
        self: &Arc<Self>,
        name: &str,
        placement: &Placement,
        settings: &Settings,
        built: &Built,
    ) -> Result<(DeployReport, Committed), DeployError> {
        let _writer = self.writer.lock().await;
        let current = self.registry.snapshot_full();
        let existing = current.get(name);
        let route = match existing {
            Some(entry) if placement.keep_route => entry.record.route.clone(),
            _ => placement.route.to_string(),
        };
        let moved_from = match existing {
            Some(entry) if entry.record.route != route => {
                if !placement.move_route {
                    return Err(DeployError::RouteMove {
                        name: name.to_owned(),
                        from: entry.record.route.clone(),
                        to: route,
                    });
                }
                Some(entry.record.route.clone())
            }
            _ => None,
        };
        self.check_route(&parse_route(&route)?, name)?;
        let (take_traffic, origin) = (placement.take_traffic, &placement.origin);
        let number = existing.map_or(1, |e| e.record.next_version());
        let created_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let shown = settings.to_raw();
        let info = VersionInfo {
            name: Arc::from(name),
            version: number,
            settings: settings.clone(),
        };
        let function = self.new_version(info, built.code.clone());
        let version = VersionRecord {
            number,
            source: built.source.as_str().to_owned(),
            abi: built.abi,
            created_unix,
            settings: shown.clone(),
            held_traffic: false,
            origin: origin.clone(),
            composition: placement.composition.clone(),
        };
        let mut record = existing.map_or_else(
            || FunctionRecord {
                name: name.to_owned(),
                route: route.clone(),
                versions: Vec::new(),
                traffic: Vec::new(),
                previous_traffic: Vec::new(),
            },
            |e| e.record.clone(),
        );
        record.route = route;
        record.versions.push(version);
        if take_traffic || record.traffic.is_empty() {
            record.shift_traffic(vec![TrafficShare {
                version: number,
                weight: 100,
            }]);
        }
        publish::apply_retention(&mut record, self.options.keep_versions);

        let mut versions: BTreeMap<u32, Arc<Function>> =
            existing.map(|e| e.versions.clone()).unwrap_or_default();
        versions.insert(number, Arc::new(function));
        versions.retain(|n, _| record.version(*n).is_some());
        let committed = match self.commit(&current, record.clone(), Some(versions)).await {
            Ok(committed) => committed,
            Err(e) => {
                self.metrics.forget_version(name, number);
                return Err(e);
            }
        };
        tracing::info!(
            function = name,
            version = number,
            abi = built.abi.as_str(),
            compiled = built.compile_ms.is_some(),
            "deployed"
        );
        let report = DeployReport {
            name: name.to_owned(),
            route: record.route,
            version: number,
            abi: built.abi,
            source: built.source.as_str().to_owned(),
            compiled: built.compile_ms.is_some(),
            compile_ms: built.compile_ms,
            artifact_bytes: built.artifact_bytes,
            settings: shown,
            kept_from: placement.kept_from,
            kept_settings: placement
                .kept_settings
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
            moved_from,
            recomposed: Vec::new(),
        };
        Ok((report, committed))
    }
}

/// Longest origin a version keeps.
const MAX_ORIGIN_BYTES: usize = 1024;

/// Refuses an origin that is long or holds control characters.
fn check_origin(origin: &str) -> Result<(), DeployError> {
    if origin.is_empty() || origin.len() > MAX_ORIGIN_BYTES || origin.chars().any(char::is_control)
    {
        return Err(DeployError::BadRequest(format!(
            "`origin` must be 1 to {MAX_ORIGIN_BYTES} bytes of printable text, such as `oci://registry/repo@sha256:…`"
        )));
    }
    Ok(())
}

/// A route as typed, checked.
fn parse_route(text: &str) -> Result<Route, DeployError> {
    Route::parse(text).map_err(|e| {
        DeployError::InvalidSettings(SettingsError {
            setting: "route".into(),
            value: text.to_owned(),
            expected: format!("a path prefix such as `/hello` ({})", e.reason()),
        })
    })
}
