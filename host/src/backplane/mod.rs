//! The backplane: what a host may share with other hosts, behind traits,
//! with one implementation chosen once at start-up by the composition root.
//!
//! | what | trait | alone (this host) | in a cluster (`cluster/`, NATS JetStream) |
//! | --- | --- | --- | --- |
//! | function records (desired state) and their change stream, wasm sources, cron claims | [`SharedState`] | [`Alone`]: nothing shared, every change applied here at once | `Cluster`: a key-value bucket watched by the converger, an object store, a claims bucket |
//! | `wasi:keyvalue` buckets | `state::KvBackend` | `RedbStore` | `NatsKv` |
//! | the async call queue | `events::calls::CallStore` | `CallQueue` (redb) | `ClusterCalls` |
//! | publishes to channels | `channels::Bus` | none: delivered here at once | `Cluster`: a NATS subject every host subscribes to |
//!
//! The key-value and call-queue traits live with their owners (`state/`,
//! `events/calls/`); this module owns the desired state. `records.rs`
//! holds the record type and this host's own copy of the records on disk,
//! which both implementations keep: a cluster host serves its last known
//! records while NATS is away. Nothing outside the backplane's NATS
//! implementation (`cluster/`) and the root that chooses it knows which
//! one runs.

pub(crate) mod records;

use crate::error::DeployError;
use bytes::Bytes;
use records::FunctionRecord;
use std::future::Future;
use std::pin::Pin;
use wisp_spec::api::ClusterHealth;
use wisp_spec::source::SourceHash;

/// What the backplane's async methods return.
pub(crate) type Shared<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a change of the desired state was committed: at this revision
/// of the shared desired state (this host applies it when its converger
/// gets there; [`SharedState::settle`] waits), or, `None`, nowhere shared
/// (the caller saves and publishes it here, now).
pub(crate) type Committed = Option<u64>;

/// The desired state a host shares with others: function records, their
/// sources and cron claims.
pub(crate) trait SharedState: Send + Sync {
    /// Commits `record` for every host (compare-and-set on the revision
    /// this host applied).
    fn put_record<'a>(
        &'a self,
        record: &'a FunctionRecord,
    ) -> Shared<'a, Result<Committed, DeployError>>;

    /// Commits the removal of function `name` for every host.
    fn remove_record<'a>(&'a self, name: &'a str) -> Shared<'a, Result<Committed, DeployError>>;

    /// Stores an upload where every host can fetch it (failing fast when
    /// the shared store is away).
    fn put_source<'a>(
        &'a self,
        source: &'a SourceHash,
        wasm: &'a Bytes,
    ) -> Shared<'a, Result<(), DeployError>>;

    /// Waits until this host has applied everything the shared state had
    /// when asked.
    fn catch_up(&self) -> Shared<'_, ()>;

    /// Waits until this host has applied `revision`.
    fn settle(&self, revision: u64) -> Shared<'_, ()>;

    /// Claims the tick of cron job `job` due at `due_unix` for this host:
    /// true when this host runs it.
    fn claim_tick<'a>(&'a self, job: &'a str, due_unix: u64) -> Shared<'a, bool>;

    /// How this host stands with the others, when there are others.
    fn health(&self) -> Option<ClusterHealth>;

    /// True when key-value buckets are shared with other hosts (so this
    /// host's records do not say which functions have buckets).
    fn shares_buckets(&self) -> bool;
}

/// A host alone: nothing is shared, every change is applied here at once.
pub(crate) struct Alone;

impl SharedState for Alone {
    fn put_record<'a>(
        &'a self,
        _: &'a FunctionRecord,
    ) -> Shared<'a, Result<Committed, DeployError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn remove_record<'a>(&'a self, _: &'a str) -> Shared<'a, Result<Committed, DeployError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn put_source<'a>(
        &'a self,
        _: &'a SourceHash,
        _: &'a Bytes,
    ) -> Shared<'a, Result<(), DeployError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn catch_up(&self) -> Shared<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn settle(&self, _: u64) -> Shared<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn claim_tick<'a>(&'a self, _: &'a str, _: u64) -> Shared<'a, bool> {
        Box::pin(std::future::ready(true))
    }

    fn health(&self) -> Option<ClusterHealth> {
        None
    }

    fn shares_buckets(&self) -> bool {
        false
    }
}
