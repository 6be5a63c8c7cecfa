//! Group commit: one writer thread per redb database.
//!
//! redb lets one write transaction run at a time, and a durable commit costs
//! an fsync. So every write goes to one thread over a channel; the thread
//! takes what is waiting, applies it all in one transaction, commits once and
//! only then answers each caller. Under 32 concurrent writers that is one
//! fsync for up to 32 writes instead of 32. A write that is refused (by its
//! own checks) answers its caller with that error while the rest of the batch
//! commits; a storage failure aborts the whole batch and every caller in it
//! gets the failure. What a write is, and how it answers, is the store's
//! business ([`BatchWrite`]); the key-value store and the async call queue
//! each have their own.

use super::db_slot::{DbSlot, needs_reopen};
use redb::WriteTransaction;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

/// Most writes one transaction takes.
const MAX_BATCH_WRITES: usize = 256;

/// Most payload bytes one transaction takes before it commits; bounds the
/// memory a batch of large values holds.
const MAX_BATCH_BYTES: usize = 16 << 20;

/// A storage failure, shared by every caller of the batch it failed.
pub type StorageFailure = Arc<dyn std::error::Error + Send + Sync>;

/// Sends a write's outcome once its batch is over: its own, or the batch's
/// failure in its place.
pub(crate) type Answer = Box<dyn FnOnce(Option<&StorageFailure>) + Send>;

/// One write a store sends its writer.
pub(crate) trait BatchWrite: Send + 'static {
    /// What every write of the store needs besides itself (its limits).
    type Context: Send + 'static;

    /// Roughly what the write adds to a transaction, in bytes.
    fn payload_bytes(&self) -> usize;

    /// Applies the write in `txn`. A storage failure goes to `failure`,
    /// which fails the whole batch.
    fn apply(
        self,
        txn: &WriteTransaction,
        context: &Self::Context,
        failure: &mut Option<StorageFailure>,
    ) -> Answer;

    /// The answer of a write never applied: it only ever gets the batch's
    /// failure.
    fn skip(self) -> Answer;
}

/// The writer thread and the way to it. Dropping it lets the thread finish
/// what was sent and waits for it, so the database can be reopened after.
pub(crate) struct GroupCommit<W> {
    sender: Option<mpsc::Sender<W>>,
    thread: Option<JoinHandle<()>>,
}

impl<W: BatchWrite> GroupCommit<W> {
    /// Starts thread `name` writing to the database in `slot`.
    pub(crate) fn start(
        name: &str,
        slot: Arc<DbSlot>,
        context: W::Context,
    ) -> std::io::Result<GroupCommit<W>> {
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(&slot, &context, &receiver))?;
        Ok(GroupCommit {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Queues a write. If the thread is gone the write (and its reply) is
    /// dropped, which its caller sees as the store having stopped.
    pub(crate) fn submit(&self, write: W) {
        if let Some(sender) = &self.sender {
            // A send error means the thread is gone: the dropped reply tells the caller.
            let _ = sender.send(write);
        }
    }
}

impl<W> Drop for GroupCommit<W> {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            // A panicked writer has already failed its callers; nothing more to do.
            let _ = thread.join();
        }
    }
}

fn run<W: BatchWrite>(slot: &DbSlot, context: &W::Context, receiver: &mpsc::Receiver<W>) {
    while let Ok(first) = receiver.recv() {
        let mut bytes = first.payload_bytes();
        let mut batch = vec![first];
        // Group commit: every write that arrived while the last commit ran
        // joins this one. Waiting for more was measured and lost: 32
        // concurrent guest requests made 14,600 increments/s with a 200 µs
        // wait, 16,200–17,700 without (release build, `benches/benches/kv.rs`).
        while batch.len() < MAX_BATCH_WRITES && bytes < MAX_BATCH_BYTES {
            let Ok(next) = receiver.try_recv() else { break };
            bytes += next.payload_bytes();
            batch.push(next);
        }
        commit_batch(slot, context, batch);
    }
}

/// Applies and commits one batch, answers its callers, and reopens the
/// database if the batch failed on I/O (a full disk), so the next batch
/// does not meet redb's latched error.
fn commit_batch<W: BatchWrite>(slot: &DbSlot, context: &W::Context, batch: Vec<W>) {
    let db = match slot.get() {
        Ok(db) => db,
        Err(failure) => {
            for answer in batch.into_iter().map(BatchWrite::skip) {
                answer(Some(&failure));
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(batch.len());
    let mut failure = None;
    match db.begin_write() {
        Ok(txn) => {
            for write in batch {
                answers.push(if failure.is_some() {
                    write.skip()
                } else {
                    write.apply(&txn, context, &mut failure)
                });
            }
            failure = match failure {
                Some(error) => {
                    // The batch is being thrown away; an abort error changes nothing for it.
                    let _ = txn.abort();
                    Some(error)
                }
                None => txn.commit().err().map(failure_of),
            };
        }
        Err(error) => {
            answers.extend(batch.into_iter().map(BatchWrite::skip));
            failure = Some(failure_of(error));
        }
    }
    drop(db);
    for answer in answers {
        answer(failure.as_ref());
    }
    if let Some(failure) = failure.filter(needs_reopen) {
        slot.reopen(&failure);
    }
}

/// True when `error` says the disk (or the file-size limit, or the user's
/// quota) is full. redb's errors do not expose their I/O cause as a
/// `source`, so the text is read as well.
pub(crate) fn is_out_of_space(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull
                || matches!(io.raw_os_error(), Some(27 | 28 | 122)))
        {
            return true;
        }
        let text = error.to_string();
        if [
            "os error 28",
            "os error 27",
            "os error 122",
            "No space left",
        ]
        .iter()
        .any(|sign| text.contains(sign))
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// A redb error as a [`StorageFailure`].
pub(crate) fn failure_of(error: impl Into<redb::Error>) -> StorageFailure {
    Arc::new(error.into())
}

/// The answer sending `outcome` to `reply`, or the batch's failure made into
/// the store's error by `failed`.
pub(crate) fn answer<T: Send + 'static, E: Send + 'static>(
    reply: tokio::sync::oneshot::Sender<Result<T, E>>,
    outcome: Result<T, E>,
    failed: fn(&StorageFailure) -> E,
) -> Answer {
    Box::new(move |failure: Option<&StorageFailure>| {
        // A caller that gave up waiting has dropped its receiver; the write stands.
        let _ = reply.send(match failure {
            Some(error) => Err(failed(error)),
            None => outcome,
        });
    })
}
