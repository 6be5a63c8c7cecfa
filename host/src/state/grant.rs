//! Which bucket a guest's `open(identifier)` reaches: deny by default.
//!
//! `""` and `"default"` open the function's own bucket, shared by all its
//! versions; any other identifier opens the app-wide bucket of that name only
//! if the function was deployed with it (`--kv NAME`, manifest `kv = [...]`,
//! query `kv=`). Everything else is an [`AccessDenied`], which the bindings
//! return to the guest as `access-denied` and log. Pure: no storage here.

use super::store::BucketId;
use std::collections::BTreeSet;
use wisp_spec::name::OWN_BUCKET;

/// A guest asked for a bucket its function was not granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "function `{function}` may not open bucket `{identifier}`: deploy it with `--kv {identifier}` to grant it"
)]
pub struct AccessDenied {
    /// The function that asked.
    pub function: String,
    /// The identifier it asked for.
    pub identifier: String,
}

/// The bucket `identifier` opens for `function`, given the app buckets it was
/// granted (its validated `kv` setting).
pub fn resolve_bucket(
    function: &str,
    granted: &BTreeSet<String>,
    identifier: &str,
) -> Result<BucketId, AccessDenied> {
    if identifier.is_empty() || identifier == OWN_BUCKET {
        return Ok(BucketId::Function(function.to_owned()));
    }
    if granted.contains(identifier) {
        return Ok(BucketId::App(identifier.to_owned()));
    }
    Err(AccessDenied {
        function: function.to_owned(),
        identifier: identifier.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn empty_and_default_open_the_functions_own_bucket() {
        for identifier in ["", "default"] {
            assert_eq!(
                resolve_bucket("shop", &granted(&[]), identifier),
                Ok(BucketId::Function("shop".into())),
                "{identifier:?}"
            );
        }
    }

    #[test]
    fn a_granted_name_opens_the_app_bucket() {
        assert_eq!(
            resolve_bucket("shop", &granted(&["sessions", "cache"]), "sessions"),
            Ok(BucketId::App("sessions".into()))
        );
    }

    #[test]
    fn anything_not_granted_is_denied_and_says_how_to_grant_it() {
        let grants = granted(&["sessions"]);
        for identifier in [
            "cache",
            "Sessions",
            "sessions ",
            "shop",
            "fn/shop",
            "DEFAULT",
        ] {
            let denied = resolve_bucket("shop", &grants, identifier).unwrap_err();
            assert_eq!(denied.identifier, identifier);
        }
        assert_eq!(
            resolve_bucket("shop", &grants, "cache")
                .unwrap_err()
                .to_string(),
            "function `shop` may not open bucket `cache`: deploy it with `--kv cache` to grant it"
        );
    }

    #[test]
    fn another_functions_own_bucket_cannot_be_reached_by_its_name() {
        assert_eq!(
            resolve_bucket("shop", &granted(&["billing"]), "billing"),
            Ok(BucketId::App("billing".into())),
            "a grant of `billing` is the app bucket, never function `billing`'s own"
        );
    }
}
