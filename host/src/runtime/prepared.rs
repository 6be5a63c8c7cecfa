//! Sandboxes made before their request: after a request of a component
//! function, the host creates its next fresh sandbox (a new store, the
//! component instantiated from the pool) in spare time, so the next request
//! finds one ready instead of instantiating on its critical path. Spare
//! time means it: the making waits until every ready task has run, and is
//! dropped if a request of the version came in meanwhile (a saturated host
//! gains nothing from a hand-off).
//!
//! A prepared sandbox is exactly what a request would have created for
//! itself: it serves one request and is dropped, never reused. At most one
//! waits per version, and at most [`PreparedBudget`]'s bound host-wide
//! (`wisp serve --prepare N`, its pool slots reserved on top of
//! `--max-instances`). One left unused for [`PREPARED_IDLE`] is dropped by
//! the registry's sweep (`Registry::expire_prepared`), so idle functions
//! hold nothing. CGI modules are not prepared.

use super::Runtime;
use crate::runtime::abi::http::ReadySandbox;
use crate::runtime::function::Function;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default number of prepared sandboxes waiting at once, host-wide.
pub const DEFAULT_MAX_PREPARED: usize = 64;

/// How long a prepared sandbox may wait for a request before it is dropped.
pub const PREPARED_IDLE: Duration = Duration::from_secs(5);

/// The host-wide bound on prepared sandboxes.
#[derive(Debug)]
pub(crate) struct PreparedBudget {
    max: usize,
    held: Arc<AtomicUsize>,
}

/// One prepared sandbox's place in the budget, given back on drop.
pub(crate) struct PreparedPermit(Arc<AtomicUsize>);

impl Drop for PreparedPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PreparedBudget {
    /// A budget of `max` prepared sandboxes (0: none are prepared).
    pub(crate) fn new(max: usize) -> PreparedBudget {
        PreparedBudget {
            max,
            held: Arc::default(),
        }
    }

    fn try_take(&self) -> Option<PreparedPermit> {
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held < self.max).then_some(held + 1)
            })
            .ok()
            .map(|_| PreparedPermit(self.held.clone()))
    }
}

/// A version's prepared sandbox, if one waits, and whether one is being made.
#[derive(Default)]
pub(crate) struct Prepared {
    ready: Mutex<Option<Ready>>,
    preparing: AtomicBool,
    /// Requests of the version so far (each one calls [`Prepared::take`]).
    requests: AtomicU64,
}

struct Ready {
    sandbox: ReadySandbox,
    made: Instant,
    _permit: PreparedPermit,
}

impl Prepared {
    /// The waiting sandbox, taken for one request.
    pub(crate) fn take(&self) -> Option<ReadySandbox> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let taken = lock(&self.ready).take()?;
        Some(taken.sandbox)
    }

    /// Drops a sandbox that has waited longer than `idle`.
    pub(crate) fn expire(&self, idle: Duration) {
        let mut ready = lock(&self.ready);
        if ready.as_ref().is_some_and(|r| r.made.elapsed() >= idle) {
            *ready = None;
        }
    }
}

impl Runtime {
    /// Starts making `function`'s next sandbox in the background, unless
    /// one waits or is being made, its code is not resident, or the host's
    /// budget is used up.
    pub(crate) fn prepare_next(&self, function: &Arc<Function>) {
        let prepared = function.prepared();
        if !function.is_prepared_ahead() || lock(&prepared.ready).is_some() {
            return;
        }
        let Some(code) = function.code().get() else {
            return;
        };
        if prepared.preparing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(permit) = self.prepared.try_take() else {
            prepared.preparing.store(false, Ordering::Release);
            return;
        };
        let function = function.clone();
        let made_count = self.metrics.prepared_counter();
        let seen = prepared.requests.load(Ordering::Relaxed);
        tokio::spawn(async move {
            // Spare time only: every task that is ready runs first. If a
            // request of this version came in meanwhile, the CPU is busy
            // with requests, and a sandbox made now would only move the
            // request's own work around, at the cost of a hand-off.
            tokio::task::yield_now().await;
            let prepared = function.prepared();
            if prepared.requests.load(Ordering::Relaxed) != seen {
                prepared.preparing.store(false, Ordering::Release);
                return;
            }
            let made = function.prepare(&code).await;
            if let Ok(sandbox) = made {
                made_count.inc();
                *lock(&prepared.ready) = Some(Ready {
                    sandbox,
                    made: Instant::now(),
                    _permit: permit,
                });
            }
            prepared.preparing.store(false, Ordering::Release);
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
