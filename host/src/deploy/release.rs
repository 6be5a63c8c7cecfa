//! Releasing what is deployed: remove a function, split its traffic, roll
//! back. Each change is one record write and one atomic publish under the
//! writer lock; requests in flight finish on the version they started on.

use crate::error::DeployError;
use crate::host::Host;
use std::collections::BTreeSet;
use wisp_spec::api::FunctionInfo;
use wisp_spec::traffic::{self, TrafficShare};

impl Host {
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
}
