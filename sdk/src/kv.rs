//! Key-value storage that outlives the request, through the standard
//! `wasi:keyvalue@0.2.0-draft` (store and atomics): the version
//! `wasmtime serve -S keyvalue` and wasmCloud serve too, so a function using
//! this module stays portable.
//!
//! On wisp every function has its own bucket ([`Bucket::own`], or the name
//! `""` or `"default"`), and may open an app-wide bucket by name only when it
//! was granted at deploy (`wisp deploy … --kv NAME`); any other name is
//! [`KvError::AccessDenied`]. Values are bytes; [`Bucket::increment`] stores
//! its counter as a decimal string, so [`Bucket::get_string`] reads it back.
//!
//! ```no_run
//! use wisp_sdk::{HttpError, Request, kv::Bucket};
//!
//! fn visits(_request: Request) -> Result<String, HttpError> {
//!     let count = Bucket::own()?.increment("visits", 1)?;
//!     Ok(format!("visits: {count}\n"))
//! }
//! ```
//!
//! A component imports `wasi:keyvalue` only when it calls this module: a
//! function that never does runs on hosts without key-value support.

use crate::response::HttpError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bindings for the standard WIT in `wit/keyvalue-0.2.0-draft/`.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit/keyvalue-0.2.0-draft",
        world: "imports",
        // A function may generate bindings for this same world itself.
        type_section_suffix: "wisp-sdk",
    });
}

use bindings::wasi::keyvalue::{atomics, store};

/// [`Bucket::list`] gives up after this many pages, so a host whose cursor
/// never ends cannot keep the function busy until its deadline.
pub const MAX_LIST_PAGES: usize = 10_000;

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvError {
    /// The host has no store behind this bucket name (`no-such-store`).
    NoSuchStore {
        /// The bucket's name (`""` is the function's own).
        bucket: String,
    },
    /// The function may not open this bucket (`access-denied`): on wisp, an
    /// app bucket it was not granted at deploy.
    AccessDenied {
        /// The bucket's name.
        bucket: String,
    },
    /// The host's store failed or refused the operation (`other`), such as a
    /// key, value or bucket over its size limit; the host's message.
    Other(String),
    /// The value is there but is not what it was read as (not UTF-8, not
    /// the JSON expected).
    Invalid {
        /// The key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
}

impl KvError {
    fn from_store(error: store::Error, bucket: &str) -> Self {
        match error {
            store::Error::NoSuchStore => KvError::NoSuchStore {
                bucket: bucket.to_owned(),
            },
            store::Error::AccessDenied => KvError::AccessDenied {
                bucket: bucket.to_owned(),
            },
            store::Error::Other(message) => KvError::Other(message),
        }
    }
}

/// How a bucket is named in messages.
fn describe(bucket: &str) -> String {
    if bucket.is_empty() {
        "the function's own bucket".to_owned()
    } else {
        format!("bucket `{bucket}`")
    }
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::NoSuchStore { bucket } => {
                write!(
                    f,
                    "no-such-store: the host has no store for {}",
                    describe(bucket)
                )
            }
            KvError::AccessDenied { bucket } => write!(
                f,
                "access-denied: this function may not open {}; grant it at deploy with `--kv {bucket}`",
                describe(bucket)
            ),
            KvError::Other(message) => write!(f, "other: {message}"),
            KvError::Invalid { key, reason } => {
                write!(f, "invalid value of key `{key}`: {reason}")
            }
        }
    }
}

impl std::error::Error for KvError {}

/// A failed key-value operation is the function's problem, not the
/// caller's: a 500 naming what failed, so `?` works in handlers.
impl From<KvError> for HttpError {
    fn from(error: KvError) -> Self {
        HttpError::internal(format!("key-value store: {error}"))
    }
}

/// An open bucket: a collection of keys and byte values.
pub struct Bucket {
    name: String,
    inner: store::Bucket,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("name", &self.name).finish()
    }
}

impl Bucket {
    /// Opens the bucket `name`: `""` (or `"default"`) is the function's own;
    /// another name is an app bucket the function must have been granted.
    pub fn open(name: &str) -> Result<Bucket, KvError> {
        let inner = store::open(name).map_err(|e| KvError::from_store(e, name))?;
        Ok(Bucket {
            name: name.to_owned(),
            inner,
        })
    }

    /// Opens the function's own bucket.
    pub fn own() -> Result<Bucket, KvError> {
        Self::open("")
    }

