//! [`CallQueue`]: every async call, durably, in one redb file at
//! `DATA_DIR/state/calls.redb`.
//!
//! A call is a [`CallRecord`] (postcard) keyed by its id, plus its request
//! body and, once it has one, its result body, each in a table of its own
//! so listings never read bodies. Two indexes order the work: `call-queue`
//! holds `(due ms, id)` for every queued call, `call-finished` holds
//! `(finished ms, id)` for every done or failed one, which the retention
//! sweep reads. Writes go through the group-commit writer and resolve only
//! once fsynced, so a `202` is never given for a call a crash could lose.
//!
//! Which calls are running is kept in memory only: a running call stays
//! queued on disk, so after a crash it simply runs again (at-least-once).

use super::backlog::{Backlog, Caps, Full};
use super::record::CallRecord;
use crate::state::db_slot::DbSlot;
use crate::state::group_commit::{
    Answer, BatchWrite, GroupCommit, StorageFailure, answer, failure_of,
};
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, oneshot};

/// The queue's file, relative to the data dir.
const CALLS_FILE: &str = "state/calls.redb";

/// Id → record.
const CALLS: TableDefinition<&str, &[u8]> = TableDefinition::new("calls");
/// Id → request body.
const REQUESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("call-requests");
/// Id → the kept part of the result body.
const RESULTS: TableDefinition<&str, &[u8]> = TableDefinition::new("call-results");
/// (due ms, id) of every queued call.
const QUEUE: TableDefinition<(u64, &str), ()> = TableDefinition::new("call-queue");
/// (finished ms, id) of every done or failed call.
const FINISHED: TableDefinition<(u64, &str), ()> = TableDefinition::new("call-finished");

/// Why the queue could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The file could not be read or written.
    #[error("the call queue's storage failed: {0}")]
    Storage(StorageFailure),
    /// The writer thread is gone (the host is stopping).
    #[error("the call queue has stopped")]
    Stopped,
    /// A stored record could not be decoded.
    #[error("a stored call is unreadable: {0}")]
    Corrupt(String),
    /// Cluster mode, and JetStream could not be used.
    #[error("the cluster's call queue failed: {0}")]
    Cluster(String),
    /// A cap on queued calls leaves no room for this one.
    #[error(transparent)]
    Full(#[from] Full),
}

impl QueueError {
    /// True when the storage underneath is out of space.
    pub(crate) fn is_out_of_space(&self) -> bool {
        match self {
            QueueError::Storage(failure) => crate::state::is_out_of_space(&**failure),
            QueueError::Cluster(text) => text.contains("insufficient") && text.contains("storage"),
            _ => false,
        }
    }
}

fn storage(error: impl Into<redb::Error>) -> QueueError {
    QueueError::Storage(failure_of(error))
}

/// What the dispatcher finds at the head of the queue.
pub(crate) enum Claim {
    /// A due call, now marked running, with its request body.
    Ready(Box<CallRecord>, Bytes),
    /// Nothing due: the next call is due at this ms (`None`: none queued).
    Wait(Option<u64>),
}

/// The durable call queue. Dropping it finishes queued writes and closes
/// the file.
pub(crate) struct CallQueue {
    db: Arc<DbSlot>,
    writer: GroupCommit<CallWrite>,
    /// Id → when its running attempt started (ms).
    running: Mutex<HashMap<String, u64>>,
    /// Woken when a call is queued.
    pub(crate) wake: Arc<Notify>,
    /// The calls queued and not finished, counted against the caps.
    backlog: Backlog,
}

impl CallQueue {
    /// Opens (creating if needed) the queue under `data_dir`. Blocks.
    /// A damaged file does not fail it: calls fail instead, saying why,
    /// until the file is repaired or removed ([`CallQueue::damage`]).
    pub(crate) fn open(data_dir: &Path) -> Result<CallQueue, QueueError> {
        let db = Arc::new(DbSlot::open(data_dir, CALLS_FILE, create_tables).map_err(storage)?);
        let backlog = match db.get() {
            Ok(open) => backlog_of(&open)?,
            Err(_) => Backlog::default(),
        };
        let writer =
            GroupCommit::start("wisp-call-writer", Arc::clone(&db), ()).map_err(storage)?;
        Ok(CallQueue {
            db,
            writer,
            running: Mutex::new(HashMap::new()),
            wake: Arc::new(Notify::new()),
            backlog,
        })
    }

