//! The key-value backend contract: [`KvBackend`], the buckets it holds
//! ([`BucketId`]), its limits ([`KvLimits`]) and its errors ([`KvError`]).
//!
//! This file owns what every backend promises — the embedded redb store on a
//! single node, a NATS KV store in a cluster — and nothing about how one keeps
//! it. It knows nothing of guests or of `wasi:keyvalue`'s versions: the
//! bindings translate to and from this trait. The one thing to know: a write
//! future that resolves `Ok` has been committed durably, so a guest that saw a
//! write succeed keeps it across a crash.

use crate::error::Limit;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use wisp_spec::units::format_size;

/// Default cap on one key, in bytes.
pub const DEFAULT_MAX_KEY_BYTES: usize = 1024;

/// Default cap on one value, in bytes (1 MiB).
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;

/// Default cap on one bucket (its keys and values added up), in bytes (64 MiB).
pub const DEFAULT_MAX_BUCKET_BYTES: u64 = 64 << 20;

/// What a backend's calls return: a boxed future, so backends can be chosen at
/// start-up (`dyn KvBackend`) and network backends can wait without blocking.
pub type KvFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, KvError>> + Send + 'a>>;

/// A bucket: a named set of keys, either one function's own or shared by the
/// app. Names are validated before they get here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BucketId {
    /// The bucket of the function with this name, shared by all its versions
    /// and deleted with it.
    Function(String),
    /// An app-wide bucket with this name, opened by functions granted it.
    App(String),
}

impl BucketId {
    /// A stable name for storage: `fn/NAME` or `app/NAME`; the two kinds can
    /// never collide.
    pub fn storage_name(&self) -> String {
        match self {
            BucketId::Function(name) => format!("fn/{name}"),
            BucketId::App(name) => format!("app/{name}"),
        }
    }
}

impl std::fmt::Display for BucketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BucketId::Function(name) => write!(f, "function `{name}`'s own bucket"),
            BucketId::App(name) => write!(f, "app bucket `{name}`"),
        }
    }
}

/// Size limits a backend enforces on every write. `Default` is the
/// production default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most bytes one bucket may hold, counting each key and its value.
    pub max_bucket_bytes: u64,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_bucket_bytes: DEFAULT_MAX_BUCKET_BYTES,
        }
    }
}

impl KvLimits {
    /// Refuses a key longer than [`KvLimits::max_key_bytes`].
    pub fn check_key(&self, key: &str) -> Result<(), KvError> {
        if key.len() > self.max_key_bytes {
            return Err(KvError::KeyTooLarge {
                bytes: key.len(),
                limit: self.max_key_bytes,
            });
        }
        Ok(())
    }

    /// Refuses a key or value over its limit.
    pub fn check_entry(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.check_key(key)?;
        if value.len() > self.max_value_bytes {
            return Err(KvError::ValueTooLarge {
                key: key.to_owned(),
                bytes: value.len(),
                limit: self.max_value_bytes,
            });
        }
        Ok(())
    }
}

/// Adds a value of `len` bytes read to `total`, refusing past `max_bytes`.
pub(crate) fn count_read(total: &mut usize, len: usize, max_bytes: usize) -> Result<(), KvError> {
    *total = total.saturating_add(len);
    if *total > max_bytes {
        return Err(KvError::ReadTooLarge { limit: max_bytes });
    }
    Ok(())
}

/// The bytes an entry counts against its bucket's limit.
pub(super) fn entry_bytes(key: &str, value_len: usize) -> u64 {
    (key.len() + value_len) as u64
}

/// One page of a bucket's keys, in byte order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPage {
    /// The keys on this page.
    pub keys: Vec<String>,
    /// Pass this as `after` to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Why a key-value call failed. Limit breaches are the guest's doing and are
