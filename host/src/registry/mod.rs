//! The deployed set: name → versions → traffic, plus the route table, read
//! lock-free on every request.
//!
//! The registry holds one immutable [`Snapshot`] behind an `ArcSwap`. A
//! request loads the current snapshot (no lock), routes, picks a version and
//! keeps an `Arc` to it, so it finishes on the code it started with however
//! the deployed set changes meanwhile. A deploy, delete or traffic change
//! builds a new snapshot and publishes it in one atomic swap.
//!
//! Which version a request runs on is chosen here (`FunctionEntry::choose`:
//! the pinned one, if [`Audience`] may pin it, else the traffic split's), and so is
//! whether a function can serve at all: an entry built from a damaged record
//! carries the reasons, and a snapshot marks every function whose route
//! another one claims too (see `damage.rs`). It also drops the prepared
//! sandboxes that waited too long ([`Registry::expire_prepared`]).

mod damage;

use crate::backplane::records::FunctionRecord;
use crate::error::InvokeError;
use crate::runtime::function::Function;
use crate::runtime::prepared::PREPARED_IDLE;
use arc_swap::{ArcSwap, Guard};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use wisp_spec::headers::VERSION_HEADER;
use wisp_spec::route::{Route, RouteTable};
use wisp_spec::spin::route::SpinRoute;
use wisp_spec::traffic::TrafficShare;

/// Who asks for a version by number (`x-wisp-version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A request on the public path: it may pin a version that takes traffic
    /// now, or a preview that never took any — never one that lost its
    /// traffic, which is kept only for rollback and `wisp invoke`.
    Public,
    /// The operator, through the authenticated admin API (`wisp invoke`):
    /// any kept version.
    Operator,
}

/// A deployed function: its route, loaded versions and traffic split.
#[derive(Clone)]
pub struct FunctionEntry {
    /// What is stored about it.
    pub record: FunctionRecord,
    /// Its route, parsed.
    pub route: Route,
    /// Its versions by number (their code loads on a first request).
    pub versions: BTreeMap<u32, Arc<Function>>,
    /// Cumulative weights: `(upper bound, version)`, bounds ascending to 100.
    cumulative: Vec<(u8, u32)>,
    /// Versions the public may pin, ascending.
    public_pins: Vec<u32>,
    /// Why its stored state cannot be served (record damage, missing
    /// sources); empty when whole.
    damage: Vec<String>,
    /// Another function claims its route too (set by [`Snapshot::new`]).
    route_conflict: Option<String>,
    /// The Spin route of its newest version, if it has one: an exact one
    /// serves only its own path.
    spin_route: Option<SpinRoute>,
}

impl FunctionEntry {
    /// Builds an entry; only traffic shares whose versions are loaded count.
    /// `stored_damage` is what was found wrong on disk (missing sources);
    /// the record's own damage is found here.
    pub fn new(
        record: FunctionRecord,
        route: Route,
        versions: BTreeMap<u32, Arc<Function>>,
        stored_damage: Vec<String>,
    ) -> FunctionEntry {
        let cumulative = cumulative_weights(&record.traffic, |v| versions.contains_key(&v));
        let public_pins = public_pins(&record);
        let mut damage = damage::record_damage(&record);
        damage.extend(stored_damage);
        let spin_route = versions
            .values()
            .next_back()
            .and_then(|newest| newest.settings.spin_route.clone());
        FunctionEntry {
            record,
            route,
            versions,
            cumulative,
            public_pins,
            damage,
            route_conflict: None,
            spin_route,
        }
    }

    /// True when its stored state is damaged: it serves nothing, on any path.
    pub fn is_damaged(&self) -> bool {
        !self.damage.is_empty() || self.route_conflict.is_some()
    }

    /// Why it serves nothing, when it cannot: its damage, or no loaded
    /// version that takes traffic.
    pub fn unavailable(&self) -> Option<String> {
        if self.is_damaged() {
            let reasons: Vec<&str> = self
                .route_conflict
                .iter()
                .chain(&self.damage)
                .map(String::as_str)
                .collect();
            return Some(reasons.join("; "));
        }
        self.cumulative.is_empty().then(|| {
            "no version that takes traffic could be loaded (see the host log); deploy a new version"
                .to_owned()
        })
    }

