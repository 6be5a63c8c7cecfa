//! The version-independent half of `wasi:keyvalue`: which bucket an `open`
//! reaches (deny by default, denials logged), how a backend's errors reach
//! the guest (limit breaches counted), and the handles a guest holds.
//!
//! The two interface versions (`keyvalue_draft.rs`, `keyvalue_draft2.rs`)
//! differ in types only; both call [`KvView`]'s methods here.

use crate::observe::metrics::FunctionMetrics;
use crate::state::{BucketId, KeyPage, KvBackend, KvError, resolve_bucket};
use std::collections::BTreeSet;
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};

/// Keys on one page of a `list-keys` call.
pub(super) const KEYS_PER_PAGE: usize = 1000;

/// The buckets one function version may open, on its backend.
pub(super) struct KvScope {
    function: Arc<str>,
    granted: BTreeSet<String>,
    backend: Arc<dyn KvBackend>,
    metrics: Arc<FunctionMetrics>,
    /// Most bytes of values one request may hold in the host at once (the
    /// version's memory limit: a guest could not take more into its own
    /// memory anyway).
    max_read_bytes: usize,
}

impl KvScope {
    pub(super) fn new(
        function: Arc<str>,
        granted: BTreeSet<String>,
        backend: Arc<dyn KvBackend>,
        metrics: Arc<FunctionMetrics>,
        max_read_bytes: usize,
    ) -> KvScope {
        KvScope {
            function,
            granted,
            backend,
            metrics,
            max_read_bytes,
        }
    }
}

/// Bytes of values the host holds for one request's guest between its
/// calls (the `cas` handles' values, and the SQLite rows it was handed as
/// streams, which it may never read). Lives in the request's store.
#[derive(Debug, Default)]
pub struct KvHeld(usize);

impl KvHeld {
    /// What is left of `limit` bytes.
    pub(super) fn left(&self, limit: u64) -> u64 {
        limit.saturating_sub(self.0 as u64)
    }

    /// Counts `bytes` more held, for the rest of the request.
    pub(super) fn add(&mut self, bytes: u64) {
        self.0 = self
            .0
            .saturating_add(usize::try_from(bytes).unwrap_or(usize::MAX));
    }
}

/// An open bucket, as the guest's `bucket` resource.
pub struct BucketHandle(BucketId);

/// A `wasi:keyvalue@0.2.0-draft2` `cas` resource: the value a key had when
/// the guest looked, to swap against.
pub struct CasHandle {
    pub(super) bucket: BucketId,
    pub(super) key: String,
    pub(super) current: Option<Vec<u8>>,
}

/// Why a key-value call failed, as every interface version can say it.
#[derive(Debug)]
pub(super) enum GuestKvError {
    /// The bucket was not granted.
    AccessDenied,
    /// Anything else, with a message for the guest.
    Other(String),
}

/// The key-value half of a request's store: its version's scope and the
/// store's resource table.
pub struct KvView<'a> {
    pub(super) scope: &'a KvScope,
    pub(super) table: &'a mut ResourceTable,
    pub(super) held: &'a mut KvHeld,
}

/// What a key-value call returns: a trap (`Err`) or the guest's result.
pub(super) type KvResult<T> = wasmtime::Result<Result<T, GuestKvError>>;

impl<'a> KvView<'a> {
    /// Opens `identifier` if the function may: its own bucket for `""` and
    /// `default`, a granted app bucket, or `access-denied` (logged).
    pub(super) fn open(&mut self, identifier: &str) -> KvResult<Resource<BucketHandle>> {
        let scope = self.scope;
        match resolve_bucket(&scope.function, &scope.granted, identifier) {
            Ok(bucket) => Ok(Ok(self.table.push(BucketHandle(bucket))?)),
            Err(denied) => {
                tracing::warn!(
                    function = %scope.function,
                    bucket = identifier,
                    "key-value bucket denied: {denied}"
                );
                Ok(Err(GuestKvError::AccessDenied))
            }
        }
    }

    /// The scope and the bucket behind a handle: what a call needs, held
    /// without the resource table (which may not cross an `await`).
    pub(super) fn target(
        &self,
        handle: &Resource<BucketHandle>,
    ) -> wasmtime::Result<(&'a KvScope, BucketId)> {
        Ok((self.scope, self.table.get(handle)?.0.clone()))
    }

    /// Bytes one read may still return: the memory limit less what the
    /// request's `cas` handles hold.
    pub(super) fn read_budget(&self) -> usize {
        self.scope.max_read_bytes.saturating_sub(self.held.0)
    }

