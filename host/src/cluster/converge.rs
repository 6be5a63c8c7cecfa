//! The converger: every host watches the desired state and makes its
//! registry match it, through the deployer (loading versions, saving and
//! publishing under its writer lock, as a local change would).
//!
//! The watch starts with the last revision of every function (removals
//! included) and then follows each change. A changed record's sources come
//! from the object store into the host's own source store, its versions are
//! loaded (compiled only if this host has no artifact for the source and
//! engine), and the record is saved locally and published, under the
//! writer lock, as a local change would be. Versions whose record did not
//! change keep their loaded code. A removed record is unpublished, with the
//! function's local logs, usage and secrets. Once caught up, functions the
//! cluster does not have are removed too. When the watch breaks (NATS went
//! away), the host keeps serving and starts over once NATS is back.

use super::{Cluster, ClusterError};
use crate::backplane::records::FunctionRecord;
use crate::deploy::Deployer;
use crate::deploy::publish::PendingSource;
use async_nats::jetstream::kv as js_kv;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use wisp_spec::source::SourceHash;

/// How often the bucket's last revision is asked for (for `/healthz`).
const POLL: Duration = Duration::from_secs(1);

/// Converges through `deployer` until it is dropped.
pub(super) async fn run(cluster: Arc<Cluster>, deployer: Weak<Deployer>) {
    loop {
        if deployer.strong_count() == 0 {
            return;
        }
        let ended = follow(&deployer, &cluster).await;
        cluster.synced.store(false, Ordering::Release);
        match ended {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!("following the cluster's desired state stopped: {e}; retrying")
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Follows the desired state until the watch breaks (an error) or the
/// deployer is dropped (`Ok`).
async fn follow(deployer: &Weak<Deployer>, cluster: &Cluster) -> Result<(), ClusterError> {
    cluster.connected_for_write().await?;
    let bucket = cluster.functions().await?;
    let state = cluster.stream_state(bucket).await?;
    cluster
        .latest
        .fetch_max(state.last_sequence, Ordering::AcqRel);
    let mut entries = bucket
        .watch_with_history(">")
        .await
        .map_err(|e| cluster.unreachable(e))?;
    let mut seen = HashSet::new();
    let mut caught_up = false;
    if state.messages == 0 {
        let Some(deployer) = deployer.upgrade() else {
            return Ok(());
        };
        remove_unseen(&deployer, cluster, &seen).await;
        caught_up = true;
    }
    let mut poll = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            entry = entries.next() => {
                let entry = entry
                    .ok_or_else(|| cluster.unreachable("the watch ended"))?
                    .map_err(|e| cluster.unreachable(e))?;
                let Some(deployer) = deployer.upgrade() else { return Ok(()) };
                cluster.latest.fetch_max(entry.revision, Ordering::AcqRel);
                seen.insert(entry.key.clone());
                apply(&deployer, cluster, &entry).await;
                if !caught_up && entry.delta == 0 {
                    remove_unseen(&deployer, cluster, &seen).await;
                    caught_up = true;
                }
            }
            _ = poll.tick() => {
                if deployer.strong_count() == 0 {
                    return Ok(());
                }
                if let Ok(state) = cluster.stream_state(bucket).await {
                    cluster.latest.fetch_max(state.last_sequence, Ordering::AcqRel);
                }
            }
        }
    }
}

/// Marks `revision` of function `name` applied (`None`: removed).
fn applied(cluster: &Cluster, name: &str, revision: u64, present: bool) {
    {
        let mut revisions = cluster.revisions.lock().unwrap_or_else(|p| p.into_inner());
        if present {
            revisions.insert(name.to_owned(), revision);
        } else {
            revisions.remove(name);
        }
    }
    cluster.applied.send_modify(|r| *r = (*r).max(revision));
}

/// Applies one change of the desired state. A record is checked as the
/// admin API checks a deploy — its name here, its route and traffic when
/// published, each version's settings (and this host's policy on them)
/// when loaded — and refused, logged, when it fails: anyone who can write
/// to NATS must not get more than the admin API would give.
async fn apply(deployer: &Arc<Deployer>, cluster: &Cluster, entry: &js_kv::Entry) {
    let name = entry.key.as_str();
    if let Err(why) = wisp_spec::name::validate_name(name) {
        tracing::error!(
            key = name,
            "a cluster record under an invalid name is refused: {why}"
        );
        applied(cluster, name, entry.revision, false);
        return;
    }
    if entry.operation != js_kv::Operation::Put {
        unpublish(deployer, name).await;
        applied(cluster, name, entry.revision, false);
        return;
    }
    match serde_json::from_slice::<FunctionRecord>(&entry.value) {
        Ok(record) if record.name == name => {
            converge_record(deployer, cluster, record).await;
            applied(cluster, name, entry.revision, true);
        }
        Ok(record) => {
            tracing::error!(key = name, named = %record.name, "a cluster record is stored under another function's name; skipped");
            applied(cluster, name, entry.revision, false);
        }
        Err(e) => {
            tracing::error!(
                function = name,
                "a cluster record cannot be read; skipped: {e}"
            );
            applied(cluster, name, entry.revision, false);
        }
    }
}

/// Removes every local function the cluster did not list.
async fn remove_unseen(deployer: &Arc<Deployer>, cluster: &Cluster, seen: &HashSet<String>) {
    for name in names(deployer).iter().filter(|n| !seen.contains(*n)) {
        tracing::info!(function = %name, "not in the cluster's desired state: removing it here");
        unpublish(deployer, name).await;
    }
    cluster.synced.store(true, Ordering::Release);
}

/// Makes function `record.name` what `record` says: fetches the sources
/// this host lacks from the object store, then has the deployer apply it.
async fn converge_record(deployer: &Arc<Deployer>, cluster: &Cluster, record: FunctionRecord) {
    if has_record(deployer, &record) {
        return;
    }
    let sources: Vec<_> = record
        .versions
        .iter()
        .flat_map(|v| v.kept_sources())
        .collect();
    let _held = hold(deployer, &sources);
    for source in &sources {
        if has_source(deployer, source) {
            continue;
        }
        let stored = match cluster.get_source(source).await {
            Ok(wasm) => store_source(deployer, wasm).await,
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = stored {
            tracing::error!(function = %record.name, source = source.as_str(), "fetching a source from the cluster failed: {e}");
        }
    }
    apply_record(deployer, record).await;
}

/// True when function `record.name` is already exactly `record`.
fn has_record(deployer: &Deployer, record: &FunctionRecord) -> bool {
    let current = deployer.registry.snapshot();
    current
        .get(&record.name)
        .is_some_and(|e| e.record == *record)
}

/// The names of every function published here.
fn names(deployer: &Deployer) -> Vec<String> {
    deployer
        .registry
        .snapshot()
        .entries()
        .keys()
        .cloned()
        .collect()
}

/// Keeps `sources` from garbage collection until the holds drop.
fn hold<'a>(deployer: &'a Deployer, sources: &[SourceHash]) -> Vec<PendingSource<'a>> {
    sources.iter().map(|s| deployer.pending.hold(s)).collect()
}

