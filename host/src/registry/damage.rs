//! Damage in what is stored: the reasons a function cannot be served as its
//! record stands — a traffic split that is not valid, a version whose stored
//! source is gone, a route two functions claim.
//!
//! Records are normally written only by wisp, which never writes damage;
//! these checks catch a record edited by hand or a data dir that lost files.
//! A damaged function is served by no path (public or `wisp invoke`) until a
//! change through the admin API writes a record that passes — wisp does not
//! guess which half of a broken record was meant. Every reason says what to
//! do about it. The record checks and the route check are pure; only
//! `ArtifactStore::missing_sources` looks at the disk.

use crate::backplane::records::FunctionRecord;
use std::collections::{BTreeMap, BTreeSet};
use wisp_spec::route::Route;
use wisp_spec::traffic;

/// What is wrong with `record` by itself: duplicate version numbers, or a
/// traffic split that names a version it does not have, or whose weights do
/// not sum to 100.
pub(crate) fn record_damage(record: &FunctionRecord) -> Vec<String> {
    let mut reasons = Vec::new();
    let mut numbers = BTreeSet::new();
    for version in &record.versions {
        if !numbers.insert(version.number) {
            reasons.push(format!(
                "its record lists version {} twice; remove the function with `wisp rm {}` and deploy it again",
                version.number, record.name
            ));
        }
    }
    let repair = format!("set a valid one with `wisp traffic {} vN=100`", record.name);
    if record.traffic.is_empty() {
        reasons.push(format!("its record has no traffic split; {repair}"));
    } else if let Err(e) = traffic::check_split(&record.traffic, &numbers) {
        reasons.push(format!("its traffic split is invalid: {e}; {repair}"));
    }
    reasons
}

/// Functions whose route another function claims too, each with a reason
/// naming the others. Neither claimant is served: which one was meant is
/// not wisp's to guess, and first-by-name would let a copied record take
/// over a live route.
pub(crate) fn route_conflicts<'a>(
    routes: impl IntoIterator<Item = (&'a str, &'a Route)>,
) -> BTreeMap<String, String> {
    let mut claims: BTreeMap<&Route, Vec<&str>> = BTreeMap::new();
    for (name, route) in routes {
        claims.entry(route).or_default().push(name);
    }
    let mut conflicts = BTreeMap::new();
    for (route, names) in claims.into_iter().filter(|(_, n)| n.len() > 1) {
        for name in &names {
            let others: Vec<String> = names
                .iter()
                .filter(|other| *other != name)
                .map(|other| format!("`{other}`"))
                .collect();
            conflicts.insert(
                (*name).to_owned(),
                format!(
                    "route `{route}` is also claimed by {} {}; remove one (`wisp rm`) or deploy one at another route",
                    if others.len() == 1 {
                        "function"
                    } else {
                        "functions"
                    },
                    others.join(", ")
                ),
            );
        }
    }
    conflicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backplane::records::test_record;

    #[test]
    fn a_whole_record_has_no_damage() {
        assert!(record_damage(&test_record(&[1, 2], &[(1, 90), (2, 10)])).is_empty());
    }

    #[test]
    fn traffic_naming_a_missing_version_is_damage_that_says_how_to_repair() {
        let reasons = record_damage(&test_record(&[1], &[(9, 100)]));
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("no version 9"), "{reasons:?}");
        assert!(
            reasons[0].contains("`wisp traffic f vN=100`"),
            "{reasons:?}"
        );
    }

    #[test]
    fn weights_not_summing_to_100_or_no_split_at_all_are_damage() {
        let short = record_damage(&test_record(&[1, 2], &[(1, 50), (2, 40)]));
        assert!(short[0].contains("sum to 90"), "{short:?}");
        let none = record_damage(&test_record(&[1], &[]));
        assert!(none[0].contains("no traffic split"), "{none:?}");
    }

    #[test]
    fn a_version_listed_twice_is_damage() {
        let reasons = record_damage(&test_record(&[1, 1], &[(1, 100)]));
        assert!(reasons[0].contains("version 1 twice"), "{reasons:?}");
    }

    #[test]
    fn every_claimant_of_a_shared_route_is_told_the_others() {
        let x = Route::parse("/x").unwrap();
        let y = Route::parse("/y").unwrap();
        let conflicts = route_conflicts([("a", &x), ("b", &x), ("c", &y), ("d", &x)]);
        assert_eq!(conflicts.len(), 3, "{conflicts:?}");
        assert!(!conflicts.contains_key("c"));
        assert!(
            conflicts["a"].contains("functions `b`, `d`"),
            "{conflicts:?}"
        );
        assert!(conflicts["b"].contains("`a`, `d`"), "{conflicts:?}");
        let single = route_conflicts([("a", &x), ("b", &x)]);
        assert!(
            single["b"].contains("route `/x` is also claimed by function `a`"),
            "{single:?}"
        );
    }
}
