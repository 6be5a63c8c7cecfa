//! What is deployed, as the admin API shows it: [`FunctionInfo`] built from
//! the registry's current snapshot, and each version's uploaded binary.

use super::Deployer;
use crate::error::{DeployError, HostFailure};
use crate::registry::FunctionEntry;
use std::sync::Arc;
use wisp_spec::api::{FunctionInfo, VersionSummary};

impl Deployer {
    /// Every deployed function.
    pub fn functions(self: &Arc<Self>) -> Vec<FunctionInfo> {
        self.registry
            .snapshot()
            .entries()
            .values()
            .map(|e| info_of(e))
            .collect()
    }

    /// One deployed function.
    pub fn function(self: &Arc<Self>, name: &str) -> Option<FunctionInfo> {
        self.registry.snapshot().get(name).map(|e| info_of(e))
    }

    /// The uploaded binary of version `version` of function `name` (by
    /// default the version with the most traffic, the newest on a tie),
    /// with its number: what `wisp push` publishes.
    pub async fn source(
        self: &Arc<Self>,
        name: &str,
        version: Option<u32>,
    ) -> Result<(u32, Vec<u8>), DeployError> {
        let (number, source) = {
            let snapshot = self.registry.snapshot();
            let entry = snapshot
                .get(name)
                .ok_or_else(|| DeployError::UnknownFunction(name.to_owned()))?;
            let record = &entry.record;
            let number = version.or_else(|| {
                let weight = |n: u32| {
                    record
                        .traffic
                        .iter()
                        .find(|s| s.version == n)
                        .map_or(0, |s| s.weight)
                };
                record
                    .versions
                    .iter()
                    .map(|v| v.number)
                    .max_by_key(|n| (weight(*n), *n))
            });
            let found = number.and_then(|n| record.version(n));
            let found = found.ok_or_else(|| DeployError::UnknownVersion {
                name: name.to_owned(),
                version: number.unwrap_or(0),
            })?;
            (found.number, found.source_hash())
        };
        let source = source.ok_or_else(|| {
            HostFailure::logged(
                format!("the record of `{name}` v{number} names no valid source"),
                "bad source hash",
            )
        })?;
        let host = self.clone();
        let read =
            tokio::task::spawn_blocking(move || host.runtime.artifacts.read_source(&source)).await;
        let wasm = read
            .map_err(|e| {
                HostFailure::logged(
                    format!("reading the source of `{name}` v{number} failed"),
                    e,
                )
            })?
            .map_err(|e| {
                HostFailure::logged(
                    format!("reading the source of `{name}` v{number} failed"),
                    e,
                )
            })?;
        Ok((number, wasm))
    }
}

/// A registry entry as the admin API shows it.
fn info_of(entry: &FunctionEntry) -> FunctionInfo {
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
            let settings = loaded.map_or_else(|| v.settings.clone(), |f| f.settings.to_raw());
            VersionSummary {
                number: v.number,
                source: v.source.clone(),
                abi: v.abi,
                created_unix: v.created_unix,
                settings,
                weight: weight(v.number),
                loaded: loaded.is_some_and(|f| !f.code().is_broken()),
                resident: loaded.is_some_and(|f| f.code().get().is_some()),
                origin: v.origin.clone(),
            }
        })
        .collect();
    FunctionInfo {
        name: entry.record.name.clone(),
        route: entry.record.route.clone(),
        versions,
        traffic: entry.record.traffic.clone(),
        unavailable: entry.unavailable(),
        schedules: crate::events::cron::schedules(entry),
    }
}
