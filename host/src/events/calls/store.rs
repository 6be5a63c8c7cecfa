//! [`CallStore`]: where async calls are kept, as one trait — the node's
//! own [`CallQueue`] (redb, implemented here) or, in cluster mode,
//! JetStream shared by every host (`cluster/calls.rs`). The worker, the
//! accept path and the admin API speak to the trait; which one runs is
//! chosen once at start-up, by the composition root.

use super::backlog::Caps;
use super::queue::{CallQueue, Claim, QueueError};
use super::record::CallRecord;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::Notify;

/// What a call store's async methods return.
pub(crate) type CallFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, QueueError>> + Send + 'a>>;

/// Which stored calls a listing keeps.
pub(crate) type Keep<'a> = &'a (dyn Fn(&CallRecord) -> bool + Send + Sync);

/// The calls of a host: stored, claimed, saved, listed.
pub(crate) trait CallStore: Send + Sync {
    /// Why the store's file cannot be used now, naming it, if so.
    fn damage(&self) -> Option<String>;

    /// Woken when a call is accepted on this host.
    fn wake(&self) -> Arc<Notify>;

    /// Stores a new call and its request body if `caps` leave room for it;
    /// resolves once durable. A node counts every cap itself; a cluster
    /// bounds the calls and bytes of the whole cluster in JetStream (the
    /// host's caps), not those of each function.
    fn accept<'a>(&'a self, record: &'a CallRecord, body: Bytes, caps: Caps) -> CallFuture<'a, ()>;

    /// Stores `record` as it now stands (queued again, or final with
    /// `result`); `old_due` is the queue slot it leaves on a node.
    fn save<'a>(
        &'a self,
        record: &'a CallRecord,
        old_due: Option<u64>,
        result: Option<Bytes>,
    ) -> CallFuture<'a, ()>;

    /// Deletes the calls finished before `cutoff_ms` (a cluster's expire
    /// by themselves).
    fn sweep(&self, cutoff_ms: u64) -> CallFuture<'_, usize>;

    /// Takes the next due call and marks it running here.
    fn claim(&self, now_ms: u64) -> CallFuture<'_, Claim>;

    /// Marks call `id` as no longer running here.
    fn release(&self, id: &str);

    /// When call `id`'s running attempt started here, if one runs here.
    fn running_since(&self, id: &str) -> Option<u64>;

    /// Call `id` and the kept part of its result body.
    fn get<'a>(&'a self, id: &'a str) -> CallFuture<'a, Option<(CallRecord, Option<Bytes>)>>;

    /// Up to `limit` calls older than `before` (newest first) that `keep`
    /// selects, and whether more are left.
    fn list<'a>(
        &'a self,
        before: Option<&'a str>,
        limit: usize,
        keep: Keep<'a>,
    ) -> CallFuture<'a, (Vec<CallRecord>, bool)>;
}

impl CallStore for CallQueue {
    fn damage(&self) -> Option<String> {
        CallQueue::damage(self)
    }

    fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    fn accept<'a>(&'a self, record: &'a CallRecord, body: Bytes, caps: Caps) -> CallFuture<'a, ()> {
        Box::pin(CallQueue::accept(self, record, body, caps))
    }

    fn save<'a>(
        &'a self,
        record: &'a CallRecord,
        old_due: Option<u64>,
        result: Option<Bytes>,
    ) -> CallFuture<'a, ()> {
        Box::pin(CallQueue::save(self, record, old_due, result))
    }

    fn sweep(&self, cutoff_ms: u64) -> CallFuture<'_, usize> {
        Box::pin(CallQueue::sweep(self, cutoff_ms))
    }

    fn claim(&self, now_ms: u64) -> CallFuture<'_, Claim> {
        Box::pin(std::future::ready(CallQueue::claim(self, now_ms)))
    }

    fn release(&self, id: &str) {
        CallQueue::release(self, id);
    }

    fn running_since(&self, id: &str) -> Option<u64> {
        CallQueue::running_since(self, id)
    }

    fn get<'a>(&'a self, id: &'a str) -> CallFuture<'a, Option<(CallRecord, Option<Bytes>)>> {
        Box::pin(std::future::ready(CallQueue::get(self, id)))
    }

    fn list<'a>(
        &'a self,
        before: Option<&'a str>,
        limit: usize,
        keep: Keep<'a>,
    ) -> CallFuture<'a, (Vec<CallRecord>, bool)> {
        Box::pin(std::future::ready(CallQueue::list(
            self, before, limit, keep,
        )))
    }
}
