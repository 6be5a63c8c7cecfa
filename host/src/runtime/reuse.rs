//! Opt-in instance reuse for WASI 0.3 components: with `reuse = N`, one
//! instance serves up to N requests, `reuse-concurrency` of them at once,
//! and is dropped after `reuse-idle` without one — the model `wasmtime
//! serve` and Spin use by default. Off by default here: it is weaker
//! isolation (a guest's memory survives between requests of that one
//! function).
//!
//! The scheduling is wasmtime-wasi-http's own (`handler::ProxyHandler`: a
//! task per instance, whose store's event loop runs for the instance's
//! life); this module says how an instance is made, what a request brings
//! to it, and when it ends, and keeps wisp's contract around that:
//!
//! * **limits** — `memory` caps the instance (its requests together);
//!   `fuel` is topped up to the limit as each request starts; `timeout`
//!   bounds each request: one without a response head by then is 504 and
//!   its instance takes no more requests; a response body still going then
//!   is cut off. The instance's own work after its last response ends
//!   `timeout` after that request started, so one instance lives at most
//!   about `reuse` × `timeout`. `max-concurrency` counts requests, each
//!   holding its function slot while its instance runs it, even after its
//!   client has gone; each instance holds one host slot
//!   (`--max-instances`) for its whole life, idle (`reuse-idle`) or not —
//!   so idle instances of one function can keep others' fresh requests
//!   waiting for a slot.
//! * **chained calls** — an instance's outbound calls carry the request it
//!   took last, so a function that may call functions is refused
//!   `reuse-concurrency` above 1 (its calls' depth and budget could be
//!   another request's).
//! * **failure** — a trap, or a request past its deadline that will not
//!   give way, ends the instance, and every request it was serving fails
//!   with it (500, or 504 past the deadline); the next request gets a new
//!   instance.
//! * **accounting** — each request is counted with its wall time and the
//!   output its instance printed while it ran (with `reuse-concurrency`
//!   above 1, a line may land with a concurrent request); an instance's
//!   fuel and memory are charged when it ends.

use crate::error::{InvokeError, Limit};
use crate::observe::meter::{GuestCost, Meter};
use crate::observe::metrics::FunctionMetrics;
use crate::observe::spans;
use crate::observe::trace::RequestTrace;
use crate::runtime::abi::http::{
    self, GUEST_OUTPUT_CAP_BYTES, HttpState, request_too_large, response_too_large,
};
use crate::runtime::abi::output::OutputCapture;
use crate::runtime::body::{BoxError, CappedBody, ResponseBody};
use crate::runtime::chain::ChainOrigin;
use crate::runtime::sandbox::{self, GuestMemory};
use crate::runtime::services::GuestServices;
use crate::runtime::slots::SlotPermit;
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, InstantiationError, Proxy, ProxyHandler, ShouldAccept,
    TrapOrPanicError, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{WasiBody, WasiHttpView};
use wisp_spec::headers::content_length;
use wisp_spec::limits::Limits;
use wisp_spec::settings::{OutboundRule, ReuseSettings, Settings};

/// The reused instances of one function version.
pub(crate) struct ReusePool(ProxyHandler<Instances>);

/// What the pool's instances are made from: what a fresh sandbox is.
pub(crate) struct Instances {
    /// The pre-linked 0.3 component.
    pub(crate) pre: ServicePre<HttpState>,
    /// The function's name.
    pub(crate) function: Arc<str>,
    /// Its settings.
    pub(crate) settings: Arc<Settings>,
    /// Its outbound allow-list.
    pub(crate) outbound: Arc<[OutboundRule]>,
    /// Its key-value buckets and configuration.
    pub(crate) services: Arc<GuestServices>,
    /// The host's guest memory budget.
    pub(crate) memory: Arc<GuestMemory>,
    /// Where its cost goes.
    pub(crate) meter: Meter,
    /// The host slots: an instance holds one for its life.
    pub(crate) host_slots: Arc<Semaphore>,
}

/// What one request of a reused instance brings with it.
pub(crate) struct ReusedCall {
    /// Its function slot (no host slot: the instance holds one).
    pub(crate) permit: SlotPermit,
    /// Its id and timings.
    pub(crate) trace: Arc<RequestTrace>,
    /// Its id.
    pub(crate) request_id: Arc<str>,
    /// Where the guest's chained calls for it come from.
    pub(crate) chain: ChainOrigin,
    /// Set when its body arrived too slowly.
    pub(crate) body_too_slow: Arc<AtomicBool>,
    /// How long it waits for room in an instance, or a host slot for a
    /// new one.
    pub(crate) slot_wait: Duration,
}

