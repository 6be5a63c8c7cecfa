//! The deploy path: upload → checks → compile → store → pre-link → publish.
//!
//! Changes to the deployed set are serialized by one writer lock, held for a
//! whole deploy, so two deploys never race on a record or an artifact.
//! Requests never take it. The order of effects makes a deploy atomic: the
//! source and artifact are written (atomically) first, then the record is
//! replaced (atomically), then the new snapshot is published. A failure at any
//! step changes nothing that was deployed.

use crate::artifact::SourceHash;
use crate::error::DeployError;
use crate::function::{Function, VersionInfo};
use crate::host::Host;
use crate::inspect;
use crate::record::{Abi, FunctionRecord, TrafficShare, VersionRecord, validate_name};
use crate::registry::{FunctionEntry, Snapshot};
use crate::settings::{RawSettings, Settings};
use crate::traffic;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Options of one deploy.
#[derive(Debug, Clone, Copy)]
pub struct DeployOptions {
    /// Give the new version all traffic (the default). Off deploys it for
    /// testing by header only (blue/green).
    pub take_traffic: bool,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions { take_traffic: true }
    }
}

/// What a deploy did.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    /// The function.
    pub name: String,
    /// The new version's number.
    pub version: u32,
    /// Its ABI.
    pub abi: Abi,
    /// Hash of the uploaded binary.
    pub source: String,
    /// Whether it was compiled now (false: an identical binary's artifact
    /// was reused).
    pub compiled: bool,
    /// Compile time, when compiled.
    pub compile_ms: Option<u64>,
    /// Size of the compiled artifact.
    pub artifact_bytes: u64,
    /// The settings it runs with.
    pub settings: RawSettings,
}

/// One version, as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionSummary {
    /// Its number.
    pub number: u32,
    /// Hash of its binary.
    pub source: String,
    /// Its ABI.
    pub abi: Abi,
    /// Deploy time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// Its effective settings.
    pub settings: RawSettings,
    /// Percent of traffic it takes.
    pub weight: u8,
    /// False when it could not be loaded at start-up.
    pub loaded: bool,
}

/// A function, as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionInfo {
    /// Its name.
    pub name: String,
    /// Its route.
    pub route: String,
    /// Its versions, oldest first.
    pub versions: Vec<VersionSummary>,
    /// How traffic splits.
    pub traffic: Vec<TrafficShare>,
}

impl FunctionInfo {
    /// True when one version takes all traffic and it runs the binary with
    /// hash `source` under exactly `settings` (canonical form, with route) —
    /// i.e. deploying them again would change nothing.
    pub fn serves(&self, source: &str, settings: &RawSettings) -> bool {
        let [only] = self.traffic.as_slice() else {
            return false;
        };
        // Compared validated, so `64MiB` and `67108864`, or an env list and
        // table with the same pairs, are the same settings.
        let wanted = settings.check();
        self.versions
            .iter()
            .find(|v| v.number == only.version)
            .is_some_and(|v| v.source == source && wanted.is_ok() && v.settings.check() == wanted)
    }

    fn of(entry: &FunctionEntry) -> FunctionInfo {
        let weight = |n| {
            entry
                .record
                .traffic
                .iter()
                .find(|s| s.version == n)
                .map_or(0, |s| s.weight)
        };
        let versions = entry
            .record
            .versions
            .iter()
            .map(|v| {
                let loaded = entry.versions.get(&v.number);
                let mut settings =
                    loaded.map_or_else(|| v.settings.clone(), |f| f.settings.to_raw());
                settings.route = Some(entry.record.route.clone());
                VersionSummary {
                    number: v.number,
                    source: v.source.clone(),
                    abi: v.abi,
                    created_unix: v.created_unix,
                    settings,
                    weight: weight(v.number),
                    loaded: loaded.is_some(),
                }
            })
            .collect();
        FunctionInfo {
            name: entry.record.name.clone(),
            route: entry.record.route.clone(),
            versions,
            traffic: entry.record.traffic.clone(),
        }
    }
}

