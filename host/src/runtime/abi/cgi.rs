//! Runs a WASI preview1 core module CGI-style (RFC 3875) for one request.
//!
//! The request becomes meta-variables in the environment ([`super::cgi_env`])
//! and the body on stdin; the module's `_start` runs; its stdout is parsed as
//! a CGI response (`wisp_spec::cgi_response`).
//!
//! * The body is read whole before the guest starts (`CONTENT_LENGTH` must be
//!   known), within the function's timeout, paced, charged to the host's
//!   buffer budget, and holding no concurrency slot: slots are taken only
//!   once the guest is about to run.
//! * Stdout is a bounded pipe ([`super::cgi_stdout`]). A guest that exits
//!   with its output inside one window gets the exact answer (an error
//!   status if it failed). A guest that fills the window has its head
//!   parsed and its body streamed as it writes, with backpressure: its
//!   writes wait while the client is slow to read. If it then fails, the
//!   response is cut off.

use crate::error::{InvokeError, Limit};
use crate::observe::meter::{CpuTimed, GuestCost, Meter};
use crate::observe::metrics::FunctionMetrics;
use crate::observe::spans;
use crate::observe::trace::RequestTrace;
use crate::runtime::abi::cgi_env;
use crate::runtime::abi::cgi_stdout::StdoutPipe;
use crate::runtime::abi::http::{GUEST_OUTPUT_CAP_BYTES, response_too_large};
use crate::runtime::abi::output::OutputCapture;
use crate::runtime::body::{BoxError, RequestBody, ResponseBody, full, read_whole};
use crate::runtime::buffers::BufferBudget;
use crate::runtime::buffers::BufferCharge;
use crate::runtime::connection::ConnectionInfo;
use crate::runtime::function::Function;
use crate::runtime::sandbox;
use crate::runtime::sandbox::{GuestMemory, MemoryLimiter};
use crate::runtime::slots::SlotTicket;
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::Instrument;
use wasmtime::{Engine, InstancePre, Linker, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wisp_spec::cgi_response::{self, MAX_HEADER_SECTION_BYTES};
use wisp_spec::limits::Limits;
use wisp_spec::route::Route;
use wisp_spec::settings::Settings;
use wisp_spec::units;

/// The store data of a CGI sandbox.
pub struct CgiState {
    wasi: WasiP1Ctx,
    pub(crate) limiter: MemoryLimiter,
}

/// The linker every CGI module is pre-linked against: WASI preview1 only.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<CgiState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut CgiState| &mut state.wasi)?;
    #[cfg(feature = "escape-drill")]
    crate::runtime::drill::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// A fresh sandbox store with the WASI context `wasi` and `limits`.
pub fn new_store(
    engine: &Engine,
    wasi: &mut WasiCtxBuilder,
    limits: &Limits,
    memory: Arc<GuestMemory>,
) -> Result<Store<CgiState>, InvokeError> {
    let state = CgiState {
        wasi: wasi.build_p1(),
        limiter: MemoryLimiter::new(limits.memory_bytes, memory.clone()),
    };
    let mut store = Store::new(engine, state);
    sandbox::set_limiter(&mut store, memory.is_leased(), |state| &mut state.limiter);
    sandbox::prepare_store(&mut store, limits)?;
    Ok(store)
}

/// Everything one CGI invocation needs.
pub struct CgiCall<'a> {
    /// The pre-linked module.
    pub pre: &'a InstancePre<CgiState>,
    /// The version being run (its slots are taken when the guest starts).
    pub version: &'a Function,
    /// The function's name (`argv[0]`, and logs).
    pub function: &'a Arc<str>,
    /// Its settings.
    pub settings: &'a Settings,
    /// The route that matched, and the rest of the path after it.
    pub route: &'a Route,
    /// The path after the route prefix.
    pub path_info: &'a str,
    /// Where the request came from.
    pub connection: ConnectionInfo,
    /// Where the request's cost, metrics and logs go.
    pub meter: &'a Meter,
    /// The request's id and timings.
    pub trace: &'a Arc<RequestTrace>,
    /// The request id.
    pub request_id: &'a Arc<str>,
    /// The request's slots, taken when the guest is about to run.
    pub ticket: SlotTicket<'a>,
    /// The host's budget for buffered request bodies.
    pub buffers: &'a Arc<BufferBudget>,
}

/// A guest's whole run: instantiate, `_start`, account.
type GuestRun = Pin<Box<dyn Future<Output = Result<(), InvokeError>> + Send>>;

/// Reads a CGI request's whole body (CGI wants its length before the
/// guest starts), charged to the host's `buffers`, within the function's
/// time limit counted from `started`; the charge is held until the body is
/// dropped with it.
pub(crate) async fn read_body(
    body: RequestBody,
    limits: &Limits,
    started: std::time::Instant,
    buffers: &Arc<BufferBudget>,
) -> Result<(Bytes, BufferCharge), InvokeError> {
    let deadline = tokio::time::Instant::from_std(started + limits.timeout);
    let mut charge = buffers.charge();
    match tokio::time::timeout_at(deadline, read_whole(body, limits, &mut charge)).await {
        Ok(Ok(body)) => Ok((body, charge)),
        Ok(Err(error)) => Err(error),
        Err(_elapsed) => Err(InvokeError::limit(
            Limit::RequestBodyTime,
            format!(
                "the request body did not arrive within the function's time limit of {}",
                units::format_duration(limits.timeout)
            ),
        )),
    }
}

