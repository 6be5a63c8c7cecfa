//! The redb store's writes, applied by its group-commit writer
//! (`group_commit.rs`).
//!
//! Each write is checked against the limits before it changes anything, so
//! a refused write answers its caller with the error while the rest of the
//! batch commits.

use super::group_commit::{Answer, BatchWrite, StorageFailure, answer as answer_with, failure_of};
use super::store::{BucketId, KvError, KvLimits, entry_bytes};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use std::collections::BTreeMap;
use tokio::sync::oneshot;

/// Bytes held per bucket, keyed by [`BucketId::storage_name`].
pub(super) const BUCKET_BYTES: TableDefinition<&str, u64> = TableDefinition::new("bucket-bytes");

/// The table holding a bucket's entries (`storage_name` always has a `/`, so
/// it never meets [`BUCKET_BYTES`]).
pub(super) fn entries_table(
    storage_name: &str,
) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(storage_name)
}

/// Where a write's outcome goes once its transaction is committed.
pub(super) type Reply<T> = oneshot::Sender<Result<T, KvError>>;

/// One write waiting for the writer.
pub(super) enum Write {
    /// Set every entry.
    Set {
        entries: Vec<(String, Vec<u8>)>,
        reply: Reply<()>,
    },
    /// Delete every key.
    Delete { keys: Vec<String>, reply: Reply<()> },
    /// Add to a decimal integer.
    Increment {
        key: String,
        delta: i64,
        reply: Reply<i64>,
    },
    /// Set if unchanged.
    Swap {
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        reply: Reply<bool>,
    },
    /// Delete the bucket.
    DropBucket { reply: Reply<()> },
}

/// A write to one bucket: what the group-commit writer is sent.
pub(super) struct KvWrite {
    pub(super) bucket: BucketId,
    pub(super) write: Write,
}

impl BatchWrite for KvWrite {
    type Context = KvLimits;

    fn payload_bytes(&self) -> usize {
        match &self.write {
            Write::Set { entries, .. } => entries.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Write::Delete { keys, .. } => keys.iter().map(String::len).sum(),
            Write::Increment { key, .. } => key.len(),
            Write::Swap { key, new, .. } => key.len() + new.len(),
            Write::DropBucket { .. } => 0,
        }
    }

    fn apply(
        self,
        txn: &WriteTransaction,
        limits: &KvLimits,
        failure: &mut Option<StorageFailure>,
    ) -> Answer {
        let bucket = &self.bucket;
        match self.write {
            Write::Set { entries, reply } => {
                settle(reply, set_entries(txn, limits, bucket, entries), failure)
            }
            Write::Delete { keys, reply } => settle(reply, delete_keys(txn, bucket, keys), failure),
            Write::Increment { key, delta, reply } => {
                settle(reply, increment(txn, limits, bucket, key, delta), failure)
            }
            Write::Swap {
                key,
                expected,
                new,
                reply,
            } => settle(
                reply,
                swap(txn, limits, bucket, key, expected, new),
                failure,
            ),
            Write::DropBucket { reply } => settle(reply, drop_bucket(txn, bucket), failure),
        }
    }

    fn skip(self) -> Answer {
        match self.write {
            Write::Set { reply, .. }
            | Write::Delete { reply, .. }
            | Write::DropBucket { reply } => answer(reply, Err(KvError::Stopped)),
            Write::Increment { reply, .. } => answer(reply, Err(KvError::Stopped)),
            Write::Swap { reply, .. } => answer(reply, Err(KvError::Stopped)),
        }
    }
}

fn answer<T: Send + 'static>(reply: Reply<T>, outcome: Result<T, KvError>) -> Answer {
    answer_with(reply, outcome, |failure| KvError::Backend(failure.clone()))
}

/// Makes the answer for an applied write; a storage failure fails the batch.
fn settle<T: Send + 'static>(
    reply: Reply<T>,
    outcome: Result<T, KvError>,
    failure: &mut Option<StorageFailure>,
) -> Answer {
    if let Err(KvError::Backend(error)) = &outcome {
        *failure = Some(error.clone());
    }
    answer(reply, outcome)
}

pub(super) fn storage(error: impl Into<redb::Error>) -> KvError {
    KvError::Backend(failure_of(error))
}

/// A bucket open for writing: its entries and the bytes it holds.
struct OpenBucket<'t> {
    id: &'t BucketId,
    name: String,
    entries: Table<'t, &'static str, &'static [u8]>,
    held: u64,
}

impl<'t> OpenBucket<'t> {
    fn open(txn: &'t WriteTransaction, id: &'t BucketId) -> Result<Self, KvError> {
        let name = id.storage_name();
        let held = txn
            .open_table(BUCKET_BYTES)
            .map_err(storage)?
            .get(name.as_str())
            .map_err(storage)?
            .map_or(0, |bytes| bytes.value());
        let entries = txn.open_table(entries_table(&name)).map_err(storage)?;
        Ok(OpenBucket {
            id,
            name,
            entries,
            held,
        })
    }