    /// The version a request with `headers` runs on: the one
    /// `x-wisp-version` pins, if `audience` may pin it, else the traffic
    /// split's pick; or why there is none.
    pub(crate) fn choose(
        &self,
        headers: &http::HeaderMap,
        audience: Audience,
    ) -> Result<Arc<Function>, InvokeError> {
        let name = &self.record.name;
        if self.is_damaged() {
            return Err(InvokeError::Damaged(name.clone()));
        }
        let pinned = match headers.get(&VERSION_HEADER).map(parse_version) {
            None => None,
            Some(Ok(version)) => Some(version),
            Some(Err(text)) => {
                return Err(InvokeError::NoSuchVersion {
                    name: name.clone(),
                    version: text,
                });
            }
        };
        self.pick(pinned, audience)
            .cloned()
            .ok_or_else(|| match pinned {
                Some(version) => InvokeError::NoSuchVersion {
                    name: name.clone(),
                    version: version.to_string(),
                },
                None => InvokeError::Unavailable(name.clone()),
            })
    }

    /// The version serving a request: `pinned` if given and `audience` may
    /// pin it, else one drawn by traffic weight. `None` when nothing takes
    /// traffic, or the pinned version does not exist or is not the
    /// audience's to pin — the two look the same, so a public client learns
    /// nothing about versions it may not reach.
    pub fn pick(&self, pinned: Option<u32>, audience: Audience) -> Option<&Arc<Function>> {
        if let Some(version) = pinned {
            let allowed = match audience {
                Audience::Public => self.public_pins.binary_search(&version).is_ok(),
                Audience::Operator => true,
            };
            return allowed.then(|| self.versions.get(&version)).flatten();
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

/// `4` or `v4` → 4; anything else is returned as text for the error.
fn parse_version(value: &http::HeaderValue) -> Result<u32, String> {
    let text = value.to_str().unwrap_or_default().trim();
    wisp_spec::traffic::parse_version(text).ok_or_else(|| text.to_owned())
}

/// The versions of `record` a public request may pin, ascending: those
/// that take traffic now, and previews that never took any.
fn public_pins(record: &FunctionRecord) -> Vec<u32> {
    let serving = |n: u32| {
        record
            .traffic
            .iter()
            .any(|s| s.version == n && s.weight > 0)
    };
    let mut pins: Vec<u32> = record
        .versions
        .iter()
        .filter(|v| serving(v.number) || !v.held_traffic)
        .map(|v| v.number)
        .collect();
    pins.sort_unstable();
    pins
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
    /// Builds a snapshot (and its route table) from entries. Entries whose
    /// route another entry claims too are marked damaged (and the others
    /// unmarked); the route table holds each route once, for the first
    /// claimant by name, which answers that it is unavailable.
    pub fn new(mut entries: BTreeMap<String, Arc<FunctionEntry>>) -> Snapshot {
        let mut conflicts =
            damage::route_conflicts(entries.values().map(|e| (e.record.name.as_str(), &e.route)));
        for (name, entry) in &mut entries {
            let conflict = conflicts.remove(name);
            if entry.route_conflict != conflict {
                let mut marked = FunctionEntry::clone(entry);
                marked.route_conflict = conflict;
                *entry = Arc::new(marked);
            }
        }
        let mut claimed = BTreeSet::new();
        let routes = RouteTable::new(
            entries
                .values()
                .filter(|e| claimed.insert(e.route.clone()))
                .map(|e| (e.route.clone(), e.clone())),
        );
        Snapshot { entries, routes }
    }

    /// The function serving `path`, its route, and the path after the route.
    pub fn route<'p>(&self, path: &'p str) -> Option<(&Arc<FunctionEntry>, &'p str)> {
        self.routes
            .lookup_where(path, |entry, rest| {
                entry
                    .spin_route
                    .as_ref()
                    .is_none_or(|spin| spin.serves(rest))
            })
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

    /// Drops every prepared sandbox that has waited longer than
    /// [`PREPARED_IDLE`] for its request.
    pub(crate) fn expire_prepared(&self) {
        let snapshot = self.snapshot_full();
        for entry in snapshot.entries().values() {
            for function in entry.versions.values() {
                function.prepared().expire(PREPARED_IDLE);
            }
        }
    }
}

/// Every second, drops the prepared sandboxes that waited longer than
/// [`PREPARED_IDLE`], until the registry is gone.
pub(crate) fn sweep_prepared(registry: Weak<Registry>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(registry) = registry.upgrade() else {
                return;
            };
            registry.expire_prepared();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backplane::records::VersionRecord;
    use wisp_spec::inspect::Abi;
    use wisp_spec::settings::RawSettings;

    /// A record with `versions` as `(number, held_traffic)` and all traffic
    /// on `serving`.
    fn record(name: &str, route: &str, versions: &[(u32, bool)], serving: u32) -> FunctionRecord {
        FunctionRecord {
            name: name.into(),
            route: route.into(),
            versions: versions
                .iter()
                .map(|&(number, held_traffic)| VersionRecord {
                    number,
                    source: "a".repeat(64),
                    abi: Abi::WasiHttp,
                    created_unix: 0,
                    settings: RawSettings::default(),
                    held_traffic,
                    origin: None,
                    composition: None,
                })
                .collect(),
            traffic: vec![TrafficShare {
                version: serving,
                weight: 100,
            }],
            previous_traffic: vec![],
        }
    }

    fn entry(record: FunctionRecord) -> Arc<FunctionEntry> {
        let route = Route::parse(&record.route).unwrap();
        Arc::new(FunctionEntry::new(record, route, BTreeMap::new(), vec![]))
    }

    #[test]
    fn the_public_may_pin_serving_versions_and_previews_not_those_that_lost_traffic() {
        // v1 and v2 lost their traffic, v3 serves, v4 is a preview.
        let r = record("f", "/f", &[(1, true), (2, true), (3, true), (4, false)], 3);
        assert_eq!(public_pins(&r), vec![3, 4]);
    }

    #[test]
    fn a_shared_route_marks_both_claimants_until_one_leaves() {
        let mut entries = BTreeMap::new();
        entries.insert("a".to_owned(), entry(record("a", "/x", &[(1, true)], 1)));
        entries.insert("b".to_owned(), entry(record("b", "/x", &[(1, true)], 1)));
        let snapshot = Snapshot::new(entries);
        let a = snapshot.get("a").unwrap();
        assert!(a.is_damaged());
        assert!(a.unavailable().unwrap().contains("function `b`"));
        assert!(
            snapshot
                .get("b")
                .unwrap()
                .unavailable()
                .unwrap()
                .contains("function `a`")
        );
        let (served, _) = snapshot.route("/x").unwrap();
        assert_eq!(served.record.name, "a", "the route is listed once");

        let mut entries = snapshot.entries().clone();
        entries.insert("b".to_owned(), entry(record("b", "/y", &[(1, true)], 1)));
        let moved = Snapshot::new(entries);
        assert!(!moved.get("a").unwrap().is_damaged(), "b moved away");
        assert_eq!(moved.route("/y").unwrap().0.record.name, "b");
    }

    #[test]
    fn a_damaged_record_is_unavailable_with_its_reasons() {
        let mut r = record("f", "/f", &[(1, true)], 9);
        let damaged = entry(r.clone());
        assert!(damaged.is_damaged());
        assert!(damaged.unavailable().unwrap().contains("no version 9"));
        r.traffic[0].version = 1;
        let missing = FunctionEntry::new(
            r,
            Route::parse("/f").unwrap(),
            BTreeMap::new(),
            vec!["the stored source of v1 is missing".into()],
        );
        assert!(missing.is_damaged());
        assert!(missing.unavailable().unwrap().contains("source of v1"));
    }

    #[test]
    fn a_whole_record_without_loaded_code_is_unavailable_but_not_damaged() {
        let unloaded = entry(record("f", "/f", &[(1, true)], 1));
        assert!(!unloaded.is_damaged());
        assert!(unloaded.unavailable().unwrap().contains("could be loaded"));
        assert!(unloaded.pick(None, Audience::Operator).is_none());
    }

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