/// True when this host stores source `source`.
fn has_source(deployer: &Deployer, source: &SourceHash) -> bool {
    deployer.runtime.artifacts.source_path(source).exists()
}

/// Stores a source fetched from elsewhere.
async fn store_source(deployer: &Deployer, wasm: Vec<u8>) -> Result<(), String> {
    let runtime = deployer.runtime.clone();
    tokio::task::spawn_blocking(move || runtime.artifacts.put_source(&wasm))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()))
}

/// Makes function `record.name` what `record` says: loads what changed,
/// saves and publishes. Hold its sources ([`hold`]) first.
async fn apply_record(deployer: &Arc<Deployer>, record: FunctionRecord) {
    let existing = deployer.registry.snapshot_full().get(&record.name).cloned();
    if existing.as_ref().is_some_and(|e| e.record == record) {
        return;
    }
    let loader = deployer.clone();
    let to_load = record.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let mut versions = BTreeMap::new();
        for version in &to_load.versions {
            let kept = existing.as_ref().and_then(|e| {
                (e.record.version(version.number) == Some(version))
                    .then(|| e.versions.get(&version.number).cloned())
                    .flatten()
            });
            match kept.map(Ok).unwrap_or_else(|| {
                loader.load_version(&to_load, version).map(Arc::new)
            }) {
                Ok(function) => {
                    versions.insert(version.number, function);
                }
                Err(e) => tracing::error!(function = %to_load.name, version = version.number, "version not loaded: {e}"),
            }
        }
        versions
    })
    .await;
    let Ok(versions) = loaded else {
        tracing::error!(function = %record.name, "loading a shared record's versions panicked");
        return;
    };
    let _writer = deployer.writer.lock().await;
    let current = deployer.registry.snapshot_full();
    let name = record.name.clone();
    if let Err(e) = deployer
        .save_and_publish(&current, record, Some(versions))
        .await
    {
        tracing::error!(function = %name, "publishing a shared record failed: {e}");
    } else {
        tracing::info!(function = %name, "converged on the shared record");
    }
}

/// Removes function `name` from this host (its record file, the
/// registry, its logs, usage and local secrets, then its own SQLite
/// database, which only this host had), if it has it.
async fn unpublish(deployer: &Arc<Deployer>, name: &str) {
    {
        let _writer = deployer.writer.lock().await;
        let current = deployer.registry.snapshot_full();
        if current.get(name).is_none() {
            return;
        }
        if let Err(e) = deployer.unpublish_locked(&current, name).await {
            tracing::error!(
                function = name,
                "removing a function the shared state removed failed: {e}"
            );
            return;
        }
    }
    // Not under the writer: a statement in flight holds its database up
    // to its function's timeout.
    deployer.delete_database(name).await;
}
