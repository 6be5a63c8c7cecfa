//! [`CallStore`]: where async calls are kept — the node's own [`CallQueue`]
//! (redb), or, in cluster mode, JetStream, shared by every host
//! (`cluster/calls.rs`). The worker, the accept path and the admin API
//! speak to this one type.

use super::backlog::Caps;
use super::queue::{CallQueue, Claim, QueueError};
use super::record::CallRecord;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::Notify;

/// The calls of a host.
pub(crate) enum CallStore {
    /// On this node's disk.
    Local(Box<CallQueue>),
    /// In the cluster.
    #[cfg(feature = "cluster")]
    Cluster(Box<crate::cluster::ClusterCalls>),
}

impl CallStore {
    /// Why the node's queue file cannot be used now, naming it, if so.
    pub(crate) fn damage(&self) -> Option<String> {
        match self {
            CallStore::Local(queue) => queue.damage(),
            #[cfg(feature = "cluster")]
            CallStore::Cluster(_) => None,
        }
    }

    /// Woken when a call is accepted on this host.
    pub(crate) fn wake(&self) -> Arc<Notify> {
        match self {
            CallStore::Local(queue) => queue.wake.clone(),
            #[cfg(feature = "cluster")]
            CallStore::Cluster(calls) => calls.wake.clone(),
        }
    }

    /// Stores a new call and its request body if `caps` leave room for it;
    /// resolves once durable. A node counts every cap itself; a cluster
    /// bounds the calls and bytes of the whole cluster in JetStream (the
    /// host's caps), not those of each function.
    pub(crate) async fn accept(
        &self,
        record: &CallRecord,
        body: Bytes,
        caps: Caps,
    ) -> Result<(), QueueError> {
        match self {
            CallStore::Local(queue) => queue.accept(record, body, caps).await,
            #[cfg(feature = "cluster")]
            CallStore::Cluster(calls) => calls.accept(record, body).await,
        }
    }

    /// Stores `record` as it now stands (queued again, or final with
    /// `result`); `old_due` is the queue slot it leaves on a node.
    pub(crate) async fn save(
        &self,
        record: &CallRecord,
        old_due: Option<u64>,
        result: Option<Bytes>,
    ) -> Result<(), QueueError> {
        match self {
            CallStore::Local(queue) => queue.save(record, old_due, result).await,
            #[cfg(feature = "cluster")]
            CallStore::Cluster(calls) => calls.save(record, result).await,
        }
    }

    /// Deletes the calls finished before `cutoff_ms` (a cluster's expire
    /// by themselves).
    pub(crate) async fn sweep(&self, cutoff_ms: u64) -> Result<usize, QueueError> {
        match self {
            CallStore::Local(queue) => queue.sweep(cutoff_ms).await,
            #[cfg(feature = "cluster")]
            CallStore::Cluster(_) => Ok(0),
        }
    }

    /// Takes the next due call and marks it running here.
    pub(crate) async fn claim(&self, now_ms: u64) -> Result<Claim, QueueError> {
        match self {
            CallStore::Local(queue) => queue.claim(now_ms),
            #[cfg(feature = "cluster")]
            CallStore::Cluster(calls) => calls.claim(now_ms).await,
        }
    }

    /// Marks call `id` as no longer running here.
    pub(crate) fn release(&self, id: &str) {
        match self {
            CallStore::Local(queue) => queue.release(id),
            #[cfg(feature = "cluster")]
            CallStore::Cluster(calls) => calls.release(id),
        }
    }

    /// When call `id`'s running attempt started here, if one runs here.
    pub(crate) fn running_since(&self, id: &str) -> Option<u64> {
        match self {
            CallStore::Local(queue) => queue.running_since(id),
            #[cfg(feature = "cluster")]
            CallStore::Cluster(calls) => calls.running_since(id),
        }
    }

    /// Call `id` and the kept part of its result body.
    pub(crate) async fn get(
        &self,
        id: &str,
    ) -> Result<Option<(CallRecord, Option<Bytes>)>, QueueError> {
        match self {
            CallStore::Local(queue) => queue.get(id),
            #[cfg(feature = "cluster")]
            CallStore::Cluster(calls) => calls.get(id).await,
        }
    }

    /// Up to `limit` calls older than `before` (newest first) that `keep`
    /// selects, and whether more are left.
    pub(crate) async fn list(
        &self,
        before: Option<&str>,
        limit: usize,
        keep: impl Fn(&CallRecord) -> bool,
    ) -> Result<(Vec<CallRecord>, bool), QueueError> {
        match self {
            CallStore::Local(queue) => queue.list(before, limit, keep),
            #[cfg(feature = "cluster")]
            CallStore::Cluster(calls) => calls.list(before, limit, keep).await,
        }
    }
}
