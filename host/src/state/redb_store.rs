//! [`RedbStore`]: the embedded, durable [`KvBackend`] of a single node, one
//! redb file at `DATA_DIR/state/kv.redb`.
//!
//! Each bucket is a redb table (`fn/NAME`, `app/NAME`) of keys to values,
//! and one more table counts the bytes each bucket holds, so the bucket limit
//! is checked without a scan. Reads run on the caller's thread from a
//! snapshot (no I/O once pages are cached, so they do not leave the
//! reactor); writes (`redb_writer.rs`) go to the group-commit writer and
//! resolve only once committed with redb's default, immediate durability.

use super::db_slot::DbSlot;
use super::group_commit::GroupCommit;
use super::redb_writer::{BUCKET_BYTES, KvWrite, Write, entries_table, storage};
use super::store::{BucketId, KeyPage, KvBackend, KvError, KvFuture, KvLimits, count_read};
use redb::{ReadOnlyTable, ReadableDatabase, TableError, TableHandle};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::oneshot;

/// The store's file, relative to the data dir.
const KV_FILE: &str = "state/kv.redb";

/// The embedded key-value store. A write is queued when it is called, so
/// dropping its future does not undo it. Dropping the store finishes the
/// queued writes and closes the file.
pub struct RedbStore {
    writer: GroupCommit<KvWrite>,
    db: Arc<DbSlot>,
    limits: KvLimits,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("limits", &self.limits)
            .finish()
    }
}

impl RedbStore {
    /// Opens (creating if needed) the store under `data_dir`, enforcing
    /// `limits` on every write. Blocks: call it at start-up. A file that
    /// cannot be opened (damaged) does not fail the start: every call fails
    /// instead, saying why, until the file is repaired or removed
    /// ([`KvBackend::damage`]).
    pub fn open(data_dir: &Path, limits: KvLimits) -> Result<RedbStore, KvError> {
        let db = Arc::new(DbSlot::open(data_dir, KV_FILE, |_| Ok(())).map_err(storage)?);
        let writer =
            GroupCommit::start("wisp-kv-writer", Arc::clone(&db), limits).map_err(storage)?;
        Ok(RedbStore { writer, db, limits })
    }

    /// Where the store lives under `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(KV_FILE)
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> KvLimits {
        self.limits
    }

    /// A read transaction on the database, or why there is none.
    fn begin_read(&self) -> Result<redb::ReadTransaction, KvError> {
        let db = self.db.get().map_err(KvError::Backend)?;
        db.begin_read().map_err(storage)
    }

    /// Runs `read` over a snapshot of `bucket`'s table (`None`: the bucket
    /// has never been written).
    fn read<T>(
        &self,
        bucket: &BucketId,
        read: impl FnOnce(
            Option<&ReadOnlyTable<&'static str, &'static [u8]>>,
        ) -> Result<T, redb::StorageError>,
    ) -> Result<T, KvError> {
        let txn = self.begin_read()?;
        let name = bucket.storage_name();
        match txn.open_table(entries_table(&name)) {
            Ok(table) => read(Some(&table)).map_err(storage),
            Err(TableError::TableDoesNotExist(_)) => read(None).map_err(storage),
            Err(error) => Err(storage(error)),
        }
    }

    /// Queues a write and waits for its commit.
    fn write<T: Send + 'static>(
        &self,
        bucket: &BucketId,
        write: impl FnOnce(oneshot::Sender<Result<T, KvError>>) -> Write,
    ) -> KvFuture<'static, T> {
        let (reply, answer) = oneshot::channel();
        self.writer.submit(KvWrite {
            bucket: bucket.clone(),
            write: write(reply),
        });
        Box::pin(async move { answer.await.map_err(|_| KvError::Stopped)? })
    }
}

fn ready<'a, T: Send + 'a>(result: Result<T, KvError>) -> KvFuture<'a, T> {
    Box::pin(std::future::ready(result))
}