    /// The name it was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn fail(&self, error: store::Error) -> KvError {
        KvError::from_store(error, &self.name)
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(key).map_err(|e| self.fail(e))
    }

    /// The value of `key` as text, if set; [`KvError::Invalid`] if it is not
    /// UTF-8.
    pub fn get_string(&self, key: &str) -> Result<Option<String>, KvError> {
        self.get(key)?
            .map(|bytes| {
                String::from_utf8(bytes).map_err(|_| KvError::Invalid {
                    key: key.to_owned(),
                    reason: "not UTF-8".to_owned(),
                })
            })
            .transpose()
    }

    /// The value of `key` parsed as JSON, if set; [`KvError::Invalid`] if it
    /// does not parse as a `T`.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KvError> {
        self.get(key)?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| KvError::Invalid {
                    key: key.to_owned(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    /// Sets `key` to `value`, replacing any value it had.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), KvError> {
        self.inner
            .set(key, value.as_ref())
            .map_err(|e| self.fail(e))
    }

    /// Sets `key` to `value` as JSON.
    pub fn set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), KvError> {
        let bytes = serde_json::to_vec(value).map_err(|e| KvError::Invalid {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        self.set(key, bytes)
    }

    /// Deletes `key`; deleting a key that is not set is no error.
    pub fn delete(&self, key: &str) -> Result<(), KvError> {
        self.inner.delete(key).map_err(|e| self.fail(e))
    }

    /// Whether `key` is set.
    pub fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.inner.exists(key).map_err(|e| self.fail(e))
    }

    /// Adds `delta` to the counter at `key` in one atomic step and returns
    /// the new value. A key that is not set counts as 0; the value is stored
    /// as a decimal string.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        atomics::increment(&self.inner, key, delta).map_err(|e| self.fail(e))
    }

    /// Every key in the bucket, in the host's order, following the host's
    /// pages; at most [`MAX_LIST_PAGES`] pages, else [`KvError::Other`].
    pub fn list(&self) -> Result<Vec<String>, KvError> {
        collect_pages(|cursor| {
            let page = self.inner.list_keys(cursor).map_err(|e| self.fail(e))?;
            Ok((page.keys, page.cursor))
        })
    }
}

/// Calls `next_page` with each cursor, from none until the host returns
/// none, and gathers the keys.
fn collect_pages<C>(
    mut next_page: impl FnMut(Option<C>) -> Result<(Vec<String>, Option<C>), KvError>,
) -> Result<Vec<String>, KvError> {
    let mut keys = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_LIST_PAGES {
        let (page, next) = next_page(cursor)?;
        keys.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(keys),
        }
    }
    Err(KvError::Other(format!(
        "listing keys stopped after {MAX_LIST_PAGES} pages: the host's cursor did not end"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_follows_cursors_until_the_last_page() {
        let pages = [vec!["a", "b"], vec!["c"], vec![]];
        let keys = collect_pages(|cursor: Option<usize>| {
            let at = cursor.unwrap_or(0);
            let keys = pages[at].iter().map(|k| (*k).to_owned()).collect();
            Ok((keys, (at + 1 < pages.len()).then_some(at + 1)))
        })
        .unwrap();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn listing_stops_when_the_cursor_never_ends() {
        let mut calls = 0;
        let result = collect_pages(|_: Option<u64>| {
            calls += 1;
            Ok((vec!["k".to_owned()], Some(7)))
        });
        assert!(matches!(result, Err(KvError::Other(m)) if m.contains("10000 pages")));
        assert_eq!(calls, MAX_LIST_PAGES);
    }

    #[test]
    fn listing_passes_the_hosts_error_on() {
        let result = collect_pages(|_: Option<u64>| Err(KvError::Other("disk full".into())));
        assert_eq!(result, Err(KvError::Other("disk full".into())));
    }

    #[test]
    fn errors_name_their_variant_and_what_to_do() {
        let denied = KvError::from_store(store::Error::AccessDenied, "orders");
        assert_eq!(
            denied.to_string(),
            "access-denied: this function may not open bucket `orders`; grant it at deploy with `--kv orders`"
        );
        let missing = KvError::from_store(store::Error::NoSuchStore, "");
        assert_eq!(
            missing.to_string(),
            "no-such-store: the host has no store for the function's own bucket"
        );
        let other = KvError::from_store(store::Error::Other("value too large".into()), "");
        assert_eq!(other.to_string(), "other: value too large");
    }

    #[test]
    fn a_kv_error_is_a_500_in_a_handler() {
        fn handler() -> Result<(), HttpError> {
            Err(KvError::Other("boom".into()))?
        }
        let error = handler().unwrap_err();
        assert_eq!(error.status, http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.message, "key-value store: other: boom");
    }
}