    fn value(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .entries
            .get(key)
            .map_err(storage)?
            .map(|value| value.value().to_vec()))
    }

    fn counted(&self, key: &str) -> Result<u64, KvError> {
        Ok(self
            .entries
            .get(key)
            .map_err(storage)?
            .map_or(0, |value| entry_bytes(key, value.value().len())))
    }

    /// What the bucket would hold after freeing `freed` and adding `added`
    /// bytes; refused past the limit, unless the write shrinks the bucket.
    fn admit(&self, limits: &KvLimits, freed: u64, added: u64) -> Result<u64, KvError> {
        let would_hold = self.held.saturating_sub(freed).saturating_add(added);
        if would_hold > limits.max_bucket_bytes && would_hold > self.held {
            return Err(KvError::BucketFull {
                bucket: self.id.clone(),
                would_hold,
                limit: limits.max_bucket_bytes,
            });
        }
        Ok(would_hold)
    }

    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.entries.insert(key, value).map_err(storage)?;
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<u64, KvError> {
        Ok(self
            .entries
            .remove(key)
            .map_err(storage)?
            .map_or(0, |value| entry_bytes(key, value.value().len())))
    }

    /// Records what the bucket now holds.
    fn finish(self, txn: &WriteTransaction, held: u64) -> Result<(), KvError> {
        drop(self.entries);
        let mut sizes = txn.open_table(BUCKET_BYTES).map_err(storage)?;
        if held == 0 {
            sizes.remove(self.name.as_str()).map_err(storage)?;
        } else {
            sizes.insert(self.name.as_str(), held).map_err(storage)?;
        }
        Ok(())
    }
}

fn set_entries(
    txn: &WriteTransaction,
    limits: &KvLimits,
    id: &BucketId,
    entries: Vec<(String, Vec<u8>)>,
) -> Result<(), KvError> {
    let entries: BTreeMap<String, Vec<u8>> = entries.into_iter().collect();
    for (key, value) in &entries {
        limits.check_entry(key, value)?;
    }
    let mut bucket = OpenBucket::open(txn, id)?;
    let mut freed = 0;
    let mut added = 0;
    for (key, value) in &entries {
        freed += bucket.counted(key)?;
        added += entry_bytes(key, value.len());
    }
    let held = bucket.admit(limits, freed, added)?;
    for (key, value) in &entries {
        bucket.put(key, value)?;
    }
    bucket.finish(txn, held)
}

fn delete_keys(txn: &WriteTransaction, id: &BucketId, keys: Vec<String>) -> Result<(), KvError> {
    let mut bucket = OpenBucket::open(txn, id)?;
    let mut freed = 0;
    for key in &keys {
        freed += bucket.remove(key)?;
    }
    let held = bucket.held.saturating_sub(freed);
    bucket.finish(txn, held)
}

fn increment(
    txn: &WriteTransaction,
    limits: &KvLimits,
    id: &BucketId,
    key: String,
    delta: i64,
) -> Result<i64, KvError> {
    limits.check_key(&key)?;
    let mut bucket = OpenBucket::open(txn, id)?;
    let current = match bucket.value(&key)? {
        None => 0,
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .ok_or_else(|| KvError::NotAnInteger { key: key.clone() })?,
    };
    let next = current
        .checked_add(delta)
        .ok_or_else(|| KvError::Overflow { key: key.clone() })?;
    let text = next.to_string();
    let held = bucket.admit(limits, bucket.counted(&key)?, entry_bytes(&key, text.len()))?;
    bucket.put(&key, text.as_bytes())?;
    bucket.finish(txn, held)?;
    Ok(next)
}

fn swap(
    txn: &WriteTransaction,
    limits: &KvLimits,
    id: &BucketId,
    key: String,
    expected: Option<Vec<u8>>,
    new: Vec<u8>,
) -> Result<bool, KvError> {
    limits.check_entry(&key, &new)?;
    let mut bucket = OpenBucket::open(txn, id)?;
    if bucket.value(&key)? != expected {
        return Ok(false);
    }
    let held = bucket.admit(limits, bucket.counted(&key)?, entry_bytes(&key, new.len()))?;
    bucket.put(&key, &new)?;
    bucket.finish(txn, held)?;
    Ok(true)
}

fn drop_bucket(txn: &WriteTransaction, id: &BucketId) -> Result<(), KvError> {
    let name = id.storage_name();
    txn.delete_table(entries_table(&name)).map_err(storage)?;
    txn.open_table(BUCKET_BYTES)
        .map_err(storage)?
        .remove(name.as_str())
        .map_err(storage)?;
    Ok(())
}