impl Host {
    /// Deploys `wasm` as a new version of function `name`.
    pub async fn deploy(
        &self,
        name: &str,
        wasm: Bytes,
        raw: RawSettings,
        options: DeployOptions,
    ) -> Result<DeployReport, DeployError> {
        validate_name(name).map_err(DeployError::InvalidName)?;
        let limit = self.inner.config.max_upload_bytes;
        if wasm.len() as u64 > limit {
            return Err(DeployError::TooLarge { limit });
        }
        let settings = Settings::validate(&raw)?;
        let abi = inspect::inspect(&wasm)?;

        let _writer = self.inner.writer.lock().await;
        let current = self.inner.registry.snapshot_full();
        if let Some(owner) = current.route_owner(&settings.route, name) {
            return Err(DeployError::RouteTaken {
                route: settings.route.to_string(),
                owner: owner.to_owned(),
            });
        }

        let installed = self
            .install(name, wasm, abi, settings, options, &current)
            .await;
        if installed.is_err() {
            // Whatever this deploy stored is referenced by nothing: remove it.
            self.collect_garbage(current.entries()).await;
        }
        installed
    }

    /// Compiles, stores, loads and publishes a checked upload. Call with the
    /// writer lock held; on error, files it wrote may be left for
    /// [`Host::collect_garbage`].
    async fn install(
        &self,
        name: &str,
        wasm: Bytes,
        abi: Abi,
        settings: Settings,
        options: DeployOptions,
        current: &Snapshot,
    ) -> Result<DeployReport, DeployError> {
        let source = SourceHash::of(&wasm);
        let key = self.inner.artifacts.compiled_key(&source);
        let host = self.clone();
        let build_key = key.clone();
        let (path, compile_ms) = tokio::task::spawn_blocking(move || -> Result<_, DeployError> {
            let storage = |e: crate::artifact::ArtifactError| DeployError::Storage(e.to_string());
            host.inner.artifacts.put_source(&wasm).map_err(storage)?;
            if let Ok(path) = host.inner.artifacts.verified_compiled(&build_key) {
                return Ok((path, None));
            }
            let started = Instant::now();
            let path = host.compile_and_store(abi, &wasm, &build_key)?;
            Ok((path, Some(started.elapsed().as_millis() as u64)))
        })
        .await
        .map_err(|e| DeployError::Storage(format!("compile task failed: {e}")))??;
        let artifact_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

        let existing = current.get(name);
        let number = existing.map_or(1, |e| e.record.next_version());
        let created_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let info = VersionInfo {
            name: Arc::from(name),
            version: number,
            abi,
            source: source.clone(),
            settings: settings.clone(),
            created_unix,
        };
        let host = self.clone();
        let meter = self.meter(name, number);
        let function = tokio::task::spawn_blocking(move || {
            let code = host.load_code(&key, abi, || Ok(path))?;
            Ok::<_, DeployError>(Function::new(info, code, meter))
        })
        .await
        .map_err(|e| DeployError::Storage(format!("load task failed: {e}")))??;
        // Instantiate once now, to catch what the pool cannot hold.
        function
            .instantiate()
            .await
            .map_err(|e| DeployError::Instantiate(e.to_string()))?;

        let mut stored_settings = settings.to_raw();
        stored_settings.route = None;
        let version = VersionRecord {
            number,
            source: source.as_str().to_owned(),
            abi,
            created_unix,
            settings: stored_settings,
        };
        let mut record = existing.map_or_else(
            || FunctionRecord {
                name: name.to_owned(),
                route: settings.route.to_string(),
                versions: Vec::new(),
                traffic: Vec::new(),
                previous_traffic: Vec::new(),
            },
            |e| e.record.clone(),
        );
        record.route = settings.route.to_string();
        record.versions.push(version);
        if options.take_traffic || record.traffic.is_empty() {
            record.previous_traffic = std::mem::take(&mut record.traffic);
            record.traffic = vec![TrafficShare {
                version: number,
                weight: 100,
            }];
        }
        apply_retention(&mut record, self.inner.config.keep_versions);

        let mut versions: BTreeMap<u32, Arc<Function>> =
            existing.map(|e| e.versions.clone()).unwrap_or_default();
        versions.insert(number, Arc::new(function));
        versions.retain(|n, _| record.version(*n).is_some());
        self.save_and_publish(current, record.clone(), Some(versions))
            .await?;
        tracing::info!(
            function = name,
            version = number,
            abi = abi.as_str(),
            compiled = compile_ms.is_some(),
            "deployed"
        );
        let mut shown = settings.to_raw();
        shown.route = Some(record.route);
        Ok(DeployReport {
            name: name.to_owned(),
            version: number,
            abi,
            source: source.as_str().to_owned(),
            compiled: compile_ms.is_some(),
            compile_ms,
            artifact_bytes,
            settings: shown,
        })
    }