impl KvBackend for RedbStore {
    fn damage(&self) -> Option<String> {
        self.db.trouble()
    }

    fn get<'a>(&'a self, bucket: &'a BucketId, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        ready(self.read(bucket, |table| {
            let Some(table) = table else { return Ok(None) };
            Ok(table.get(key)?.map(|value| value.value().to_vec()))
        }))
    }

    fn get_many<'a>(
        &'a self,
        bucket: &'a BucketId,
        keys: &'a [String],
        max_bytes: usize,
    ) -> KvFuture<'a, Vec<Option<Vec<u8>>>> {
        let read = self.read(bucket, |table| {
            let Some(table) = table else {
                return Ok(Ok(vec![None; keys.len()]));
            };
            let mut total = 0;
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                let Some(value) = table.get(key.as_str())? else {
                    values.push(None);
                    continue;
                };
                let value = value.value();
                if let Err(refused) = count_read(&mut total, value.len(), max_bytes) {
                    return Ok(Err(refused));
                }
                values.push(Some(value.to_vec()));
            }
            Ok(Ok(values))
        });
        ready(read.and_then(|values| values))
    }

    fn exists<'a>(&'a self, bucket: &'a BucketId, key: &'a str) -> KvFuture<'a, bool> {
        ready(self.read(bucket, |table| match table {
            Some(table) => Ok(table.get(key)?.is_some()),
            None => Ok(false),
        }))
    }

    fn list_keys<'a>(
        &'a self,
        bucket: &'a BucketId,
        after: Option<&'a str>,
        limit: usize,
    ) -> KvFuture<'a, KeyPage> {
        ready(self.read(bucket, |table| {
            let Some(table) = table else {
                return Ok(KeyPage::default());
            };
            let start = after.map_or(Bound::Unbounded, Bound::Excluded);
            // An empty page could not say where the next one starts.
            let limit = limit.max(1);
            let mut keys = Vec::new();
            let mut more = false;
            for entry in table.range::<&str>((start, Bound::Unbounded))? {
                if keys.len() == limit {
                    more = true;
                    break;
                }
                keys.push(entry?.0.value().to_owned());
            }
            let next = if more { keys.last().cloned() } else { None };
            Ok(KeyPage { keys, next })
        }))
    }

    fn set<'a>(&'a self, bucket: &'a BucketId, key: String, value: Vec<u8>) -> KvFuture<'a, ()> {
        self.write(bucket, |reply| Write::Set {
            entries: vec![(key, value)],
            reply,
        })
    }

    fn set_many<'a>(
        &'a self,
        bucket: &'a BucketId,
        entries: Vec<(String, Vec<u8>)>,
    ) -> KvFuture<'a, ()> {
        self.write(bucket, |reply| Write::Set { entries, reply })
    }

    fn delete<'a>(&'a self, bucket: &'a BucketId, key: String) -> KvFuture<'a, ()> {
        self.write(bucket, |reply| Write::Delete {
            keys: vec![key],
            reply,
        })
    }

    fn delete_many<'a>(&'a self, bucket: &'a BucketId, keys: Vec<String>) -> KvFuture<'a, ()> {
        self.write(bucket, |reply| Write::Delete { keys, reply })
    }

    fn increment<'a>(&'a self, bucket: &'a BucketId, key: String, delta: i64) -> KvFuture<'a, i64> {
        self.write(bucket, |reply| Write::Increment { key, delta, reply })
    }

    fn compare_and_swap<'a>(
        &'a self,
        bucket: &'a BucketId,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> KvFuture<'a, bool> {
        self.write(bucket, |reply| Write::Swap {
            key,
            expected,
            new,
            reply,
        })
    }

    fn bucket_bytes<'a>(&'a self, bucket: &'a BucketId) -> KvFuture<'a, u64> {
        let held = || -> Result<u64, KvError> {
            let txn = self.begin_read()?;
            let sizes = match txn.open_table(BUCKET_BYTES) {
                Ok(sizes) => sizes,
                Err(TableError::TableDoesNotExist(_)) => return Ok(0),
                Err(error) => return Err(storage(error)),
            };
            let held = sizes.get(bucket.storage_name().as_str()).map_err(storage)?;
            Ok(held.map_or(0, |bytes| bytes.value()))
        };
        ready(held())
    }

    fn function_buckets(&self) -> KvFuture<'_, Vec<String>> {
        let names = || -> Result<Vec<String>, KvError> {
            let txn = self.begin_read()?;
            let tables = txn.list_tables().map_err(storage)?;
            Ok(tables
                .filter_map(|table| {
                    let own = BucketId::Function(String::new()).storage_name();
                    table.name().strip_prefix(own.as_str()).map(str::to_owned)
                })
                .collect())
        };
        ready(names())
    }

    fn delete_bucket<'a>(&'a self, bucket: &'a BucketId) -> KvFuture<'a, ()> {
        self.write(bucket, |reply| Write::DropBucket { reply })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn open(dir: &tempfile::TempDir, limits: KvLimits) -> RedbStore {
        RedbStore::open(dir.path(), limits).unwrap()
    }

    fn own(name: &str) -> BucketId {
        BucketId::Function(name.to_owned())
    }

    #[tokio::test]
    async fn values_round_trip_one_at_a_time_and_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, KvLimits::default());
        let bucket = own("hello");
        assert_eq!(store.get(&bucket, "k").await.unwrap(), None);
        assert!(!store.exists(&bucket, "k").await.unwrap());

        store
            .set(&bucket, "k".into(), b"v1".to_vec())
            .await
            .unwrap();
        store
            .set(&bucket, "k".into(), b"v2".to_vec())
            .await
            .unwrap();
        assert_eq!(store.get(&bucket, "k").await.unwrap(), Some(b"v2".to_vec()));
        assert!(store.exists(&bucket, "k").await.unwrap());

        store
            .set_many(
                &bucket,
                vec![
                    ("a".into(), b"1".to_vec()),
                    ("b".into(), b"2".to_vec()),
                    ("a".into(), b"3".to_vec()),
                ],
            )
            .await
            .unwrap();
        let keys = ["a", "b", "missing", "k"].map(String::from);
        assert_eq!(
            store.get_many(&bucket, &keys, usize::MAX).await.unwrap(),
            vec![
                Some(b"3".to_vec()),
                Some(b"2".to_vec()),
                None,
                Some(b"v2".to_vec())
            ]
        );

        store.delete(&bucket, "k".into()).await.unwrap();
        store.delete(&bucket, "never-set".into()).await.unwrap();
        store
            .delete_many(&bucket, vec!["a".into(), "b".into()])
            .await
            .unwrap();
        assert_eq!(
            store.get_many(&bucket, &keys, usize::MAX).await.unwrap(),
            vec![None; 4]
        );
        assert_eq!(store.bucket_bytes(&bucket).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_function_bucket_and_an_app_bucket_of_one_name_are_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, KvLimits::default());
        let app = BucketId::App("shared".into());
        store
            .set(&own("shared"), "k".into(), b"own".to_vec())
            .await
            .unwrap();
        store.set(&app, "k".into(), b"app".to_vec()).await.unwrap();
        assert_eq!(
            store.get(&own("shared"), "k").await.unwrap(),
            Some(b"own".to_vec())
        );
        assert_eq!(store.get(&app, "k").await.unwrap(), Some(b"app".to_vec()));
    }

    #[tokio::test]
    async fn list_keys_pages_through_every_key_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, KvLimits::default());
        let bucket = own("lister");
        assert_eq!(
            store.list_keys(&bucket, None, 10).await.unwrap(),
            KeyPage::default()
        );
        let written: Vec<String> = (0..25).map(|i| format!("key-{i:02}")).collect();
        store
            .set_many(
                &bucket,
                written.iter().map(|k| (k.clone(), Vec::new())).collect(),
            )
            .await
            .unwrap();

        let mut seen = Vec::new();
        let mut page_sizes = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_keys(&bucket, after.as_deref(), 10)
                .await
                .unwrap();
            page_sizes.push(page.keys.len());
            seen.extend(page.keys);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(page_sizes, [10, 10, 5]);
        assert_eq!(seen, written);

        let exact = store.list_keys(&bucket, None, 25).await.unwrap();
        assert_eq!(exact.keys.len(), 25);
        assert_eq!(exact.next, None, "a full last page says there is no more");
        let smallest = store.list_keys(&bucket, None, 0).await.unwrap();
        assert_eq!(smallest.keys, ["key-00"], "a page holds at least one key");
        assert_eq!(smallest.next.as_deref(), Some("key-00"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn increments_from_32_clients_are_exact() {
        const CLIENTS: usize = 32;
        const INCREMENTS: usize = 200;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(&dir, KvLimits::default()));
        let bucket = own("counter");
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let store = Arc::clone(&store);
                let bucket = bucket.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::with_capacity(INCREMENTS);
                    for _ in 0..INCREMENTS {
                        seen.push(store.increment(&bucket, "hits".into(), 1).await.unwrap());
                    }
                    seen
                })
            })
            .collect();
        let mut returned = BTreeSet::new();
        for client in clients {
            returned.extend(client.await.unwrap());
        }
        let total = (CLIENTS * INCREMENTS) as i64;
        assert_eq!(total, 6_400);
        assert_eq!(
            returned,
            (1..=total).collect::<BTreeSet<_>>(),
            "every increment returned its own new value"
        );
        assert_eq!(
            store.get(&bucket, "hits").await.unwrap(),
            Some(b"6400".to_vec())
        );
    }

    #[tokio::test]
    async fn increment_counts_in_decimal_and_refuses_what_it_cannot_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, KvLimits::default());
        let bucket = own("counter");
        assert_eq!(store.increment(&bucket, "n".into(), 5).await.unwrap(), 5);
        assert_eq!(store.increment(&bucket, "n".into(), -7).await.unwrap(), -2);
        assert_eq!(store.get(&bucket, "n").await.unwrap(), Some(b"-2".to_vec()));

        store
            .set(&bucket, "word".into(), b"ten".to_vec())
            .await
            .unwrap();
        let error = store
            .increment(&bucket, "word".into(), 1)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, KvError::NotAnInteger { key } if key == "word"),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "the value of key `word` is not a decimal integer, so it cannot be incremented"
        );

        store
            .set(&bucket, "big".into(), i64::MAX.to_string().into_bytes())
            .await
            .unwrap();
        let error = store.increment(&bucket, "big".into(), 1).await.unwrap_err();
        assert!(matches!(error, KvError::Overflow { .. }), "{error}");
        assert_eq!(
            store.get(&bucket, "big").await.unwrap(),
            Some(i64::MAX.to_string().into_bytes()),
            "a refused increment leaves the value alone"
        );
    }

    #[tokio::test]
    async fn compare_and_swap_writes_only_over_the_expected_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, KvLimits::default());
        let bucket = own("cas");
        let swap = |expected: Option<&[u8]>, new: &[u8]| {
            store.compare_and_swap(
                &bucket,
                "k".into(),
                expected.map(<[u8]>::to_vec),
                new.to_vec(),
            )
        };
        assert!(!swap(Some(b"x"), b"1").await.unwrap(), "missing is not `x`");
        assert!(swap(None, b"1").await.unwrap());
        assert!(!swap(None, b"2").await.unwrap(), "no longer missing");
        assert!(!swap(Some(b"0"), b"2").await.unwrap());
        assert!(swap(Some(b"1"), b"2").await.unwrap());
        assert_eq!(store.get(&bucket, "k").await.unwrap(), Some(b"2".to_vec()));
    }

    #[tokio::test]
    async fn writes_over_a_limit_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let limits = KvLimits {
            max_key_bytes: 8,
            max_value_bytes: 16,
            max_bucket_bytes: 40,
        };
        let store = open(&dir, limits);
        let bucket = own("small");

        let error = store
            .set(&bucket, "k".repeat(9), Vec::new())
            .await
            .unwrap_err();
        assert!(
            matches!(error, KvError::KeyTooLarge { bytes: 9, limit: 8 }),
            "{error}"
        );
        assert!(error.limit().is_some());
        let error = store
            .increment(&bucket, "k".repeat(9), 1)
            .await
            .unwrap_err();
        assert!(matches!(error, KvError::KeyTooLarge { .. }), "{error}");

        let error = store
            .set(&bucket, "k".into(), vec![0; 17])
            .await
            .unwrap_err();
        assert!(
            matches!(&error, KvError::ValueTooLarge { key, bytes: 17, limit: 16 } if key == "k"),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "the value for key `k` is 17B, over the 16B value limit"
        );

        // 2 × (1 + 16) = 34 bytes fit; a third entry would make 51.
        store.set(&bucket, "a".into(), vec![1; 16]).await.unwrap();
        store.set(&bucket, "b".into(), vec![2; 16]).await.unwrap();
        assert_eq!(store.bucket_bytes(&bucket).await.unwrap(), 34);
        let error = store
            .set(&bucket, "c".into(), vec![3; 16])
            .await
            .unwrap_err();
        assert!(
            matches!(&error, KvError::BucketFull { bucket: b, would_hold: 51, limit: 40 } if *b == bucket),
            "{error}"
        );
        assert!(error.limit().is_some());
        let error = store
            .set_many(
                &bucket,
                vec![("d".into(), vec![4; 1]), ("e".into(), vec![5; 16])],
            )
            .await
            .unwrap_err();
        assert!(matches!(error, KvError::BucketFull { .. }), "{error}");
        let keys = ["c", "d", "e"].map(String::from);
        assert_eq!(
            store.get_many(&bucket, &keys, usize::MAX).await.unwrap(),
            vec![None; 3],
            "a refused batch writes none of its entries"
        );
        assert_eq!(store.bucket_bytes(&bucket).await.unwrap(), 34);

        // Overwriting with a smaller value frees room.
        store.set(&bucket, "a".into(), vec![1; 1]).await.unwrap();
        assert_eq!(store.bucket_bytes(&bucket).await.unwrap(), 19);
        store.set(&bucket, "c".into(), vec![3; 16]).await.unwrap();
        assert_eq!(store.bucket_bytes(&bucket).await.unwrap(), 36);
    }

    #[tokio::test]
    async fn a_refused_write_leaves_the_writes_around_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let limits = KvLimits {
            max_value_bytes: 4,
            ..KvLimits::default()
        };
        let store = open(&dir, limits);
        let bucket = own("mixed");
        let (good, bad, also_good) = tokio::join!(
            store.set(&bucket, "a".into(), b"ok".to_vec()),
            store.set(&bucket, "b".into(), b"too long".to_vec()),
            store.increment(&bucket, "c".into(), 3),
        );
        good.unwrap();
        assert!(matches!(bad, Err(KvError::ValueTooLarge { .. })));
        assert_eq!(also_good.unwrap(), 3);
        assert_eq!(store.get(&bucket, "a").await.unwrap(), Some(b"ok".to_vec()));
        assert_eq!(store.get(&bucket, "b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn committed_writes_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = BucketId::App("sessions".into());
        {
            let store = open(&dir, KvLimits::default());
            store
                .set(&bucket, "s1".into(), b"alice".to_vec())
                .await
                .unwrap();
            store.increment(&bucket, "n".into(), 41).await.unwrap();
        }
        assert!(RedbStore::path(dir.path()).is_file());
        let store = open(&dir, KvLimits::default());
        assert_eq!(
            store.get(&bucket, "s1").await.unwrap(),
            Some(b"alice".to_vec())
        );
        assert_eq!(store.increment(&bucket, "n".into(), 1).await.unwrap(), 42);
        assert_eq!(store.bucket_bytes(&bucket).await.unwrap(), 2 + 5 + 1 + 2);
    }

    #[tokio::test]
    async fn deleting_a_bucket_empties_it_and_only_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, KvLimits::default());
        let gone = own("gone");
        let kept = own("kept");
        for bucket in [&gone, &kept] {
            store
                .set_many(
                    bucket,
                    vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())],
                )
                .await
                .unwrap();
        }
        store.delete_bucket(&gone).await.unwrap();
        assert_eq!(
            store.list_keys(&gone, None, 10).await.unwrap(),
            KeyPage::default()
        );
        assert_eq!(store.bucket_bytes(&gone).await.unwrap(), 0);
        assert_eq!(store.get(&gone, "a").await.unwrap(), None);
        assert_eq!(
            store.list_keys(&kept, None, 10).await.unwrap().keys,
            ["a", "b"]
        );
        assert_eq!(store.bucket_bytes(&kept).await.unwrap(), 4);
        store
            .set(&BucketId::App("shared".into()), "x".into(), Vec::new())
            .await
            .unwrap();
        assert_eq!(
            store.function_buckets().await.unwrap(),
            ["kept"],
            "app buckets are not listed"
        );

        store.delete_bucket(&own("never-written")).await.unwrap();
        store.set(&gone, "fresh".into(), Vec::new()).await.unwrap();
        assert_eq!(
            store.list_keys(&gone, None, 10).await.unwrap().keys,
            ["fresh"]
        );
    }

    /// Set in the child of `acknowledged_writes_survive_kill_9`: the data dir
    /// it writes into until it is killed.
    const CRASH_CHILD_DIR: &str = "WISP_KV_CRASH_CHILD_DIR";

    #[test]
    fn acknowledged_writes_survive_kill_9() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        if let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) {
            return write_until_killed(Path::new(&dir));
        }
        const ACKS_BEFORE_KILL: usize = 300;
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "state::redb_store::tests::acknowledged_writes_survive_kill_9",
                "--nocapture",
            ])
            .env(CRASH_CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut acked = Vec::new();
        for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
            if let Some(key) = line.unwrap().strip_prefix("acked ") {
                acked.push(key.to_owned());
                if acked.len() == ACKS_BEFORE_KILL {
                    child.kill().unwrap();
                    break;
                }
            }
        }
        let status = child.wait().unwrap();
        assert_eq!(acked.len(), ACKS_BEFORE_KILL, "the child wrote too little");
        assert!(!status.success(), "the child was killed, not finished");

        let store = open(&dir, KvLimits::default());
        let bucket = own("crash");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let found = runtime
            .block_on(store.get_many(&bucket, &acked, usize::MAX))
            .unwrap();
        let lost: Vec<_> = acked
            .iter()
            .zip(&found)
            .filter(|(key, value)| value.as_deref() != Some(key.as_bytes()))
            .map(|(key, _)| key)
            .collect();
        assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    }

    /// The child: 8 concurrent writers, each printing a key once its write
    /// is acknowledged, until killed (or, bounded, after 10,000 keys each).
    fn write_until_killed(dir: &Path) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = Arc::new(RedbStore::open(dir, KvLimits::default()).unwrap());
            let writers: Vec<_> = (0..8)
                .map(|writer| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move {
                        let bucket = own("crash");
                        for n in 0..10_000 {
                            let key = format!("w{writer}-{n}");
                            store
                                .set(&bucket, key.clone(), key.clone().into_bytes())
                                .await
                                .unwrap();
                            println!("acked {key}");
                        }
                    })
                })
                .collect();
            for writer in writers {
                writer.await.unwrap();
            }
        });
    }

    #[test]
    fn a_second_open_of_one_file_is_refused_not_shared() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open(&dir, KvLimits::default());
        let error = RedbStore::open(dir.path(), KvLimits::default()).unwrap_err();
        assert!(matches!(error, KvError::Backend(_)), "{error}");
    }
}
