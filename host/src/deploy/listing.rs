//! What is deployed, as the admin API shows it: [`FunctionInfo`] built from
//! the registry's current snapshot.

use crate::host::Host;
use crate::registry::FunctionEntry;
use wisp_spec::api::{FunctionInfo, VersionSummary};

impl Host {
    /// Every deployed function.
    pub fn functions(&self) -> Vec<FunctionInfo> {
        self.inner
            .registry
            .snapshot()
            .entries()
            .values()
            .map(|e| info_of(e))
            .collect()
    }

    /// One deployed function.
    pub fn function(&self, name: &str) -> Option<FunctionInfo> {
        self.inner.registry.snapshot().get(name).map(|e| info_of(e))
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
                loaded: loaded.is_some(),
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