/// Runs `request` through a fresh instance of the module.
pub async fn invoke(
    call: CgiCall<'_>,
    request: http::Request<RequestBody>,
) -> Result<http::Response<ResponseBody>, InvokeError> {
    let limits = &call.settings.limits;
    let (parts, body) = request.into_parts();
    let deadline = tokio::time::Instant::from_std(call.ticket.started() + limits.timeout);
    let (body, charge) = read_body(body, limits, call.ticket.started(), call.buffers).await?;
    let permit = call.ticket.take(call.version).await?;

    let mut env = cgi_env::meta_variables(
        &parts,
        call.route,
        call.path_info,
        body.len(),
        &call.connection,
    );
    for (key, value) in &call.settings.env {
        if !env.iter().any(|(k, _)| k == key) {
            env.push((key.clone(), value.clone()));
        }
    }
    let stdout = StdoutPipe::new(
        limits
            .max_response_body_bytes
            .saturating_add(MAX_HEADER_SECTION_BYTES as u64),
    );
    let stderr = OutputCapture::new(GUEST_OUTPUT_CAP_BYTES);
    let mut wasi = sandbox::wasi_builder(call.function, call.settings)?;
    wasi.envs(&env)
        .arg(&**call.function)
        .stdin(MemoryInputPipe::new(body))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    let mut store = new_store(
        call.pre.module().engine(),
        &mut wasi,
        limits,
        call.version.memory().clone(),
    )?;

    let pre = call.pre.clone();
    let function = call.function.clone();
    let meter = call.meter.clone();
    let metrics = meter.metrics.clone();
    let trace = call.trace.clone();
    let request_id = call.request_id.clone();
    let task_limits = limits.clone();
    let output = stdout.clone();
    let mut guest: GuestRun = Box::pin(async move {
        let _held = (permit, charge);
        let started = Instant::now();
        let run = async {
            let instance = pre
                .instantiate_async(&mut store)
                .instrument(spans::instantiate_span(&trace.span))
                .await?;
            let instantiated = started.elapsed();
            meter.metrics.record_instantiate(instantiated);
            trace.set_instantiate(instantiated);
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start
                .call_async(&mut store, ())
                .instrument(spans::guest_span(&trace.span))
                .await
        };
        let finished = tokio::time::timeout_at(deadline, CpuTimed::new(run)).await;
        let (result, cpu) = match finished {
            Err(_elapsed) => (Err(None), Duration::ZERO),
            Ok((result, cpu)) => (result.map_err(Some), cpu),
        };
        let cost = GuestCost {
            wall: started.elapsed(),
            cpu,
            fuel: sandbox::fuel_used(&store, &task_limits),
            peak_memory_bytes: store.data().limiter.peak_bytes(),
        };
        meter.finished(cost, &trace, &request_id, b"", &stderr.contents());
        if output.overflowed() {
            return Err(response_too_large(task_limits.max_response_body_bytes));
        }
        match result {
            Ok(()) => Ok(()),
            Err(None) => Err(sandbox::timeout_error(&task_limits)),
            Err(Some(error)) => {
                let explained =
                    sandbox::explain_failure(&error, &store.data().limiter, &task_limits);
                if explained.is_err() {
                    sandbox::log_failure(&function, &request_id, &error, &stderr.contents());
                }
                explained
            }
        }
    });

    // Run the guest until it exits or fills the window.
    let exited = std::future::poll_fn(|cx| match guest.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(Some(result)),
        Poll::Pending if stdout.is_full() => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
    .await;
    let finished = match exited {
        Some(result) => {
            result?;
            true
        }
        None => false,
    };
    let output = stdout.peek();
    let head = cgi_response::parse(&output).map_err(|e| {
        tracing::warn!(function = %call.function, error = %e, "invalid CGI response");
        InvokeError::BadCgiResponse(e.to_string())
    })?;
    let body = match finished {
        true => full(output.slice(head.body_start..)),
        false => {
            let waker = futures_util::task::noop_waker();
            let taken = stdout.poll_take(&mut Context::from_waker(&waker));
            StreamedOutput {
                first: Some(taken.slice(head.body_start..)),
                pipe: stdout,
                guest: Some(guest),
                failed: None,
                metrics,
            }
            .boxed_unsync()
        }
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    Ok(response)
}

/// The rest of a CGI response, streamed from the guest's stdout as it runs.
struct StreamedOutput {
    first: Option<Bytes>,
    pipe: StdoutPipe,
    /// The guest, driven by this body; `None` once it has exited.
    guest: Option<GuestRun>,
    /// Why the guest failed, once known.
    failed: Option<InvokeError>,
    /// Where a limit that cut the response off is counted.
    metrics: Arc<FunctionMetrics>,
}

impl Body for StreamedOutput {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(first) = this.first.take().filter(|b| !b.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if let Some(guest) = &mut this.guest
            && let Poll::Ready(result) = guest.as_mut().poll(cx)
        {
            this.guest = None;
            this.failed = result.err();
        }
        let taken = this.pipe.poll_take(cx);
        if !taken.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(taken))));
        }
        if this.guest.is_some() {
            return Poll::Pending;
        }
        match this.failed.take() {
            Some(error) => {
                tracing::warn!(error = %error, "a CGI function failed mid-response; cutting the response off");
                if let InvokeError::LimitExceeded { limit, .. } = &error {
                    this.metrics.record_breach(*limit);
                }
                Poll::Ready(Some(Err(Box::new(error))))
            }
            None => Poll::Ready(None),
        }
    }
}

impl Drop for StreamedOutput {
    /// A client gone (or cut off by the write timeout) before the guest is
    /// done: its writes now fail, and the rest of its run moves to a task of
    /// its own, so it ends at once and is still accounted for.
    fn drop(&mut self) {
        self.pipe.close_reader();
        if let Some(guest) = self.guest.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(guest);
        }
    }
}
