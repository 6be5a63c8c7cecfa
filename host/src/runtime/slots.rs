//! Concurrency slots, and the one guard that measures a request.
//!
//! A request runs only while it holds a slot of its function (its
//! `max-concurrency`) and one of the host (`max_instances`, the size of the
//! instance pool). Slots are taken only when the guest is about to run: a
//! [`SlotTicket`] travels with the request until then (a CGI request first
//! reads its body, holding no slot), and turns into a [`SlotPermit`] that
//! holds both slots for as long as the guest runs, which for a streaming
//! response is until its body is done. The ticket, then the permit, owns the
//! request's duration, and the permit its in-flight gauge, so the three
//! always agree:
//!
//! * `wisp_in_flight_requests` counts requests holding a slot: from the slot
//!   taken to the guest's end;
//! * `wisp_pool_slots_in_use` is the same count across all functions;
//! * `wisp_request_duration_seconds` is measured from routing to the guest's
//!   end (the last body byte it produced), or to the error answer of a
//!   request that never ran.
//!
//! A host slot stands for an instance of the pool. A request served by a
//! reused WASI 0.3 instance (`runtime/reuse.rs`) takes its function's slot
//! only: the instance holds a host slot for its whole life.
//!
//! A component's request
//! hands its host slot on to its sandbox's teardown ([`SlotPermit::finish`]):
//! the slot is free only once the instance is back in the pool. The pool
//! holds one instance per host slot plus the prepared sandboxes, so a
//! request that got a slot always finds room in it.

use crate::error::{InvokeError, Limit};
use crate::observe::metrics::{FunctionMetrics, Metrics};
use crate::runtime::function::Function;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The host-wide slots: one per pooled instance.
pub(crate) struct HostSlots {
    slots: Arc<Semaphore>,
    in_use: Gauge,
}

impl HostSlots {
    /// `count` slots, reported through `metrics`.
    pub(crate) fn new(count: u32, metrics: &Metrics) -> HostSlots {
        HostSlots {
            slots: Arc::new(Semaphore::new(count as usize)),
            in_use: metrics.slots_in_use().clone(),
        }
    }

    /// True when `function` and the host each have a free slot now, with no
    /// request waiting for one.
    pub(crate) fn has_room(&self, function: &Function) -> bool {
        function.slots().available_permits() > 0 && self.slots.available_permits() > 0
    }

    /// A ticket for a request of `function` routed at `started`, waiting up
    /// to `wait` for each slot.
    pub(crate) fn ticket(
        &self,
        function: &Function,
        wait: Duration,
        started: Instant,
    ) -> SlotTicket<'_> {
        SlotTicket {
            slots: self,
            wait,
            measure: Measure {
                metrics: function.metrics().clone(),
                started,
            },
        }
    }
}

/// Marks the answer to a background run that found no free slot, so its
/// call is put back rather than counted as a failed attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoRoom;

/// Records a request's duration when dropped: from routing to whenever the
/// last holder lets go.
struct Measure {
    metrics: Arc<FunctionMetrics>,
    started: Instant,
}

impl Drop for Measure {
    fn drop(&mut self) {
        self.metrics.record_duration(self.started.elapsed());
    }
}

/// The right to take a request's slots, not yet used. Dropped unused (the
/// request failed before its guest ran), it ends the request's duration.
pub struct SlotTicket<'a> {
    slots: &'a HostSlots,
    wait: Duration,
    measure: Measure,
}

impl SlotTicket<'_> {
    /// How long the request waits for each slot.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// When the request was routed: its timeout counts from here.
    pub fn started(&self) -> Instant {
        self.measure.started
    }

    /// Takes a slot of `function` and one of the host.
    pub async fn take(self, function: &Function) -> Result<SlotPermit, InvokeError> {
        self.slots
            .acquire(function, self.wait, self.measure, true)
            .await
    }

    /// Takes a slot of `function` only: the request is served by a reused
    /// instance, which holds a host slot of its own.
    pub async fn take_for_reused(self, function: &Function) -> Result<SlotPermit, InvokeError> {
        self.slots
            .acquire(function, self.wait, self.measure, false)
            .await
    }
}

impl HostSlots {
    /// The host slots themselves: a reused instance takes one for its life.
    pub(crate) fn instance_slots(&self) -> &Arc<Semaphore> {
        &self.slots
    }

    async fn acquire(
        &self,
        function: &Function,
        wait: Duration,
        measure: Measure,
        host: bool,
    ) -> Result<SlotPermit, InvokeError> {
        let busy = |scope: &str| {
            InvokeError::limit(
                Limit::Concurrency,
                format!("too many concurrent requests for {scope}; retry shortly"),
            )
        };
        let local = acquire(function.slots(), wait)
            .await
            .ok_or_else(|| busy(&format!("function `{}`", function.name)))?;
        let global = match host {
            true => Some(
                acquire(&self.slots, wait)
                    .await
                    .ok_or_else(|| busy("this host"))?,
            ),
            false => None,
        };
        measure.metrics.in_flight().inc();
        self.in_use.inc();
        Ok(SlotPermit {
            _local: local,
            global,
            in_use: self.in_use.clone(),
            measure,
        })
    }
}

/// A running request's slots. Dropping it (when the guest is done) frees
/// them and records the request's duration.
pub struct SlotPermit {
    _local: OwnedSemaphorePermit,
    global: Option<OwnedSemaphorePermit>,
    in_use: Gauge,
    measure: Measure,
}

impl SlotPermit {
    /// Ends the request (its duration, its in-flight count, its function's
    /// slot) and returns its host slot, to be dropped with the sandbox's
    /// store once the instance is back in the pool.
    pub fn finish(mut self) -> PoolSlot {
        PoolSlot {
            _slot: self.global.take(),
        }
    }
}

/// A host slot held by a finished request's sandbox until it is torn down.
pub struct PoolSlot {
    _slot: Option<OwnedSemaphorePermit>,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        self.in_use.dec();
        self.measure.metrics.in_flight().dec();
    }
}

async fn acquire(slots: &Arc<Semaphore>, wait: Duration) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Some(permit);
    }
    tokio::time::timeout(wait, slots.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
}