/// reported to it; [`KvError::Backend`] and [`KvError::Stopped`] are the host's.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KvError {
    /// A key over [`KvLimits::max_key_bytes`].
    #[error("a key of {bytes} bytes is over the {limit}-byte key limit")]
    KeyTooLarge {
        /// The key's length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A value over [`KvLimits::max_value_bytes`].
    #[error("the value for key `{key}` is {}, over the {} value limit", format_size(*.bytes as u64), format_size(*.limit as u64))]
    ValueTooLarge {
        /// The key it was for.
        key: String,
        /// The value's length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A write that would take a bucket over [`KvLimits::max_bucket_bytes`].
    #[error("{bucket} would hold {}, over its {} limit", format_size(*.would_hold), format_size(*.limit))]
    BucketFull {
        /// The bucket.
        bucket: BucketId,
        /// What it would have held after the write, in bytes.
        would_hold: u64,
        /// The limit.
        limit: u64,
    },
    /// A batch read whose values add up to more than the caller may take.
    #[error("the values read add up to more than {}, the most one read may return (the function's memory limit)", format_size(*.limit as u64))]
    ReadTooLarge {
        /// The most the read could return, in bytes.
        limit: usize,
    },
    /// `increment` on a value that is not a decimal integer.
    #[error("the value of key `{key}` is not a decimal integer, so it cannot be incremented")]
    NotAnInteger {
        /// The key.
        key: String,
    },
    /// `increment` past what a signed 64-bit integer holds.
    #[error("incrementing key `{key}` would overflow a signed 64-bit integer")]
    Overflow {
        /// The key.
        key: String,
    },
    /// The storage underneath failed; nothing of the call was kept.
    #[error("key-value storage failed: {0}")]
    Backend(Arc<dyn std::error::Error + Send + Sync>),
    /// The backend has shut down.
    #[error("the key-value store has stopped")]
    Stopped,
}

impl KvError {
    /// The [`KvLimits`] limit this error breached, if it is a breach.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            KvError::KeyTooLarge { .. } => Some(Limit::KvKey),
            KvError::ValueTooLarge { .. } => Some(Limit::KvValue),
            KvError::BucketFull { .. } => Some(Limit::KvBucket),
            KvError::ReadTooLarge { .. } => Some(Limit::KvRead),
            _ => None,
        }
    }
}

/// A key-value store of buckets. Reads see every write that resolved before
/// they began; a write that resolves `Ok` is durable. Each call is atomic:
/// the batch calls too, so a refused batch changes nothing.
pub trait KvBackend: Send + Sync + 'static {
    /// The value of `key`, if any.
    fn get<'a>(&'a self, bucket: &'a BucketId, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>>;

    /// The values of `keys`, in order, read from one snapshot; refused with
    /// [`KvError::ReadTooLarge`] as soon as the values read add up to more
    /// than `max_bytes`, before more are read (a guest may name one large
    /// key many times).
    fn get_many<'a>(
        &'a self,
        bucket: &'a BucketId,
        keys: &'a [String],
        max_bytes: usize,
    ) -> KvFuture<'a, Vec<Option<Vec<u8>>>>;

    /// True when `key` has a value.
    fn exists<'a>(&'a self, bucket: &'a BucketId, key: &'a str) -> KvFuture<'a, bool>;

    /// Up to `limit` keys (at least one) after `after`, from the first key
    /// when `None`.
    fn list_keys<'a>(
        &'a self,
        bucket: &'a BucketId,
        after: Option<&'a str>,
        limit: usize,
    ) -> KvFuture<'a, KeyPage>;

    /// Sets `key` to `value`.
    fn set<'a>(&'a self, bucket: &'a BucketId, key: String, value: Vec<u8>) -> KvFuture<'a, ()>;

    /// Sets every entry, all or none; a key given twice keeps its last value.
    fn set_many<'a>(
        &'a self,
        bucket: &'a BucketId,
        entries: Vec<(String, Vec<u8>)>,
    ) -> KvFuture<'a, ()>;

    /// Deletes `key`; deleting a missing key is not an error.
    fn delete<'a>(&'a self, bucket: &'a BucketId, key: String) -> KvFuture<'a, ()>;

    /// Deletes every key in `keys`.
    fn delete_many<'a>(&'a self, bucket: &'a BucketId, keys: Vec<String>) -> KvFuture<'a, ()>;

    /// Adds `delta` to the decimal integer at `key` (a missing key counts as
    /// 0) and returns the new value; concurrent increments all count.
    fn increment<'a>(&'a self, bucket: &'a BucketId, key: String, delta: i64) -> KvFuture<'a, i64>;

    /// Sets `key` to `new` only if its value is still `expected` (`None`:
    /// still missing); returns whether it did.
    fn compare_and_swap<'a>(
        &'a self,
        bucket: &'a BucketId,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> KvFuture<'a, bool>;

    /// Bytes `bucket` holds, as counted against its limit.
    fn bucket_bytes<'a>(&'a self, bucket: &'a BucketId) -> KvFuture<'a, u64>;

    /// The names of the functions that have an own bucket.
    fn function_buckets(&self) -> KvFuture<'_, Vec<String>>;

    /// Deletes `bucket` and everything in it; a missing bucket is not an
    /// error.
    fn delete_bucket<'a>(&'a self, bucket: &'a BucketId) -> KvFuture<'a, ()>;

    /// Why the store cannot be used now (a damaged file, named), if so.
    fn damage(&self) -> Option<String> {
        None
    }
}