impl ReusePool {
    /// A pool that makes its instances from `instances`, none made yet.
    pub(crate) fn new(instances: Instances) -> ReusePool {
        ReusePool(ProxyHandler::new(instances))
    }

    /// Serves `request` in an instance of the pool: one with room, or a new
    /// one.
    pub(crate) async fn invoke(
        &self,
        call: ReusedCall,
        request: ::http::Request<crate::runtime::body::RequestBody>,
    ) -> Result<::http::Response<ResponseBody>, InvokeError> {
        let instances = self.0.state();
        let limits = &instances.settings.limits;
        let (request, too_large) = http::limited_request(request, limits)?;
        let request = request.map(|body| body.map_err(Into::into).boxed_unsync());
        let output = Arc::new(OnceLock::new());
        let permit = Arc::new(call.permit);
        let start = RequestStart {
            chain: call.chain,
            span: call.trace.span.clone(),
            output: output.clone(),
            permit: permit.clone(),
        };
        let finish = Finish {
            meter: instances.meter.clone(),
            started: Instant::now(),
            trace: call.trace.clone(),
            request_id: call.request_id,
            output,
            _permit: permit,
        };
        let handled = self
            .handle(start, request, call.slot_wait)
            .instrument(spans::guest_span(&call.trace.span))
            .await;
        if call.body_too_slow.load(Ordering::Relaxed) {
            return Err(http::body_too_slow_error());
        }
        if too_large.load(Ordering::Relaxed) {
            return Err(request_too_large(limits.max_request_body_bytes));
        }
        // Its deadline counts from when an instance took it, not from the
        // wait for one (as a fresh request's counts from its guest's start).
        let began = finish.began();
        let response = handled.map_err(|error| explain(&error, began, limits))?;
        // The instance's task writes the body's first frame right after the
        // head: give it that turn, so the head and the frame leave in one
        // write rather than two (measured: 1.77 writes a response without).
        tokio::task::yield_now().await;
        let declared = content_length(response.headers())
            .map_err(|e| InvokeError::GuestError(e.to_string()))?;
        if declared.is_some_and(|n| n > limits.max_response_body_bytes) {
            return Err(response_too_large(limits.max_response_body_bytes));
        }
        let deadline = began + limits.timeout;
        let metrics = instances.meter.metrics.clone();
        Ok(response.map(|body| {
            let body = ReusedBody {
                body,
                deadline: Box::pin(tokio::time::sleep_until(deadline.into())),
                timeout: limits.timeout,
                metrics,
                finish: Some(finish),
            };
            CappedBody::new(
                body.map_err(|e| Box::new(e) as BoxError),
                limits.max_response_body_bytes,
                instances.function.clone(),
            )
            .boxed_unsync()
        }))
    }
}

impl ReusePool {
    /// Hands `request` to an instance. When none has room and no host slot
    /// is free for a new one, it waits up to `wait` for either, as a fresh
    /// request waits for its slot.
    async fn handle(
        &self,
        start: RequestStart,
        request: ::http::Request<WasiBody>,
        wait: Duration,
    ) -> wasmtime::Result<::http::Response<WasiBody>> {
        let give_up = Instant::now() + wait;
        let (mut start, mut request) = (start, request);
        loop {
            let error = match self.0.handle(start, request).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let failed = match error.downcast::<InstantiationError<RequestStart>>() {
                Ok(failed) if failed.error.downcast_ref::<NoHostSlot>().is_some() => failed,
                Ok(failed) => return Err(wasmtime::Error::new(failed)),
                Err(error) => return Err(error),
            };
            if Instant::now() >= give_up {
                return Err(wasmtime::Error::new(failed));
            }
            start = failed.request_data;
            request = failed
                .request
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            tokio::time::sleep(SLOT_RETRY).await;
        }
    }
}

/// How often a waiting request tries again.
const SLOT_RETRY: Duration = Duration::from_millis(5);