    /// Removes function `name` and every version of it. Requests already
    /// running finish.
    pub async fn remove(&self, name: &str) -> Result<(), DeployError> {
        let _writer = self.inner.writer.lock().await;
        let current = self.inner.registry.snapshot_full();
        if current.get(name).is_none() {
            return Err(DeployError::UnknownFunction(name.to_owned()));
        }
        let host = self.clone();
        let owned = name.to_owned();
        tokio::task::spawn_blocking(move || host.inner.records.remove(&owned))
            .await
            .map_err(|e| DeployError::Storage(e.to_string()))?
            .map_err(|e| {
                DeployError::Storage(format!("removing the record of `{name}` failed: {e}"))
            })?;
        let mut entries = current.entries().clone();
        entries.remove(name);
        self.publish(entries).await;
        self.forget(name);
        tracing::info!(function = name, "removed");
        Ok(())
    }

    /// Splits function `name`'s traffic between its versions. The previous
    /// split is kept for [`Host::rollback`]. Requests in flight finish where
    /// they started.
    pub async fn set_traffic(
        &self,
        name: &str,
        shares: Vec<TrafficShare>,
    ) -> Result<FunctionInfo, DeployError> {
        let _writer = self.inner.writer.lock().await;
        let current = self.inner.registry.snapshot_full();
        let entry = current
            .get(name)
            .ok_or_else(|| DeployError::UnknownFunction(name.to_owned()))?;
        let loaded: BTreeSet<u32> = entry.versions.keys().copied().collect();
        traffic::check_split(&shares, &loaded).map_err(DeployError::InvalidTraffic)?;
        let mut record = entry.record.clone();
        if record.traffic != shares {
            record.previous_traffic = std::mem::replace(&mut record.traffic, shares);
        }
        self.save_and_publish(&current, record, None).await?;
        tracing::info!(function = name, "traffic changed");
        self.function(name)
            .ok_or_else(|| DeployError::UnknownFunction(name.to_owned()))
    }

    /// Moves all of function `name`'s traffic back to the split before the
    /// last deploy or traffic change, in one atomic step.
    pub async fn rollback(&self, name: &str) -> Result<FunctionInfo, DeployError> {
        let _writer = self.inner.writer.lock().await;
        let current = self.inner.registry.snapshot_full();
        let entry = current
            .get(name)
            .ok_or_else(|| DeployError::UnknownFunction(name.to_owned()))?;
        let mut record = entry.record.clone();
        if record.previous_traffic.is_empty() {
            return Err(DeployError::InvalidTraffic(format!(
                "function `{name}` has no previous traffic split to roll back to"
            )));
        }
        let loaded: BTreeSet<u32> = entry.versions.keys().copied().collect();
        traffic::check_split(&record.previous_traffic, &loaded)
            .map_err(|e| DeployError::InvalidTraffic(format!("cannot roll back: {e}")))?;
        let previous = std::mem::take(&mut record.previous_traffic);
        record.previous_traffic = std::mem::replace(&mut record.traffic, previous);
        self.save_and_publish(&current, record, None).await?;
        tracing::info!(function = name, "rolled back");
        self.function(name)
            .ok_or_else(|| DeployError::UnknownFunction(name.to_owned()))
    }

    /// Every deployed function.
    pub fn functions(&self) -> Vec<FunctionInfo> {
        self.inner
            .registry
            .snapshot()
            .entries()
            .values()
            .map(|e| FunctionInfo::of(e))
            .collect()
    }

    /// One deployed function.
    pub fn function(&self, name: &str) -> Option<FunctionInfo> {
        self.inner
            .registry
            .snapshot()
            .get(name)
            .map(|e| FunctionInfo::of(e))
    }

