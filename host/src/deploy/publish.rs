//! Making a change visible: save the record, publish the snapshot, collect
//! the garbage, keep the versions retention wants.
//!
//! Everything here runs under the writer lock. Garbage collection removes
//! every source and artifact no record uses, except the sources of deploys
//! still compiling ([`Pending`]), which have stored files but no record yet.

use super::Deployer;
use crate::backplane::Committed;
use crate::backplane::records::{FunctionRecord, VersionRecord};
use crate::disk::crash_point::CrashPoint;
use crate::error::{DeployError, HostFailure};
use crate::registry::{FunctionEntry, Snapshot};
use crate::runtime::function::Function;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use wisp_spec::route::Route;
use wisp_spec::source::SourceHash;

/// Sources of deploys in progress, counted (two deploys may upload the
/// same binary).
#[derive(Default)]
pub(crate) struct Pending {
    sources: Mutex<HashMap<SourceHash, usize>>,
}

/// Keeps one pending source from garbage collection until dropped.
pub(crate) struct PendingSource<'a> {
    pending: &'a Pending,
    source: SourceHash,
}

impl Pending {
    /// Marks `source` as in use by a deploy in progress.
    pub(crate) fn hold(&self, source: &SourceHash) -> PendingSource<'_> {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        *sources.entry(source.clone()).or_default() += 1;
        PendingSource {
            pending: self,
            source: source.clone(),
        }
    }

    fn sources(&self) -> Vec<SourceHash> {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.keys().cloned().collect()
    }
}

impl Drop for PendingSource<'_> {
    fn drop(&mut self) {
        let mut sources = self
            .pending
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = sources.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                sources.remove(&self.source);
            }
        }
    }
}

impl Deployer {
    /// Commits `record`: to the shared desired state when there is one
    /// (compare-and-set on the revision this host applied), else to the
    /// data dir and the registry ([`Deployer::save_and_publish`]). Call
    /// with the writer lock held, then [`Deployer::settle`] after
    /// releasing it.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        current: &Snapshot,
        record: FunctionRecord,
        versions: Option<BTreeMap<u32, Arc<Function>>>,
    ) -> Result<Committed, DeployError> {
        let committed = self.shared.put_record(&record).await?;
        if committed.is_none() {
            self.save_and_publish(current, record, versions).await?;
        }
        Ok(committed)
    }

    /// Waits until what was committed is published on this host. Call
    /// without the writer lock: the converger needs it.
    pub(crate) async fn settle(&self, committed: Committed) {
        if let Some(revision) = committed {
            self.shared.settle(revision).await;
        }
    }

    /// Saves `record` durably, then publishes a snapshot where it replaces the
    /// function of the same name. `versions` are its loaded versions (`None`
    /// keeps the current ones). Versions the record no longer has lose their
    /// metric series. The new entry is checked for damage like a loaded one,
    /// so a change that repairs a damaged record makes it serve again. Call
    /// with the writer lock held.
    pub(crate) async fn save_and_publish(
        self: &Arc<Self>,
        current: &Snapshot,
        record: FunctionRecord,
        versions: Option<BTreeMap<u32, Arc<Function>>>,
    ) -> Result<(), DeployError> {
        let route = Route::parse(&record.route).map_err(|e| {
            HostFailure::logged(format!("the route of `{}` is not valid", record.name), e)
        })?;
        let versions = versions
            .or_else(|| current.get(&record.name).map(|e| e.versions.clone()))
            .unwrap_or_default();
        let host = self.clone();
        let to_save = record.clone();
        let (saved, missing) = tokio::task::spawn_blocking(move || {
            let saved = host.records.save(&to_save);
            (saved, host.runtime.artifacts.missing_sources(&to_save))
        })
        .await
        .map_err(|e| {
            HostFailure::logged(format!("saving the record of `{}` failed", record.name), e)
        })?;
        saved.map_err(|e| {
            HostFailure::logged(format!("saving the record of `{}` failed", record.name), e)
        })?;
        CrashPoint::RecordWritten.reached();
        if let Some(old) = current.get(&record.name) {
            for dropped in old.record.versions.iter().map(|v| v.number) {
                if record.version(dropped).is_none() {
                    self.metrics.forget_version(&record.name, dropped);
                }
            }
        }
        let mut entries = current.entries().clone();
        let name = record.name.clone();
        let entry = FunctionEntry::new(record, route, versions, missing);
        entries.insert(name, Arc::new(entry));
        self.publish(entries).await;
        Ok(())
    }

    /// Publishes a new deployed set and removes artifacts it no longer needs.
    pub(crate) async fn publish(self: &Arc<Self>, entries: BTreeMap<String, Arc<FunctionEntry>>) {
        self.metrics.set_functions(entries.len());
        self.collect_garbage(&entries).await;
        self.registry.publish(Snapshot::new(entries));
    }

    /// Removes every source and artifact that no version in `entries` and no
    /// deploy in progress uses. Call with the writer lock held.
    pub(crate) async fn collect_garbage(
        self: &Arc<Self>,
        entries: &BTreeMap<String, Arc<FunctionEntry>>,
    ) {
        let mut keep: HashSet<SourceHash> = entries
            .values()
            .flat_map(|e| {
                e.record
                    .versions
                    .iter()
                    .flat_map(VersionRecord::kept_sources)
            })
            .collect();
        keep.extend(self.pending.sources());
        let host = self.clone();
        let cleaned =
            tokio::task::spawn_blocking(move || host.runtime.artifacts.retain_sources(&keep)).await;
        if let Ok(Err(e)) = cleaned {
            tracing::warn!(error = %e, "removing unused artifacts failed");
        }
    }
}

/// Keeps the newest `keep` versions, plus every version that takes traffic
/// or is the rollback target.
pub(super) fn apply_retention(record: &mut FunctionRecord, keep: usize) {
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
    use crate::backplane::records::test_record;
    use wisp_spec::traffic::TrafficShare;

    #[test]
    fn retention_keeps_the_newest_and_those_with_traffic() {
        let mut r = test_record(&[1, 2, 3, 4, 5], &[(1, 100)]);
        apply_retention(&mut r, 2);
        let kept: Vec<u32> = r.versions.iter().map(|v| v.number).collect();
        assert_eq!(kept, vec![1, 4, 5]);
    }

    #[test]
    fn retention_keeps_the_rollback_target() {
        let mut r = test_record(&[1, 2, 3], &[(3, 100)]);
        r.previous_traffic = vec![TrafficShare {
            version: 1,
            weight: 100,
        }];
        apply_retention(&mut r, 1);
        let kept: Vec<u32> = r.versions.iter().map(|v| v.number).collect();
        assert_eq!(kept, vec![1, 3]);
    }

    #[test]
    fn pending_sources_are_counted_until_every_holder_drops() {
        let pending = Pending::default();
        let source = SourceHash::of(b"x");
        let first = pending.hold(&source);
        let second = pending.hold(&source);
        drop(first);
        assert_eq!(pending.sources(), vec![source.clone()]);
        drop(second);
        assert!(pending.sources().is_empty());
    }
}