/// Why a request of a reused instance got no response.
fn explain(error: &wasmtime::Error, started: Instant, limits: &Limits) -> InvokeError {
    if error.downcast_ref::<ExpirationError>().is_some() {
        return sandbox::timeout_error(limits);
    }
    if error.downcast_ref::<TrapOrPanicError>().is_some() {
        return if started.elapsed() >= limits.timeout {
            sandbox::timeout_error(limits)
        } else {
            InvokeError::Trap(
                "its reused instance failed (a trap or a deadline in a request it was serving)"
                    .into(),
            )
        };
    }
    if let Some(failed) = error.downcast_ref::<InstantiationError<RequestStart>>() {
        if failed.error.downcast_ref::<NoHostSlot>().is_some() {
            return InvokeError::limit(
                Limit::Concurrency,
                "too many concurrent requests for this host; retry shortly",
            );
        }
        return sandbox::instantiate_error_of(&failed.error);
    }
    if let Some(code) = error.downcast_ref::<ErrorCode>() {
        return InvokeError::GuestError(format!("{code:?}"));
    }
    InvokeError::Trap(format!("{error:#}"))
}

/// No host slot was free for a new instance.
#[derive(Debug, thiserror::Error)]
#[error("no host slot is free for a new instance")]
struct NoHostSlot;

/// What a request hands its instance as it starts: its outbound calls'
/// origin and span, where it learns the instance's output, and its function
/// slot, held while the instance runs it even if its client has gone.
pub(crate) struct RequestStart {
    chain: ChainOrigin,
    span: tracing::Span,
    output: Arc<OnceLock<Outputs>>,
    permit: Arc<SlotPermit>,
}

/// An instance's captured stdout and stderr, whether it failed, and when
/// it took the request it was handed to.
#[derive(Clone)]
struct Outputs {
    /// When the instance took the request (set per request).
    took: Instant,
    stdout: OutputCapture,
    stderr: OutputCapture,
    /// Set when the instance ended in a failure: a body of it that ends
    /// then was cut off, not finished.
    failed: Arc<AtomicBool>,
}

impl HandlerState for Instances {
    type StoreData = HttpState;
    type WorkerExpiration = Expiry;
    type WorkerState = Served;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HttpState, Expiry, Served>> {
        let slot = self
            .host_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| wasmtime::Error::new(NoHostSlot))?;
        let outputs = Outputs {
            took: Instant::now(),
            stdout: OutputCapture::new(GUEST_OUTPUT_CAP_BYTES),
            stderr: OutputCapture::new(GUEST_OUTPUT_CAP_BYTES),
            failed: Arc::new(AtomicBool::new(false)),
        };
        let mut store = http::new_store(
            self.pre.engine(),
            self.function.clone(),
            &self.settings,
            self.outbound.clone(),
            self.services.clone(),
            outputs.stdout.clone(),
            outputs.stderr.clone(),
            self.memory.clone(),
        )
        .map_err(|e| wasmtime::format_err!("{e}"))?;
        let service = self.pre.instantiate_async(&mut store).await?;
        let limits = &self.settings.limits;
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: <HttpState as WasiHttpView>::http,
            expiration: Expiry {
                // A little past the requests' own deadline: a request that
                // gives way at its deadline is answered 504 alone first.
                busy: limits.timeout + EXPIRY_SLACK,
                idle: self.settings.reuse.idle,
                timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
                armed: None,
            },
            state: Served {
                function: self.function.clone(),
                limits: limits.clone(),
                reuse: self.settings.reuse,
                meter: self.meter.clone(),
                outputs,
                fuel_spent: AtomicU64::new(0),
                born: Instant::now(),
                _slot: slot,
            },
        })
    }
}

/// How long past a request's deadline its instance is ended if the request
/// has not given way.
const EXPIRY_SLACK: Duration = Duration::from_millis(100);

/// One instance's state, beside its store.
pub(crate) struct Served {
    function: Arc<str>,
    limits: Limits,
    reuse: ReuseSettings,
    meter: Meter,
    outputs: Outputs,
    /// Fuel burned by requests before the last top-up.
    fuel_spent: AtomicU64,
    born: Instant,
    /// Freed after the store is dropped (the instance back in the pool).
    _slot: OwnedSemaphorePermit,
}

impl WorkerState for Served {
    type StoreData = HttpState;
    type RequestData = RequestStart;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse.requests as usize {
            ShouldAccept::Never
        } else if concurrent >= self.reuse.concurrency as usize {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, HttpState>,
        start: RequestStart,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        if let Some(limit) = self.limits.fuel {
            let left = store.get_fuel().unwrap_or(limit);
            self.fuel_spent
                .fetch_add(limit.saturating_sub(left), Ordering::Relaxed);
            if let Err(error) = store.set_fuel(limit) {
                tracing::warn!(function = %self.function, %error, "topping up a reused instance's fuel failed");
            }
        }
        store.data_mut().begin_request(start.chain, start.span);
        let _ = start.output.set(Outputs {
            took: Instant::now(),
            ..self.outputs.clone()
        });
        let (permit, timeout) = (start.permit, self.limits.timeout);
        Box::pin(async move {
            let _held = permit;
            tokio::time::sleep(timeout).await;
        })
    }

