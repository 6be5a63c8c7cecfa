//! The deployed set: name → versions → traffic, plus the route table, read
//! lock-free on every request.
//!
//! The registry holds one immutable [`Snapshot`] behind an `ArcSwap`. A
//! request loads the current snapshot (no lock), routes, picks a version and
//! keeps an `Arc` to it, so it finishes on the code it started with however
//! the deployed set changes meanwhile. A deploy, delete or traffic change
//! builds a new snapshot and publishes it in one atomic swap.

use crate::deploy::record::FunctionRecord;
use crate::runtime::function::Function;
use arc_swap::{ArcSwap, Guard};
use std::collections::BTreeMap;
use std::sync::Arc;
use wisp_spec::route::{Route, RouteTable};
use wisp_spec::traffic::TrafficShare;

/// A deployed function: its route, loaded versions and traffic split.
pub struct FunctionEntry {
    /// What is stored about it.
    pub record: FunctionRecord,
    /// Its route, parsed.
    pub route: Route,
    /// Its loaded versions by number.
    pub versions: BTreeMap<u32, Arc<Function>>,
    /// Cumulative weights: `(upper bound, version)`, bounds ascending to 100.
    cumulative: Vec<(u8, u32)>,
}

impl FunctionEntry {
    /// Builds an entry; only traffic shares whose versions are loaded count.
    pub fn new(
        record: FunctionRecord,
        route: Route,
        versions: BTreeMap<u32, Arc<Function>>,
    ) -> FunctionEntry {
        let cumulative = cumulative_weights(&record.traffic, |v| versions.contains_key(&v));
        FunctionEntry {
            record,
            route,
            versions,
            cumulative,
        }
    }

    /// The version serving a request: `pinned` if given, else one drawn by
    /// traffic weight. `None` when nothing takes traffic (or the pinned
    /// version does not exist).
    pub fn pick(&self, pinned: Option<u32>) -> Option<&Arc<Function>> {
        if let Some(version) = pinned {
            return self.versions.get(&version);
        }
        let (_, version) = match self.cumulative.as_slice() {
            [] => return None,
            [only] => only,
            shares => {
                let draw = fastrand::u8(0..100);
                shares.iter().find(|(bound, _)| draw < *bound)?
            }
        };
        self.versions.get(version)
    }
}

/// Turns shares into cumulative bounds, skipping versions `present` rejects.
/// The bounds are rescaled so the kept shares still cover 0..100.
fn cumulative_weights(shares: &[TrafficShare], present: impl Fn(u32) -> bool) -> Vec<(u8, u32)> {
    let kept: Vec<&TrafficShare> = shares
        .iter()
        .filter(|s| s.weight > 0 && present(s.version))
        .collect();
    let total: u32 = kept.iter().map(|s| u32::from(s.weight)).sum();
    if total == 0 {
        return Vec::new();
    }
    let mut running = 0u32;
    let mut bounds = Vec::with_capacity(kept.len());
    for share in kept {
        running += u32::from(share.weight);
        // Rescaled to 100; the last bound is exactly 100.
        let bound = u8::try_from(running * 100 / total).unwrap_or(100);
        bounds.push((bound, share.version));
    }
    bounds
}

/// One immutable view of everything deployed.
#[derive(Default)]
pub struct Snapshot {
    entries: BTreeMap<String, Arc<FunctionEntry>>,
    routes: RouteTable<Arc<FunctionEntry>>,
}

impl Snapshot {
    /// Builds a snapshot (and its route table) from entries.
    pub fn new(entries: BTreeMap<String, Arc<FunctionEntry>>) -> Snapshot {
        let routes = RouteTable::new(entries.values().map(|e| (e.route.clone(), e.clone())));
        Snapshot { entries, routes }
    }

    /// The function serving `path`, its route, and the path after the route.
    pub fn route<'p>(&self, path: &'p str) -> Option<(&Arc<FunctionEntry>, &'p str)> {
        self.routes
            .lookup(path)
            .map(|(_, entry, rest)| (entry, rest))
    }

    /// The function named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<FunctionEntry>> {
        self.entries.get(name)
    }

    /// Every function, by name.
    pub fn entries(&self) -> &BTreeMap<String, Arc<FunctionEntry>> {
        &self.entries
    }

    /// The function (other than `except`) that serves exactly `route`.
    pub fn route_owner(&self, route: &Route, except: &str) -> Option<&str> {
        self.entries
            .values()
            .find(|e| e.route == *route && e.record.name != except)
            .map(|e| e.record.name.as_str())
    }
}

/// The current snapshot, swapped atomically.
#[derive(Default)]
pub struct Registry {
    current: ArcSwap<Snapshot>,
}

impl Registry {
    /// The current snapshot (lock-free).
    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// A full reference to the current snapshot, for writers.
    pub fn snapshot_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the deployed set in one step.
    pub fn publish(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(pairs: &[(u32, u8)]) -> Vec<TrafficShare> {
        pairs
            .iter()
            .map(|&(version, weight)| TrafficShare { version, weight })
            .collect()
    }

    #[test]
    fn cumulative_bounds_end_at_100() {
        let bounds = cumulative_weights(&shares(&[(3, 90), (4, 10)]), |_| true);
        assert_eq!(bounds, vec![(90, 3), (100, 4)]);
    }

    #[test]
    fn missing_versions_are_skipped_and_the_rest_rescaled() {
        let bounds = cumulative_weights(&shares(&[(1, 50), (2, 25), (3, 25)]), |v| v != 1);
        assert_eq!(bounds, vec![(50, 2), (100, 3)]);
        assert!(cumulative_weights(&shares(&[(1, 100)]), |_| false).is_empty());
        assert!(cumulative_weights(&shares(&[(1, 0)]), |_| true).is_empty());
    }
}