    /// Keeps `cas` in the table, counting its value against the request's
    /// read budget; past it, the guest gets the `kv-read` limit's error.
    pub(super) fn hold(&mut self, cas: CasHandle) -> KvResult<Resource<CasHandle>> {
        let bytes = cas.current.as_ref().map_or(0, Vec::len);
        if bytes > self.read_budget() {
            let limit = self.scope.max_read_bytes;
            return self.scope.answer(Err(KvError::ReadTooLarge { limit }));
        }
        self.held.0 += bytes;
        Ok(Ok(self.table.push(cas)?))
    }

    /// Takes `cas` out of the table, its value no longer held.
    pub(super) fn release(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<CasHandle> {
        let cas = self.table.delete(cas)?;
        self.held.0 = self
            .held
            .0
            .saturating_sub(cas.current.as_ref().map_or(0, Vec::len));
        Ok(cas)
    }

    /// Drops a bucket handle.
    pub(super) fn close(&mut self, handle: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl KvScope {
    /// The backend, for the calls of the bindings.
    pub(super) fn backend(&self) -> &dyn KvBackend {
        &*self.backend
    }

    /// A backend result as the guest sees it: a limit breach is counted and
    /// returned with its message; a storage failure is logged and returned
    /// without its detail. Never a trap: the guest decides what to do.
    pub(super) fn answer<T>(&self, result: Result<T, KvError>) -> KvResult<T> {
        Ok(result.map_err(|error| {
            if let Some(limit) = error.limit() {
                self.metrics.record_breach(limit);
                return GuestKvError::Other(error.to_string());
            }
            match error {
                KvError::Backend(_) | KvError::Stopped => {
                    tracing::error!(function = %self.function, "key-value call failed: {error}");
                    GuestKvError::Other("the key-value store failed (see the host log)".into())
                }
                other => GuestKvError::Other(other.to_string()),
            }
        }))
    }

    /// Up to [`KEYS_PER_PAGE`] keys of `bucket` after `after`.
    pub(super) async fn list(&self, bucket: &BucketId, after: Option<&str>) -> KvResult<KeyPage> {
        let page = self.backend.list_keys(bucket, after, KEYS_PER_PAGE).await;
        self.answer(page)
    }

    /// Every key of `bucket`, page after page, while they fit in `budget`
    /// bytes (each key held costs its bytes and the `String` that holds
    /// them): Spin's `get-keys`, which has no cursor.
    pub(super) async fn all_keys(&self, bucket: &BucketId, budget: usize) -> KvResult<Vec<String>> {
        let mut keys = Vec::new();
        let mut bytes = 0usize;
        let mut after = None;
        loop {
            let page = match self.list(bucket, after.as_deref()).await? {
                Ok(page) => page,
                Err(error) => return Ok(Err(error)),
            };
            bytes = page.keys.iter().fold(bytes, |sum, key| {
                sum.saturating_add(key.len() + std::mem::size_of::<String>())
            });
            if bytes > budget {
                return Ok(Err(GuestKvError::Other(format!(
                    "the store's keys take more than this request may hold ({budget} bytes)"
                ))));
            }
            keys.extend(page.keys);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(Ok(keys)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::metrics::Metrics;
    use crate::state::{KvLimits, RedbStore};

    #[tokio::test]
    async fn all_keys_stops_at_the_read_budget() {
        // Spin's `get-keys` has no cursor: every key is held at once, so
        // each costs its bytes and its `String`, within the request's
        // budget, whatever the bucket holds.
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(RedbStore::open(dir.path(), KvLimits::default()).unwrap());
        let scope = KvScope::new(
            Arc::from("shop"),
            BTreeSet::new(),
            backend.clone(),
            Arc::new(Metrics::new().for_version("shop", 1)),
            1 << 20,
        );
        let bucket = BucketId::Function("shop".into());
        let entries = (0..2500)
            .map(|i| (format!("key-{i:05}"), Vec::new()))
            .collect();
        backend.set_many(&bucket, entries).await.unwrap();
        let per_key = "key-00000".len() + std::mem::size_of::<String>();
        let all = scope.all_keys(&bucket, 2500 * per_key).await.unwrap();
        assert_eq!(
            all.map(|keys| keys.len()).ok(),
            Some(2500),
            "three pages, all of it"
        );
        let over = scope.all_keys(&bucket, 2500 * per_key - 1).await.unwrap();
        assert!(
            matches!(&over, Err(GuestKvError::Other(m)) if m.contains("more than this request may hold")),
            "{over:?}"
        );
    }
}