    fn drop(&self, store: Store<HttpState>, result: wasmtime::Result<()>) {
        let fuel =
            self.fuel_spent.load(Ordering::Relaxed) + sandbox::fuel_used(&store, &self.limits);
        let limiter = &store.data().limiter;
        self.meter
            .reused_instance_finished(self.born.elapsed(), fuel, limiter.peak_bytes());
        let Err(error) = &result else { return };
        self.outputs.failed.store(true, Ordering::SeqCst);
        match sandbox::explain_failure(error, limiter, &self.limits) {
            Err(InvokeError::LimitExceeded { limit, .. }) => {
                self.meter.metrics.record_breach(limit);
            }
            _ => sandbox::log_failure(
                &self.function,
                "(reused instance)",
                error,
                &self.outputs.stderr.contents(),
            ),
        }
    }
}

/// When an instance ends: `reuse-idle` after its last request, or a little
/// past the deadline of the latest one it is still serving.
pub(crate) struct Expiry {
    busy: Duration,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
}

impl WorkerExpiration for Expiry {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let deadline = start
            + match status {
                WorkerStatus::Idle => this.idle,
                WorkerStatus::Requests | WorkerStatus::PostReturn => this.busy,
            };
        if this.armed != Some(deadline) {
            this.timer.as_mut().reset(deadline.into());
            this.armed = Some(deadline);
        }
        this.timer.as_mut().poll(cx)
    }
}

/// Records a request of a reused instance when it ends (its body done, cut
/// off or dropped): its wall time and what the instance printed meanwhile;
/// then frees its function slot.
struct Finish {
    meter: Meter,
    started: Instant,
    trace: Arc<RequestTrace>,
    request_id: Arc<str>,
    output: Arc<OnceLock<Outputs>>,
    _permit: Arc<SlotPermit>,
}

impl Finish {
    /// When an instance took it (when it was handed over, if none did).
    fn began(&self) -> Instant {
        self.output.get().map_or(self.started, |o| o.took)
    }

    /// True when the instance that served it has failed since.
    fn instance_failed(&self) -> bool {
        self.output
            .get()
            .is_some_and(|o| o.failed.load(Ordering::SeqCst))
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        // A request no instance took (no host slot, its client gone while
        // queued) never ran: nothing to record.
        let Some(outputs) = self.output.get() else {
            return;
        };
        let (stdout, stderr) = (outputs.stdout.take(), outputs.stderr.take());
        let cost = GuestCost {
            wall: self.started.elapsed(),
            ..GuestCost::default()
        };
        self.meter
            .finished(cost, &self.trace, &self.request_id, &stdout, &stderr);
    }
}

/// A reused instance's response body, cut off with an error at the
/// request's deadline (never passed off as whole), and accounted for when
/// it ends.
struct ReusedBody {
    body: WasiBody,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// The function's timeout, for the message of a cut-off.
    timeout: Duration,
    metrics: Arc<FunctionMetrics>,
    finish: Option<Finish>,
}

impl http_body::Body for ReusedBody {
    type Data = bytes::Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.finish.is_none() {
            return Poll::Ready(None);
        }
        // The body first: a body that is ready never arms the deadline's
        // timer (most are, in one poll); the clock is read instead.
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        let late = match frame {
            Poll::Ready(None) if self.finish.as_ref().is_some_and(Finish::instance_failed) => {
                // The instance died mid-body (a trap in a request sharing
                // it, its deadline): the body stopped, it did not end.
                self.finish = None;
                tracing::warn!("a reused instance failed mid-response; cutting the response off");
                let error = wasmtime_wasi_http::Error::InternalError(Some(
                    "the function's instance failed before the response was finished".into(),
                ));
                return Poll::Ready(Some(Err(error)));
            }
            Poll::Ready(None | Some(Err(_))) => {
                self.finish = None;
                false
            }
            Poll::Ready(Some(Ok(_))) => Instant::now() >= self.deadline.deadline().into_std(),
            Poll::Pending => self.deadline.as_mut().poll(cx).is_ready(),
        };
        if late {
            self.finish = None;
            self.metrics.record_breach(Limit::Timeout);
            let message = sandbox::timeout_message(self.timeout);
            tracing::warn!(error = %message, "a function failed mid-response; cutting the response off");
            let error = wasmtime_wasi_http::Error::InternalError(Some(message));
            return Poll::Ready(Some(Err(error)));
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.finish.is_none() || self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
