//! Traffic splits between a function's versions: parsing what a user types
//! (`v3=90 v4=10`) and checking a split before it is applied.
//!
//! Pure code. Applying a split (atomically, with the previous split kept for
//! rollback) is the deploy side's job; drawing a version per request is the
//! registry's.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A share of a function's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficShare {
    /// The version number.
    pub version: u32,
    /// Percent of requests, 1–100.
    pub weight: u8,
}

/// Parses a version number as typed: `4` or `v4`.
pub fn parse_version(text: &str) -> Option<u32> {
    let text = text.trim();
    text.strip_prefix('v').unwrap_or(text).parse().ok()
}

/// Parses `v3=90`, `3=90` or `v4=10%` items into shares.
pub fn parse_split(items: &[impl AsRef<str>]) -> Result<Vec<TrafficShare>, String> {
    items
        .iter()
        .map(|item| {
            let item = item.as_ref();
            let bad = || format!("`{item}` is not `VERSION=WEIGHT` (e.g. `v3=90`)");
            let (version, weight) = item.split_once('=').ok_or_else(bad)?;
            let version = parse_version(version).ok_or_else(bad)?;
            let weight = weight
                .trim()
                .trim_end_matches('%')
                .parse::<u8>()
                .map_err(|_| bad())?;
            Ok(TrafficShare { version, weight })
        })
        .collect()
}

/// Checks a split: at least one share, distinct versions that exist, weights
/// from 1 to 100 that sum to 100.
pub fn check_split(shares: &[TrafficShare], existing: &BTreeSet<u32>) -> Result<(), String> {
    if shares.is_empty() {
        return Err("give at least one `VERSION=WEIGHT`, e.g. `v3=100`".into());
    }
    let mut seen = BTreeSet::new();
    for share in shares {
        if !seen.insert(share.version) {
            return Err(format!("version {} appears twice", share.version));
        }
        if !existing.contains(&share.version) {
            let known: Vec<String> = existing.iter().map(|v| format!("v{v}")).collect();
            return Err(format!(
                "there is no version {} (versions: {})",
                share.version,
                known.join(", ")
            ));
        }
        if share.weight == 0 || share.weight > 100 {
            return Err(format!(
                "weight {} of version {} is not between 1 and 100",
                share.weight, share.version
            ));
        }
    }
    let total: u32 = shares.iter().map(|s| u32::from(s.weight)).sum();
    if total != 100 {
        return Err(format!("weights sum to {total}, not 100"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(v: &[u32]) -> BTreeSet<u32> {
        v.iter().copied().collect()
    }

    #[test]
    fn splits_parse_with_or_without_v_and_percent() {
        let shares = parse_split(&["v3=90", "4=10%"]).unwrap();
        assert_eq!(
            shares,
            vec![
                TrafficShare {
                    version: 3,
                    weight: 90
                },
                TrafficShare {
                    version: 4,
                    weight: 10
                }
            ]
        );
        assert!(parse_split(&["v3"]).unwrap_err().contains("VERSION=WEIGHT"));
        assert!(parse_split(&["vx=1"]).is_err());
        assert!(parse_split(&["v1=300"]).is_err());
    }

    #[test]
    fn versions_parse_with_or_without_one_v() {
        assert_eq!(parse_version("4"), Some(4));
        assert_eq!(parse_version(" v4 "), Some(4));
        assert_eq!(parse_version("vv4"), None);
        assert_eq!(parse_version("v"), None);
        assert_eq!(parse_version("-1"), None);
    }

    #[test]
    fn weights_must_sum_to_100_over_existing_versions() {
        let existing = versions(&[3, 4]);
        assert!(check_split(&parse_split(&["v3=90", "v4=10"]).unwrap(), &existing).is_ok());
        assert!(
            check_split(&parse_split(&["v3=90", "v4=20"]).unwrap(), &existing)
                .unwrap_err()
                .contains("110")
        );
        assert!(
            check_split(&parse_split(&["v5=100"]).unwrap(), &existing)
                .unwrap_err()
                .contains("no version 5")
        );
        assert!(
            check_split(&parse_split(&["v3=50", "v3=50"]).unwrap(), &existing)
                .unwrap_err()
                .contains("twice")
        );
        assert!(check_split(&parse_split(&["v3=0", "v4=100"]).unwrap(), &existing).is_err());
        assert!(check_split(&[], &existing).is_err());
    }
}