    /// Saves `record` durably, then publishes a snapshot where it replaces the
    /// function of the same name. `versions` are its loaded versions (`None`
    /// keeps the current ones). Call with the writer lock held.
    pub(crate) async fn save_and_publish(
        &self,
        current: &Snapshot,
        record: FunctionRecord,
        versions: Option<BTreeMap<u32, Arc<Function>>>,
    ) -> Result<(), DeployError> {
        let route = crate::route::Route::parse(&record.route)
            .map_err(|e| DeployError::Storage(e.to_string()))?;
        let versions = versions
            .or_else(|| current.get(&record.name).map(|e| e.versions.clone()))
            .unwrap_or_default();
        let host = self.clone();
        let to_save = record.clone();
        tokio::task::spawn_blocking(move || host.inner.records.save(&to_save))
            .await
            .map_err(|e| DeployError::Storage(e.to_string()))?
            .map_err(|e| {
                DeployError::Storage(format!(
                    "saving the record of `{}` failed: {e}",
                    record.name
                ))
            })?;
        let mut entries = current.entries().clone();
        let name = record.name.clone();
        entries.insert(name, Arc::new(FunctionEntry::new(record, route, versions)));
        self.publish(entries).await;
        Ok(())
    }

    /// Publishes a new deployed set and removes artifacts it no longer needs.
    async fn publish(&self, entries: BTreeMap<String, Arc<FunctionEntry>>) {
        self.inner.metrics.set_functions(entries.len());
        self.collect_garbage(&entries).await;
        self.inner.registry.publish(Snapshot::new(entries));
    }

    /// Removes every source and artifact that no version in `entries` uses.
    /// Call with the writer lock held.
    pub(crate) async fn collect_garbage(&self, entries: &BTreeMap<String, Arc<FunctionEntry>>) {
        let keep: HashSet<SourceHash> = entries
            .values()
            .flat_map(|e| {
                e.record
                    .versions
                    .iter()
                    .filter_map(VersionRecord::source_hash)
            })
            .collect();
        let host = self.clone();
        let cleaned =
            tokio::task::spawn_blocking(move || host.inner.artifacts.retain_sources(&keep)).await;
        if let Ok(Err(e)) = cleaned {
            tracing::warn!(error = %e, "removing unused artifacts failed");
        }
    }
}

/// Keeps the newest `keep` versions, plus every version that takes traffic
/// or is the rollback target.
fn apply_retention(record: &mut FunctionRecord, keep: usize) {
    let newest: Vec<u32> = {
        let mut numbers: Vec<u32> = record.versions.iter().map(|v| v.number).collect();
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        numbers.into_iter().take(keep.max(1)).collect()
    };
    let needed: HashSet<u32> = record
        .traffic
        .iter()
        .chain(&record.previous_traffic)
        .map(|s| s.version)
        .chain(newest)
        .collect();
    record.versions.retain(|v| needed.contains(&v.number));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_with(versions: &[u32], traffic: &[(u32, u8)]) -> FunctionRecord {
        FunctionRecord {
            name: "f".into(),
            route: "/f".into(),
            versions: versions
                .iter()
                .map(|&number| VersionRecord {
                    number,
                    source: "a".repeat(64),
                    abi: Abi::WasiHttp,
                    created_unix: 0,
                    settings: RawSettings::default(),
                })
                .collect(),
            traffic: traffic
                .iter()
                .map(|&(version, weight)| TrafficShare { version, weight })
                .collect(),
            previous_traffic: vec![],
        }
    }

    #[test]
    fn retention_keeps_the_newest_and_those_with_traffic() {
        let mut r = record_with(&[1, 2, 3, 4, 5], &[(1, 100)]);
        apply_retention(&mut r, 2);
        let kept: Vec<u32> = r.versions.iter().map(|v| v.number).collect();
        assert_eq!(kept, vec![1, 4, 5]);
    }

    #[test]
    fn retention_keeps_the_rollback_target() {
        let mut r = record_with(&[1, 2, 3], &[(3, 100)]);
        r.previous_traffic = vec![TrafficShare {
            version: 1,
            weight: 100,
        }];
        apply_retention(&mut r, 1);
        let kept: Vec<u32> = r.versions.iter().map(|v| v.number).collect();
        assert_eq!(kept, vec![1, 3]);
    }
}
