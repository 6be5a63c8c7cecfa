//! Releasing what is deployed: remove a function, split its traffic, roll
//! back, retire a version. Each change is one record write and one atomic
//! publish under the writer lock; requests in flight finish on the version
//! they started on.

use super::Deployer;
use crate::backplane::records::FunctionRecord;
use crate::disk::crash_point::CrashPoint;
use crate::error::{DeployError, HostFailure};
use crate::registry::{FunctionEntry, Snapshot};
use crate::runtime::function::Function;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use wisp_spec::api::{FunctionInfo, Removed, Retired};
use wisp_spec::traffic::{self, TrafficShare};

impl Deployer {
    /// Removes function `name` and every version of it, with its own
    /// key-value bucket, SQLite database and secrets. Requests already
    /// running finish.
    pub async fn remove(self: &Arc<Self>, name: &str) -> Result<Removed, DeployError> {
        let committed = {
            let _writer = self.writer.lock().await;
            let current = self.registry.snapshot_full();
            if current.get(name).is_none() {
                return Err(DeployError::UnknownFunction(name.to_owned()));
            }
            let committed = self.shared.remove_record(name).await?;
            if committed.is_none() {
                self.unpublish_locked(&current, name).await?;
            }
            committed
        };
        self.settle(committed).await;
        let bucket_bytes = self.delete_state(name).await;
        tracing::info!(
            function = name,
            bucket_bytes,
            "removed, with its key-value bucket, SQLite database and secrets"
        );
        Ok(Removed {
            removed: name.to_owned(),
            bucket_bytes,
        })
    }

    /// Removes function `name`'s record file and publishes the deployed set
    /// without it; forgets its logs, usage and metrics. Call with the writer
    /// lock held.
    pub(crate) async fn unpublish_locked(
        self: &Arc<Self>,
        current: &Snapshot,
        name: &str,
    ) -> Result<(), DeployError> {
        let host = self.clone();
        let owned = name.to_owned();
        tokio::task::spawn_blocking(move || host.records.remove(&owned))
            .await
            .map_err(|e| HostFailure::logged(format!("removing the record of `{name}` failed"), e))?
            .map_err(|e| {
                HostFailure::logged(format!("removing the record of `{name}` failed"), e)
            })?;
        CrashPoint::RecordRemoved.reached();
        let mut entries = current.entries().clone();
        entries.remove(name);
        self.publish(entries).await;
        self.books.forget(name);
        Ok(())
    }

    /// Splits function `name`'s traffic between its versions. The previous
    /// split is kept for [`Host::rollback`]. Requests in flight finish where
    /// they started.
    pub async fn set_traffic(
        self: &Arc<Self>,
        name: &str,
        shares: Vec<TrafficShare>,
    ) -> Result<FunctionInfo, DeployError> {
        self.change_record(name, |entry| {
            let loaded: BTreeSet<u32> = entry.versions.keys().copied().collect();
            traffic::check_split(&shares, &loaded).map_err(DeployError::InvalidTraffic)?;
            let mut record = entry.record.clone();
            if record.traffic != shares {
                record.shift_traffic(shares);
            }
            Ok((record, None, ()))
        })
        .await?;
        tracing::info!(function = name, "traffic changed");
        self.function(name)
            .ok_or_else(|| DeployError::UnknownFunction(name.to_owned()))
    }

    /// Moves all of function `name`'s traffic back to the split before the
    /// last deploy or traffic change, in one atomic step.
    pub async fn rollback(self: &Arc<Self>, name: &str) -> Result<FunctionInfo, DeployError> {
        self.change_record(name, |entry| {
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
            record.shift_traffic(previous);
            Ok((record, None, ()))
        })
        .await?;
        tracing::info!(function = name, "rolled back");
        self.function(name)
            .ok_or_else(|| DeployError::UnknownFunction(name.to_owned()))
    }

    /// Retires version `version` of function `name`: in one durable step it
    /// leaves every path — public pinning, `wisp invoke`, the rollback
    /// target and the listing — and its source and artifact become garbage
    /// (removed now, unless another version uses the same binary). Requests
    /// already running on it finish.
    ///
    /// A version named in the current traffic split is refused
    /// ([`DeployError::VersionServing`], 409): shift traffic away first. When
    /// the version is part of the rollback target, the whole target is
    /// dropped ([`Retired::rollback_cleared`]): rolling back to a split with
    /// a hole would serve a split nobody chose, so [`Host::rollback`] has
    /// nothing to go back to until the next traffic change.
    pub async fn retire(
        self: &Arc<Self>,
        name: &str,
        version: u32,
    ) -> Result<Retired, DeployError> {
        let rollback_cleared = self
            .change_record(name, |entry| {
                let mut record = entry.record.clone();
                if record.version(version).is_none() {
                    return Err(DeployError::UnknownVersion {
                        name: name.to_owned(),
                        version,
                    });
                }
                if record.in_traffic(version) {
                    let other = entry.versions.keys().rev().find(|n| **n != version);
                    let remedy = match other {
                        Some(other) => {
                            format!("`wisp traffic {name} v{other}=100`, then retire it")
                        }
                        None => format!(
                            "deploy a new version, then retire it; or remove the function with `wisp rm {name}`"
                        ),
                    };
                    return Err(DeployError::VersionServing {
                        name: name.to_owned(),
                        version,
                        remedy,
                    });
                }
                record.versions.retain(|v| v.number != version);
                let rollback_cleared =
                    record.previous_traffic.iter().any(|s| s.version == version);
                if rollback_cleared {
                    record.previous_traffic.clear();
                }
                let mut versions = entry.versions.clone();
                versions.remove(&version);
                Ok((record, Some(versions), rollback_cleared))
            })
            .await?;
        tracing::info!(function = name, version, rollback_cleared, "retired");
        Ok(Retired {
            function: name.to_owned(),
            retired: version,
            rollback_cleared,
        })
    }

    /// Changes function `name`'s record under the writer lock: `change`
    /// gets its current entry and returns the new record, its loaded
    /// versions (`None`: the current ones) and what the caller gets back.
    /// The change is committed, then awaited until this host serves it.
    async fn change_record<T>(
        self: &Arc<Self>,
        name: &str,
        change: impl FnOnce(&FunctionEntry) -> Result<ChangedRecord<T>, DeployError>,
    ) -> Result<T, DeployError> {
        let (committed, outcome) = {
            let _writer = self.writer.lock().await;
            let current = self.registry.snapshot_full();
            let entry = current
                .get(name)
                .ok_or_else(|| DeployError::UnknownFunction(name.to_owned()))?;
            let (record, versions, outcome) = change(entry)?;
            (self.commit(&current, record, versions).await?, outcome)
        };
        self.settle(committed).await;
        Ok(outcome)
    }
}

/// What a change of a record gives: the new record, its loaded versions
/// (`None`: unchanged) and the caller's outcome.
type ChangedRecord<T> = (FunctionRecord, Option<BTreeMap<u32, Arc<Function>>>, T);