    /// Stores a new call and its request body if `caps` leave room for it;
    /// resolves once durable.
    pub(crate) async fn accept(
        &self,
        record: &CallRecord,
        body: Bytes,
        caps: Caps,
    ) -> Result<(), QueueError> {
        self.backlog
            .admit(&record.id, &record.function, body.len() as u64, caps)?;
        if let Err(error) = self.write(record, None, Some(body), None).await {
            self.backlog.finish(&record.id);
            return Err(error);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Stores `record` as it now stands (queued again for a retry, or
    /// finished with `result`), moving it off the queue slot `old_due`.
    pub(crate) async fn save(
        &self,
        record: &CallRecord,
        old_due: Option<u64>,
        result: Option<Bytes>,
    ) -> Result<(), QueueError> {
        self.write(record, old_due, None, result).await?;
        if record.state.is_final() {
            self.backlog.finish(&record.id);
        }
        Ok(())
    }

    async fn write(
        &self,
        record: &CallRecord,
        old_due: Option<u64>,
        request: Option<Bytes>,
        result: Option<Bytes>,
    ) -> Result<(), QueueError> {
        let encoded =
            postcard::to_stdvec(record).map_err(|e| QueueError::Corrupt(e.to_string()))?;
        let (reply, done) = oneshot::channel();
        self.writer.submit(CallWrite::Save {
            id: record.id.clone(),
            record: encoded,
            queue: (!record.state.is_final()).then_some(record.due_ms),
            finished: record.finished_ms.filter(|_| record.state.is_final()),
            old_due,
            request,
            result,
            reply,
        });
        done.await.unwrap_or(Err(QueueError::Stopped))
    }

    /// Deletes every call finished before `cutoff_ms`; returns how many.
    pub(crate) async fn sweep(&self, cutoff_ms: u64) -> Result<usize, QueueError> {
        let (reply, done) = oneshot::channel();
        self.writer.submit(CallWrite::Sweep { cutoff_ms, reply });
        done.await.unwrap_or(Err(QueueError::Stopped))
    }

    /// Takes the first call due by `now_ms` that is not already running,
    /// and marks it running.
    pub(crate) fn claim(&self, now_ms: u64) -> Result<Claim, QueueError> {
        let txn = self.read()?;
        let queue = txn.open_table(QUEUE).map_err(storage)?;
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for entry in queue.iter().map_err(storage)? {
            let (key, _) = entry.map_err(storage)?;
            let (due, id) = key.value();
            if due > now_ms {
                return Ok(Claim::Wait(Some(due)));
            }
            if running.contains_key(id) {
                continue;
            }
            let Some(record) = read_record(&txn, id)? else {
                continue;
            };
            let body = txn
                .open_table(REQUESTS)
                .map_err(storage)?
                .get(id)
                .map_err(storage)?
                .map(|b| Bytes::copy_from_slice(b.value()))
                .unwrap_or_default();
            running.insert(id.to_owned(), now_ms);
            return Ok(Claim::Ready(Box::new(record), body));
        }
        Ok(Claim::Wait(None))
    }

    /// Why the queue's file cannot be used now, naming it, if it cannot.
    pub(crate) fn damage(&self) -> Option<String> {
        self.db.trouble()
    }

    fn read(&self) -> Result<redb::ReadTransaction, QueueError> {
        let db = self.db.get().map_err(QueueError::Storage)?;
        db.begin_read().map_err(storage)
    }

    /// Marks call `id` as no longer running.
    pub(crate) fn release(&self, id: &str) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// When call `id`'s running attempt started, if one is running.
    pub(crate) fn running_since(&self, id: &str) -> Option<u64> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
    }

    /// Call `id` and the kept part of its result body.
    pub(crate) fn get(&self, id: &str) -> Result<Option<(CallRecord, Option<Bytes>)>, QueueError> {
        let txn = self.read()?;
        let Some(record) = read_record(&txn, id)? else {
            return Ok(None);
        };
        let result = txn
            .open_table(RESULTS)
            .map_err(storage)?
            .get(id)
            .map_err(storage)?
            .map(|b| Bytes::copy_from_slice(b.value()));
        Ok(Some((record, result)))
    }

    /// Up to `limit` calls older than `before` (newest first) that `keep`
    /// selects, and whether more are left.
    pub(crate) fn list(
        &self,
        before: Option<&str>,
        limit: usize,
        keep: impl Fn(&CallRecord) -> bool,
    ) -> Result<(Vec<CallRecord>, bool), QueueError> {
        let txn = self.read()?;
        let calls = txn.open_table(CALLS).map_err(storage)?;
        let range = match before {
            Some(before) => calls.range(..before),
            None => calls.range::<&str>(..),
        }
        .map_err(storage)?;
        let mut page = Vec::new();
        for entry in range.rev() {
            let (_, value) = entry.map_err(storage)?;
            let record = decode(value.value())?;
            if !keep(&record) {
                continue;
            }
            if page.len() == limit {
                return Ok((page, true));
            }
            page.push(record);
        }
        Ok((page, false))
    }
}

/// Creates the queue's tables, if new.
fn create_tables(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    for table in [CALLS, REQUESTS, RESULTS] {
        txn.open_table(table)?;
    }
    txn.open_table(QUEUE)?;
    txn.open_table(FINISHED)?;
    txn.commit()?;
    Ok(())
}

/// The calls queued in `db`, counted.
fn backlog_of(db: &Database) -> Result<Backlog, QueueError> {
    let backlog = Backlog::default();
    let txn = db.begin_read().map_err(storage)?;
    let queue = txn.open_table(QUEUE).map_err(storage)?;
    let requests = txn.open_table(REQUESTS).map_err(storage)?;
    for entry in queue.iter().map_err(storage)? {
        let (key, _) = entry.map_err(storage)?;
        let (_, id) = key.value();
        let Some(record) = read_record(&txn, id)? else {
            continue;
        };
        let bytes = requests
            .get(id)
            .map_err(storage)?
            .map_or(0, |body| body.value().len() as u64);
        backlog.note(id, &record.function, bytes);
    }
    Ok(backlog)
}

fn read_record(txn: &redb::ReadTransaction, id: &str) -> Result<Option<CallRecord>, QueueError> {
    let calls = txn.open_table(CALLS).map_err(storage)?;
    let value = calls.get(id).map_err(storage)?;
    value.map(|v| decode(v.value())).transpose()
}

/// A stored record, decoded.
pub(crate) fn decode(bytes: &[u8]) -> Result<CallRecord, QueueError> {
    postcard::from_bytes(bytes).map_err(|e| QueueError::Corrupt(e.to_string()))
}

/// Where a write's outcome goes once committed.
type Reply<T> = oneshot::Sender<Result<T, QueueError>>;

/// One write to the queue.
enum CallWrite {
    /// Store a record (and bodies), moving its index entries.
    Save {
        id: String,
        record: Vec<u8>,
        /// Its queue slot, while it is queued.
        queue: Option<u64>,
        /// Its finished time, once final.
        finished: Option<u64>,
        /// The queue slot it leaves.
        old_due: Option<u64>,
        request: Option<Bytes>,
        result: Option<Bytes>,
        reply: Reply<()>,
    },
    /// Delete the calls finished before `cutoff_ms`.
    Sweep { cutoff_ms: u64, reply: Reply<usize> },
}

impl BatchWrite for CallWrite {
    type Context = ();

    fn payload_bytes(&self) -> usize {
        match self {
            CallWrite::Save {
                record,
                request,
                result,
                ..
            } => {
                record.len()
                    + request.as_ref().map_or(0, Bytes::len)
                    + result.as_ref().map_or(0, Bytes::len)
            }
            CallWrite::Sweep { .. } => 0,
        }
    }

    fn apply(self, txn: &WriteTransaction, _: &(), failure: &mut Option<StorageFailure>) -> Answer {
        match self {
            CallWrite::Save {
                id,
                record,
                queue,
                finished,
                old_due,
                request,
                result,
                reply,
            } => {
                let outcome = save(
                    txn,
                    &id,
                    &record,
                    queue,
                    finished,
                    old_due,
                    request.as_deref(),
                    result.as_deref(),
                );
                settle(reply, outcome, failure)
            }
            CallWrite::Sweep { cutoff_ms, reply } => settle(reply, sweep(txn, cutoff_ms), failure),
        }
    }

    fn skip(self) -> Answer {
        match self {
            CallWrite::Save { reply, .. } => answer(reply, Err(QueueError::Stopped), failed),
            CallWrite::Sweep { reply, .. } => answer(reply, Err(QueueError::Stopped), failed),
        }
    }
}

fn failed(failure: &StorageFailure) -> QueueError {
    QueueError::Storage(failure.clone())
}

fn settle<T: Send + 'static>(
    reply: Reply<T>,
    outcome: Result<T, QueueError>,
    failure: &mut Option<StorageFailure>,
) -> Answer {
    if let Err(QueueError::Storage(error)) = &outcome {
        *failure = Some(error.clone());
    }
    answer(reply, outcome, failed)
}

#[expect(clippy::too_many_arguments, reason = "the parts of one save")]
fn save(
    txn: &WriteTransaction,
    id: &str,
    record: &[u8],
    queue: Option<u64>,
    finished: Option<u64>,
    old_due: Option<u64>,
    request: Option<&[u8]>,
    result: Option<&[u8]>,
) -> Result<(), QueueError> {
    txn.open_table(CALLS)
        .map_err(storage)?
        .insert(id, record)
        .map_err(storage)?;
    if let Some(body) = request {
        txn.open_table(REQUESTS)
            .map_err(storage)?
            .insert(id, body)
            .map_err(storage)?;
    }
    if let Some(body) = result {
        txn.open_table(RESULTS)
            .map_err(storage)?
            .insert(id, body)
            .map_err(storage)?;
    }
    let mut slots = txn.open_table(QUEUE).map_err(storage)?;
    if let Some(due) = old_due {
        slots.remove((due, id)).map_err(storage)?;
    }
    if let Some(due) = queue {
        slots.insert((due, id), ()).map_err(storage)?;
    }
    if let Some(at) = finished {
        txn.open_table(FINISHED)
            .map_err(storage)?
            .insert((at, id), ())
            .map_err(storage)?;
        // A finished call's request is never made again: its body goes now,
        // not with the record at the end of the retention.
        txn.open_table(REQUESTS)
            .map_err(storage)?
            .remove(id)
            .map_err(storage)?;
    }
    Ok(())
}

fn sweep(txn: &WriteTransaction, cutoff_ms: u64) -> Result<usize, QueueError> {
    let mut finished = txn.open_table(FINISHED).map_err(storage)?;
    let expired = finished
        .extract_from_if(..(cutoff_ms, ""), |_, ()| true)
        .map_err(storage)?
        .map(|entry| entry.map(|(key, _)| key.value().1.to_owned()))
        .collect::<Result<Vec<String>, _>>()
        .map_err(storage)?;
    let mut calls = txn.open_table(CALLS).map_err(storage)?;
    let mut requests = txn.open_table(REQUESTS).map_err(storage)?;
    let mut results = txn.open_table(RESULTS).map_err(storage)?;
    for id in &expired {
        calls.remove(id.as_str()).map_err(storage)?;
        requests.remove(id.as_str()).map_err(storage)?;
        results.remove(id.as_str()).map_err(storage)?;
    }
    Ok(expired.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_spec::api::CallState;

    const ROOMY: Caps = Caps {
        function_calls: 100,
        function_bytes: 1 << 20,
        host_calls: 100,
        host_bytes: 1 << 20,
    };

    fn record(id: &str, due_ms: u64) -> CallRecord {
        CallRecord {
            id: id.to_owned(),
            function: "f".into(),
            method: "POST".into(),
            uri: "/f".into(),
            headers: vec![("x-a".into(), b"1".to_vec())],
            callback: None,
            state: CallState::Queued,
            attempts: 0,
            accepted_ms: due_ms,
            started_ms: None,
            finished_ms: None,
            due_ms,
            error: None,
            response: None,
            callback_outcome: None,
        }
    }

    fn claimed(queue: &CallQueue, now_ms: u64) -> Option<(String, Bytes)> {
        match queue.claim(now_ms).unwrap() {
            Claim::Ready(record, body) => Some((record.id, body)),
            Claim::Wait(_) => None,
        }
    }

    #[tokio::test]
    async fn calls_are_claimed_in_due_order_once_each_and_swept_after_they_finish() {
        let dir = tempfile::tempdir().unwrap();
        let queue = CallQueue::open(dir.path()).unwrap();
        queue
            .accept(&record("b", 20), Bytes::from("B"), ROOMY)
            .await
            .unwrap();
        queue
            .accept(&record("a", 10), Bytes::from("A"), ROOMY)
            .await
            .unwrap();
        queue
            .accept(&record("later", 500), Bytes::new(), ROOMY)
            .await
            .unwrap();

        assert_eq!(claimed(&queue, 100), Some(("a".into(), Bytes::from("A"))));
        assert_eq!(queue.running_since("a"), Some(100));
        assert_eq!(claimed(&queue, 100), Some(("b".into(), Bytes::from("B"))));
        assert!(matches!(queue.claim(100).unwrap(), Claim::Wait(Some(500))));

        // `a` finishes; `b` is put back for a retry at 300.
        let mut done = record("a", 10);
        done.state = CallState::Done;
        done.finished_ms = Some(150);
        queue
            .save(&done, Some(10), Some(Bytes::from("ok")))
            .await
            .unwrap();
        queue.release("a");
        let mut retry = record("b", 300);
        retry.attempts = 1;
        queue.save(&retry, Some(20), None).await.unwrap();
        queue.release("b");
        assert!(matches!(queue.claim(200).unwrap(), Claim::Wait(Some(300))));
        assert_eq!(claimed(&queue, 300).map(|c| c.0), Some("b".into()));

        let (stored, result) = queue.get("a").unwrap().unwrap();
        assert_eq!(stored.state, CallState::Done);
        assert_eq!(result, Some(Bytes::from("ok")));
        let requests = queue.read().unwrap().open_table(REQUESTS).unwrap();
        assert!(
            requests.get("a").unwrap().is_none(),
            "a finished call's body goes at once"
        );
        assert!(
            requests.get("b").unwrap().is_some(),
            "a queued call's stays"
        );
        let (page, more) = queue.list(None, 2, |_| true).unwrap();
        let ids: Vec<_> = page.iter().map(|r| r.id.as_str()).collect();
        assert_eq!((ids, more), (vec!["later", "b"], true), "newest id first");

        assert_eq!(
            queue.sweep(150).await.unwrap(),
            0,
            "finished at 150, not before"
        );
        assert_eq!(queue.sweep(151).await.unwrap(), 1);
        assert!(queue.get("a").unwrap().is_none());
        assert!(
            queue.get("b").unwrap().is_some(),
            "unfinished calls are never swept"
        );
    }

    #[tokio::test]
    async fn the_backlog_counts_queued_calls_across_a_reopen_and_frees_finished_ones() {
        let dir = tempfile::tempdir().unwrap();
        let one = Caps {
            function_calls: 1,
            ..ROOMY
        };
        {
            let queue = CallQueue::open(dir.path()).unwrap();
            queue
                .accept(&record("a", 10), Bytes::new(), one)
                .await
                .unwrap();
            let refused = queue.accept(&record("b", 10), Bytes::new(), one).await;
            assert!(matches!(refused, Err(QueueError::Full(_))), "{refused:?}");
        }
        let queue = CallQueue::open(dir.path()).unwrap();
        let refused = queue.accept(&record("b", 10), Bytes::new(), one).await;
        assert!(
            matches!(refused, Err(QueueError::Full(_))),
            "counted after a reopen"
        );
        let mut done = record("a", 10);
        done.state = CallState::Done;
        done.finished_ms = Some(20);
        queue.save(&done, Some(10), None).await.unwrap();
        queue
            .accept(&record("b", 10), Bytes::new(), one)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_reopened_queue_runs_what_was_running_again() {
        let dir = tempfile::tempdir().unwrap();
        {
            let queue = CallQueue::open(dir.path()).unwrap();
            queue
                .accept(&record("a", 10), Bytes::new(), ROOMY)
                .await
                .unwrap();
            assert!(claimed(&queue, 100).is_some());
            assert!(claimed(&queue, 100).is_none(), "running: not claimed twice");
        }
        let queue = CallQueue::open(dir.path()).unwrap();
        assert_eq!(claimed(&queue, 100).map(|c| c.0), Some("a".into()));
    }
}
