//! The converger: every host watches the desired state and makes its
//! registry match it.
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
use crate::deploy::record::FunctionRecord;
use crate::host::{Host, HostInner};
use async_nats::jetstream::kv as js_kv;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the bucket's last revision is asked for (for `/healthz`).
const POLL: Duration = Duration::from_secs(1);

/// Converges the host behind `inner` until it is dropped.
pub(super) async fn run(inner: Weak<HostInner>) {
    loop {
        let Some(cluster) = inner.upgrade().and_then(|i| i.cluster.clone()) else {
            return;
        };
        let ended = follow(&inner, &cluster).await;
        cluster.synced.store(false, Ordering::Release);
        match ended {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!("following the cluster's desired state stopped: {e}; retrying")
            }
        }
        drop(cluster);
        tokio::time::sleep(POLL).await;
    }
}

/// Follows the desired state until the watch breaks (an error) or the host
/// is dropped (`Ok`).
async fn follow(inner: &Weak<HostInner>, cluster: &Cluster) -> Result<(), ClusterError> {
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
        let Some(host) = upgrade(inner) else {
            return Ok(());
        };
        remove_unseen(&host, cluster, &seen).await;
        caught_up = true;
    }
    let mut poll = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            entry = entries.next() => {
                let entry = entry
                    .ok_or_else(|| cluster.unreachable("the watch ended"))?
                    .map_err(|e| cluster.unreachable(e))?;
                let Some(host) = upgrade(inner) else { return Ok(()) };
                cluster.latest.fetch_max(entry.revision, Ordering::AcqRel);
                seen.insert(entry.key.clone());
                apply(&host, cluster, &entry).await;
                if !caught_up && entry.delta == 0 {
                    remove_unseen(&host, cluster, &seen).await;
                    caught_up = true;
                }
            }
            _ = poll.tick() => {
                if upgrade(inner).is_none() {
                    return Ok(());
                }
                if let Ok(state) = cluster.stream_state(bucket).await {
                    cluster.latest.fetch_max(state.last_sequence, Ordering::AcqRel);
                }
            }
        }
    }
}

fn upgrade(inner: &Weak<HostInner>) -> Option<Host> {
    inner.upgrade().map(|inner| Host { inner })
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
async fn apply(host: &Host, cluster: &Cluster, entry: &js_kv::Entry) {
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
        host.unpublish(name).await;
        applied(cluster, name, entry.revision, false);
        return;
    }
    match serde_json::from_slice::<FunctionRecord>(&entry.value) {
        Ok(record) if record.name == name => {
            host.converge_record(cluster, record).await;
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
async fn remove_unseen(host: &Host, cluster: &Cluster, seen: &HashSet<String>) {
    let local: Vec<String> = host
        .inner
        .registry
        .snapshot()
        .entries()
        .keys()
        .cloned()
        .collect();
    for name in local.iter().filter(|n| !seen.contains(*n)) {
        tracing::info!(function = %name, "not in the cluster's desired state: removing it here");
        host.unpublish(name).await;
    }
    cluster.synced.store(true, Ordering::Release);
}

impl Host {
    /// Makes function `record.name` what `record` says: fetches missing
    /// sources, loads what changed, saves and publishes.
    async fn converge_record(&self, cluster: &Cluster, record: FunctionRecord) {
        let current = self.inner.registry.snapshot_full();
        let existing = current.get(&record.name).cloned();
        if existing.as_ref().is_some_and(|e| e.record == record) {
            return;
        }
        let sources: Vec<_> = record
            .versions
            .iter()
            .filter_map(|v| v.source_hash())
            .collect();
        let _held: Vec<_> = sources.iter().map(|s| self.inner.pending.hold(s)).collect();
        for source in &sources {
            if self.inner.artifacts.source_path(source).exists() {
                continue;
            }
            let stored = match cluster.get_source(source).await {
                Ok(wasm) => {
                    let host = self.clone();
                    tokio::task::spawn_blocking(move || host.inner.artifacts.put_source(&wasm))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()))
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = stored {
                tracing::error!(function = %record.name, source = source.as_str(), "fetching a source from the cluster failed: {e}");
            }
        }
        let host = self.clone();
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
                    host.load_version(&to_load, version).map(Arc::new)
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
            tracing::error!(function = %record.name, "loading a cluster record's versions panicked");
            return;
        };
        let _writer = self.inner.writer.lock().await;
        let current = self.inner.registry.snapshot_full();
        let name = record.name.clone();
        if let Err(e) = self
            .save_and_publish(&current, record, Some(versions))
            .await
        {
            tracing::error!(function = %name, "publishing a cluster record failed: {e}");
        } else {
            tracing::info!(function = %name, "converged on the cluster's record");
        }
    }

    /// Removes function `name` from this host (its record file, the
    /// registry, its logs, usage and local secrets), if it has it.
    async fn unpublish(&self, name: &str) {
        let _writer = self.inner.writer.lock().await;
        let current = self.inner.registry.snapshot_full();
        if current.get(name).is_none() {
            return;
        }
        if let Err(e) = self.unpublish_locked(&current, name).await {
            tracing::error!(
                function = name,
                "removing a function the cluster removed failed: {e}"
            );
        }
    }
}
