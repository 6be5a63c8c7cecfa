//! Async calls: a public request with `Prefer: respond-async` (RFC 7240)
//! is stored durably and answered `202 Accepted` at once; a bounded pool of
//! background workers runs it later.
//!
//! * `accept.rs` reads the request whole, checks it and stores it: the
//!   `202` (with `x-wisp-call-id` and `Preference-Applied: respond-async`)
//!   comes only once the call is fsynced;
//! * a function takes async calls only when deployed with `async=on`;
//!   otherwise the preference is ignored and the request served at once;
//! * `backlog.rs` caps the calls (and bytes) queued per function and per
//!   host, so a client cannot fill the disk (`429` with `Retry-After`);
//! * `queue.rs` keeps every call, its request and its result in redb; in
//!   cluster mode JetStream does (`cluster/calls.rs`), and any host's
//!   workers may run a call any host accepted (`store.rs` chooses);
//! * `worker.rs` runs due calls, retries a 5xx, trap or timeout with
//!   exponential backoff and dead-letters a call whose attempts are spent;
//! * `callback.rs` POSTs a finished call to its `x-wisp-callback` URL when
//!   the function's outbound allow-list allows it.
//!
//! Delivery is at least once: a call running when the host dies runs again
//! after a restart, so a function may see one call twice. Background runs
//! never wait for a slot: a call that finds its function or the host busy
//! goes back to the queue, so client requests never queue behind it.

mod accept;
pub(crate) mod backlog;
mod callback;
pub(crate) mod queue;
pub(crate) mod record;
pub(crate) mod store;
pub(crate) mod worker;

use crate::backplane::SharedState;
use crate::registry::Registry;
use crate::request::Dispatcher;
pub use backlog::Full;
pub(crate) use queue::CallQueue;
pub use queue::QueueError;
pub(crate) use record::is_call_id;
use std::sync::Arc;
use std::time::Duration;
pub(crate) use store::CallStore;
use wisp_spec::api::{CallInfo, CallList, CallState};

/// Default number of calls run at once in the background.
pub const DEFAULT_ASYNC_WORKERS: u32 = 4;

/// Default retries after a failed attempt.
pub const DEFAULT_RETRIES: u32 = 3;

/// Default wait before the first retry (it doubles for each one after).
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// Default cap on the calls queued on a host, all functions together.
pub const DEFAULT_MAX_QUEUED_CALLS: u64 = 10_000;

/// Default cap on the request bodies of the calls queued on a host, added
/// up (1 GiB).
pub const DEFAULT_MAX_QUEUED_CALL_BYTES: u64 = 1 << 30;

/// Default time a finished call is kept.
pub const DEFAULT_CALL_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Most bytes of a call's response body kept with its result.
pub const MAX_RESULT_BODY_BYTES: usize = 1 << 20;

/// Calls listed per page when the request does not say.
pub const DEFAULT_CALL_LIST_LIMIT: usize = 100;

/// Most calls one listing page holds.
pub const MAX_CALL_LIST_LIMIT: usize = 1000;

/// How async calls run. `Default` is the production default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncCalls {
    /// Calls run at once in the background (at most half of the host's
    /// `max_instances`, and at least one).
    pub workers: u32,
    /// Retries after a failed attempt (a 5xx, trap or timeout), before the
    /// call is dead-lettered as failed.
    pub retries: u32,
    /// Wait before the first retry; each later one waits twice as long as
    /// the one before (at most an hour).
    pub backoff: Duration,
    /// How long a finished call (and its result) is kept; its request
    /// body is deleted as soon as it finishes.
    pub retention: Duration,
    /// Most calls queued at once, all functions together (each function
    /// also has its own cap, a setting); past it a new call is `429`.
    pub max_queued: u64,
    /// Most request-body bytes of queued calls at once.
    pub max_queued_bytes: u64,
}

impl Default for AsyncCalls {
    fn default() -> Self {
        AsyncCalls {
            workers: DEFAULT_ASYNC_WORKERS,
            retries: DEFAULT_RETRIES,
            backoff: DEFAULT_RETRY_BACKOFF,
            retention: DEFAULT_CALL_RETENTION,
            max_queued: DEFAULT_MAX_QUEUED_CALLS,
            max_queued_bytes: DEFAULT_MAX_QUEUED_CALL_BYTES,
        }
    }
}

/// Which calls a listing shows.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Only this function's.
    pub function: Option<String>,
    /// Only calls in this state.
    pub state: Option<CallState>,
    /// Only calls older than this id (the previous page's `next`).
    pub before: Option<String>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// The async calls of a host: accepted on the request path, stored in the
/// [`CallStore`], run by the workers through the dispatcher, listed for the
/// admin API.
pub(crate) struct Calls {
    pub(crate) store: Arc<dyn CallStore>,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) registry: Arc<Registry>,
    /// For catching up with the shared desired state before answering
    /// that a call's function does not exist.
    pub(crate) shared: Arc<dyn SharedState>,
    pub(crate) config: AsyncCalls,
}

impl Calls {
    /// Async call `id`, with the kept part of its response body.
    pub(crate) async fn call(&self, id: &str) -> Result<Option<CallInfo>, QueueError> {
        let queue = &self.store;
        Ok(queue
            .get(id)
            .await?
            .map(|(record, body)| record.info(queue.running_since(id), body.as_ref())))
    }

    /// Async calls, newest first, without their response bodies.
    pub(crate) async fn calls(&self, filter: &CallFilter) -> Result<CallList, QueueError> {
        let queue = &self.store;
        let state_of = |record: &record::CallRecord| {
            record.state_now(queue.running_since(&record.id).is_some())
        };
        let (records, more) = queue
            .list(
                filter.before.as_deref(),
                filter
                    .limit
                    .unwrap_or(DEFAULT_CALL_LIST_LIMIT)
                    .min(MAX_CALL_LIST_LIMIT),
                &|record| {
                    filter
                        .function
                        .as_ref()
                        .is_none_or(|f| *f == record.function)
                        && filter.state.is_none_or(|s| s == state_of(record))
                },
            )
            .await?;
        let calls: Vec<CallInfo> = records
            .iter()
            .map(|record| record.info(queue.running_since(&record.id), None))
            .collect();
        let next = more.then(|| calls.last().map(|c| c.id.clone())).flatten();
        Ok(CallList { calls, next })
    }
}
