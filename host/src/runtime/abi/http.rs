//! Runs a `wasi:http` component for one request: a `wasi:http/proxy`
//! component (WASI 0.2), or a `wasi:http/service` one (WASI 0.3, whose call
//! is in `service.rs`). Both get the same sandbox, limits, accounting and
//! response handling; only how the handler is called differs ([`Entry`]).
//!
//! The component gets the whole of WASI 0.2's CLI world (environment, exit,
//! stdio, clocks, random, filesystem with no preopens unless granted, sockets
//! denied) besides `wasi:http`, because standard toolchains import those
//! interfaces even for an HTTP handler. Request and response bodies stream:
//! the guest runs on the request's task until it sets its response head, and
//! the response body then drives the rest of its run (moved to a task of its
//! own if the client leaves first), so the host answers as soon as the head
//! is set.

use crate::error::{InvokeError, Limit};
use crate::observe::meter::{CpuTimed, GuestCost, Meter};
use crate::observe::metrics::FunctionMetrics;
use crate::observe::spans;
use crate::observe::trace::RequestTrace;
use crate::runtime::abi::output::OutputCapture;
use crate::runtime::body::{BoxError, CappedBody, LimitedBody, RequestBody, ResponseBody};
use crate::runtime::chain::ChainOrigin;
use crate::runtime::sandbox;
use crate::runtime::sandbox::{GuestMemory, MemoryLimiter};
use crate::runtime::services::{self, GuestServices, KvHeld, ServicesView};
use crate::runtime::slots::{PoolSlot, SlotPermit};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::Instrument;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};
use wisp_spec::headers::content_length;
use wisp_spec::limits::Limits;
use wisp_spec::settings::{OutboundRule, Settings, allow_list_allows};
use wisp_spec::units;

/// Bytes of a guest's stdout/stderr kept per request.
pub const GUEST_OUTPUT_CAP_BYTES: usize = 64 << 10;

/// The store data of a component sandbox.
pub struct HttpState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundPolicy,
    services: Arc<GuestServices>,
    kv_held: KvHeld,
    pub(crate) limiter: MemoryLimiter,
}

impl ServicesView for HttpState {
    fn services(&mut self) -> (&Arc<GuestServices>, &mut ResourceTable, &mut KvHeld) {
        (&self.services, &mut self.table, &mut self.kv_held)
    }
}

impl WasiView for HttpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HttpState {
    /// Its outbound policy, as wasi:http's hooks.
    pub(crate) fn hooks(&mut self) -> &mut dyn WasiHttpHooks {
        &mut self.hooks
    }

    /// Makes the guest's outbound calls from now on part of the request
    /// that `chain` and `span` describe.
    pub(crate) fn begin_request(&mut self, chain: ChainOrigin, span: tracing::Span) {
        self.hooks.chain = Some(chain);
        self.hooks.span = span;
    }
}

impl WasiHttpView for HttpState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outbound HTTP is denied unless the destination matches an allow rule;
/// an allowed call to `http://NAME.wisp.internal` runs function NAME
/// in-process.
struct OutboundPolicy {
    function: Arc<str>,
    rules: Arc<[OutboundRule]>,
    /// Set for a request's sandbox (not for a trial instantiation).
    chain: Option<ChainOrigin>,
    /// The request's span, the parent of each outbound call's.
    span: tracing::Span,
}

impl OutboundPolicy {
    /// Opens the client span of an outbound `request` and, when the host
    /// traces, writes its trace context into the request.
    fn trace(&self, request: &mut http::Request<wasmtime_wasi_http::WasiBody>) -> tracing::Span {
        let span = spans::outbound_span(&self.span, request.method(), request.uri());
        let context = self.chain.as_ref().and_then(|c| c.dispatch.trace_context());
        if let Some(context) = context {
            context.inject(&span, request.headers_mut());
        }
        span
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _response_error: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        if !allow_list_allows(&self.rules, request.uri()) {
            tracing::warn!(
                function = %self.function,
                destination = %request.uri(),
                "outbound request denied: destination is not in the function's allow-list"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let mut request = request;
        let span = self.trace(&mut request);
        let internal = request.uri().scheme_str() == Some("http")
            && request
                .uri()
                .host()
                .and_then(crate::runtime::chain::internal_callee)
                .is_some();
        if internal {
            // Every call of this sandbox draws from one budget: make it
            // on the first, before the origin is cloned for the call.
            if let Some(chain) = &mut self.chain {
                chain.budget.get_or_insert_with(Arc::default);
            }
            let Some(origin) = self.chain.clone() else {
                return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
            };
            let caller = self.function.clone();
            let callee = request
                .uri()
                .host()
                .and_then(crate::runtime::chain::internal_callee)
                .unwrap_or_default()
                .to_owned();
            return Box::new(
                async move {
                    let response = origin.call(&caller, &callee, request).await;
                    spans::record_status(&tracing::Span::current(), response.status());
                    let done = Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>;
                    Ok((response, done))
                }
                .instrument(span),
            );
        }
        let request = match self.chain.clone() {
            Some(origin) => match origin.dispatch.send_outside(request) {
                Ok(call) => {
                    return Box::new(
                        async move {
                            let response = call.await?;
                            spans::record_status(&tracing::Span::current(), response.status());
                            let done =
                                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>;
                            Ok((response, done))
                        }
                        .instrument(span),
                    );
                }
                Err(request) => *request,
            },
            None => request,
        };
        Box::new(
            async move {
                let (response, io) =
                    wasmtime_wasi_http::default_send_request(request, options).await?;
                spans::record_status(&tracing::Span::current(), response.status());
                Ok((
                    response.map(BodyExt::boxed_unsync),
                    Box::new(io) as Box<dyn Future<Output = _> + Send>,
                ))
            }
            .instrument(span),
        )
    }
}

/// The linker every WASI 0.2 component is pre-linked against: WASI 0.2
/// and the platform services.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HttpState>> {
    let mut linker = Linker::new(engine);
    add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Adds WASI 0.2 (the CLI world and `wasi:http`) and the platform services
/// to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HttpState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    services::add_to_linker(linker)
}

/// A fresh sandbox store for one request of `function`: its WASI context
/// (default-deny, with `stdout`/`stderr` captured), its outbound policy, its
/// platform services and its limits.
#[expect(clippy::too_many_arguments, reason = "each is one part of the sandbox")]
pub fn new_store(
    engine: &Engine,
    function: Arc<str>,
    settings: &Settings,
    outbound: Arc<[OutboundRule]>,
    services: Arc<GuestServices>,
    stdout: OutputCapture,
    stderr: OutputCapture,
    memory: Arc<GuestMemory>,
) -> Result<Store<HttpState>, InvokeError> {
    let mut wasi = sandbox::wasi_builder(&function, settings)?;
    wasi.stdout(stdout).stderr(stderr);
    let state = HttpState {
        wasi: wasi.build(),
        http: WasiHttpCtx::new(),
        table: ResourceTable::new(),
        hooks: OutboundPolicy {
            function,
            rules: outbound,
            chain: None,
            span: tracing::Span::none(),
        },
        services,
        kv_held: KvHeld::default(),
        limiter: MemoryLimiter::new(settings.limits.memory_bytes, memory.clone()),
    };
    let mut store = Store::new(engine, state);
    sandbox::set_limiter(&mut store, memory.is_leased(), |state| &mut state.limiter);
    sandbox::prepare_store(&mut store, &settings.limits)?;
    Ok(store)
}

/// A sandbox made before its request (see `runtime/prepared.rs`): a fresh
/// store with the component instantiated, which serves exactly one request.
pub struct ReadySandbox {
    store: Store<HttpState>,
    instance: Instance,
    stdout: OutputCapture,
    stderr: OutputCapture,
}

/// Makes a sandbox of `entry` for a later request of `function`, exactly as
/// the request would have made it.
pub async fn prepare(
    entry: &Entry,
    function: Arc<str>,
    settings: &Settings,
    outbound: Arc<[OutboundRule]>,
    services: Arc<GuestServices>,
    memory: Arc<GuestMemory>,
) -> Result<ReadySandbox, InvokeError> {
    let stdout = OutputCapture::new(GUEST_OUTPUT_CAP_BYTES);
    let stderr = OutputCapture::new(GUEST_OUTPUT_CAP_BYTES);
    let mut store = new_store(
        entry.engine(),
        function,
        settings,
        outbound,
        services,
        stdout.clone(),
        stderr.clone(),
        memory,
    )?;
    let instance = entry
        .instantiate(&mut store)
        .await
        .map_err(sandbox::instantiate_error)?;
    Ok(ReadySandbox {
        store,
        instance,
        stdout,
        stderr,
    })
}

/// The handler a request calls, by WASI version: the pre-linked component.
#[derive(Clone)]
pub enum Entry {
    /// WASI 0.2: `wasi:http/incoming-handler`.
    Proxy(ProxyPre<HttpState>),
    /// WASI 0.3: `wasi:http/handler`.
    Service(ServicePre<HttpState>),
}

impl Entry {
    /// The engine it was compiled for.
    pub(crate) fn engine(&self) -> &Engine {
        match self {
            Entry::Proxy(pre) => pre.engine(),
            Entry::Service(pre) => pre.engine(),
        }
    }

    /// A fresh instance in `store`.
    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<HttpState>,
    ) -> wasmtime::Result<Instance> {
        Ok(match self {
            Entry::Proxy(pre) => Instance::Proxy(pre.instantiate_async(store).await?),
            Entry::Service(pre) => Instance::Service(pre.instantiate_async(store).await?),
        })
    }
}

/// Everything one component invocation needs, owned, so the guest can run in
/// its own task.
pub struct HttpCall {
    /// The handler to call.
    pub entry: Entry,
    /// The function's name, for logs.
    pub function: Arc<str>,
    /// Its settings.
    pub settings: Arc<Settings>,
    /// Outbound allow-list, shared by all its requests.
    pub outbound: Arc<[OutboundRule]>,
    /// Its key-value buckets and configuration.
    pub services: Arc<GuestServices>,
    /// Where the request's cost, metrics and logs go.
    pub meter: Meter,
    /// The host's guest memory budget the sandbox is charged to.
    pub memory: Arc<GuestMemory>,
    /// The request's id and timings.
    pub trace: Arc<RequestTrace>,
    /// The request id.
    pub request_id: Arc<str>,
    /// Held until the guest finishes: its concurrency slots.
    pub permit: SlotPermit,
    /// Set when the request body arrived too slowly.
    pub body_too_slow: Arc<AtomicBool>,
    /// Where the guest's chained calls come from.
    pub chain: ChainOrigin,
    /// A sandbox prepared for it, if one was waiting.
    pub ready: Option<ReadySandbox>,
}

/// Runs `request` through a fresh instance of the component: the one
/// prepared for it, or one made now.
pub async fn invoke(
    call: HttpCall,
    request: http::Request<RequestBody>,
) -> Result<http::Response<ResponseBody>, InvokeError> {
    let HttpCall {
        entry,
        function,
        settings,
        outbound,
        services,
        meter,
        memory,
        trace,
        request_id,
        permit,
        body_too_slow,
        chain,
        ready,
    } = call;
    let limits = settings.limits.clone();
    let (request, too_large) = limited_request(request, &limits)?;

    let (mut store, ready, stdout, stderr) = match ready {
        Some(ready) => {
            let mut store = ready.store;
            // Its time slice and fuel start now, not when it was made.
            sandbox::prepare_store(&mut store, &limits)?;
            (store, Some(ready.instance), ready.stdout, ready.stderr)
        }
        None => {
            let stdout = OutputCapture::new(GUEST_OUTPUT_CAP_BYTES);
            let stderr = OutputCapture::new(GUEST_OUTPUT_CAP_BYTES);
            let store = new_store(
                entry.engine(),
                function.clone(),
                &settings,
                outbound,
                services,
                stdout.clone(),
                stderr.clone(),
                memory,
            )?;
            (store, None, stdout, stderr)
        }
    };
    store.data_mut().begin_request(chain, trace.span.clone());

    let internal = |e: wasmtime::Error| InvokeError::Internal(format!("{e:#}"));
    let (call, heads) = match &entry {
        Entry::Proxy(_) => {
            let (sender, receiver) = tokio::sync::oneshot::channel();
            let request = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)
                .map_err(internal)?;
            let outparam = store
                .data_mut()
                .http()
                .new_response_outparam(sender)
                .map_err(internal)?;
            (Call::Proxy { request, outparam }, Heads::Proxy(receiver))
        }
        Entry::Service(_) => {
            let (head, receiver) = tokio::sync::oneshot::channel();
            (
                Call::Service {
                    request: Box::new(request),
                    head,
                },
                Heads::Service(receiver),
            )
        }
    };

    let task_limits = limits.clone();
    let cap_label = function.clone();
    let metrics = meter.metrics.clone();
    let guest: GuestTask = Box::pin(async move {
        let started = Instant::now();
        let run = async {
            let instance = match ready {
                Some(instance) => {
                    drop(spans::prepared_span(&trace.span).entered());
                    instance
                }
                None => {
                    entry
                        .instantiate(&mut store)
                        .instrument(spans::instantiate_span(&trace.span))
                        .await?
                }
            };
            let instantiated = started.elapsed();
            meter.metrics.record_instantiate(instantiated);
            trace.set_instantiate(instantiated);
            match (instance, call) {
                (Instance::Proxy(proxy), Call::Proxy { request, outparam }) => {
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, request, outparam)
                        .instrument(spans::guest_span(&trace.span))
                        .await
                }
                (Instance::Service(service), Call::Service { request, head }) => {
                    super::service::handle(&mut store, service, *request, head)
                        .instrument(spans::guest_span(&trace.span))
                        .await
                }
                _ => Err(wasmtime::format_err!(
                    "the handler and its call differ in WASI version"
                )),
            }
        };
        let finished = tokio::time::timeout(task_limits.timeout, CpuTimed::new(run)).await;
        let (result, cpu) = match finished {
            Err(_elapsed) => (Err(sandbox::timeout_error(&task_limits)), Duration::ZERO),
            Ok((Ok(()), cpu)) => (Ok(()), cpu),
            Ok((Err(error), cpu)) => {
                let explained =
                    sandbox::explain_failure(&error, &store.data().limiter, &task_limits);
                if explained.is_err() {
                    sandbox::log_failure(&function, &request_id, &error, &stderr.contents());
                }
                (explained, cpu)
            }
        };
        let cost = GuestCost {
            wall: started.elapsed(),
            cpu,
            fuel: sandbox::fuel_used(&store, &task_limits),
            peak_memory_bytes: store.data().limiter.peak_bytes(),
        };
        meter.finished(
            cost,
            &trace,
            &request_id,
            &stdout.contents(),
            &stderr.contents(),
        );
        tear_down_later(store, permit.finish());
        result
    });

    let (head, guest) = match heads {
        Heads::Proxy(receiver) => run_until_response(receiver, guest).await,
        Heads::Service(receiver) => run_until_response(receiver, guest).await,
    };
    if body_too_slow.load(Ordering::Relaxed) {
        return Err(body_too_slow_error());
    }
    let response = match head {
        Head::Response(Ok(response)) => response,
        Head::Response(Err(code)) => {
            if too_large.load(Ordering::Relaxed) {
                return Err(request_too_large(limits.max_request_body_bytes));
            }
            return Err(InvokeError::GuestError(code));
        }
        Head::NeverSet(outcome) => {
            if too_large.load(Ordering::Relaxed) {
                return Err(request_too_large(limits.max_request_body_bytes));
            }
            return Err(match outcome {
                Err(error) => error,
                Ok(()) => InvokeError::GuestError(
                    "the function finished without sending a response".into(),
                ),
            });
        }
    };
    if too_large.load(Ordering::Relaxed) {
        return Err(request_too_large(limits.max_request_body_bytes));
    }
    let declared =
        content_length(response.headers()).map_err(|e| InvokeError::GuestError(e.to_string()))?;
    if declared.is_some_and(|n| n > limits.max_response_body_bytes) {
        return Err(response_too_large(limits.max_response_body_bytes));
    }
    Ok(response.map(|body| {
        let body = GuestBody {
            body,
            guest,
            failed: None,
            metrics,
        };
        CappedBody::new(
            body.map_err(|e| Box::new(e) as BoxError),
            limits.max_response_body_bytes,
            cap_label,
        )
        .boxed_unsync()
    }))
}

/// `request` with its body capped at the function's limit (refused at once
/// when its declared length is over it) and the authority wasi:http
/// requires; the flag is set when the body turns out too large.
pub(crate) fn limited_request(
    request: http::Request<RequestBody>,
    limits: &Limits,
) -> Result<(http::Request<LimitedBody>, Arc<AtomicBool>), InvokeError> {
    let declared_length =
        content_length(request.headers()).map_err(|e| InvokeError::BadRequest(e.to_string()))?;
    if declared_length.is_some_and(|n| n > limits.max_request_body_bytes) {
        return Err(request_too_large(limits.max_request_body_bytes));
    }
    let mut request = request;
    if request.uri().authority().is_none() && !request.headers().contains_key(http::header::HOST) {
        // wasi:http requires an authority; an embedder's bare `/path` request has none.
        request.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
    }
    let too_large = Arc::new(AtomicBool::new(false));
    let limit = limits.max_request_body_bytes;
    let request = request.map(|body| LimitedBody::new(body, limit, too_large.clone()));
    Ok((request, too_large))
}

/// Drops a finished sandbox's store (its instance back to the pool, its
/// memory reset) in a task of its own, after the response's last frame
/// rather than before it, then frees the host slot it held. Outside a
/// runtime both are dropped at once.
fn tear_down_later(store: Store<HttpState>, slot: PoolSlot) {
    let tear_down = move || {
        drop(store);
        drop(slot);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn(async move { tear_down() })),
        Err(_) => tear_down(),
    }
}

/// A guest's whole run for one request: instantiate, handle, account.
type GuestTask = Pin<Box<dyn Future<Output = Result<(), InvokeError>> + Send>>;

/// How a guest's run began: with a response head, or without one.
enum Head {
    /// The guest answered with a response, or with an error code (shown).
    Response(Result<http::Response<HyperOutgoingBody>, String>),
    /// The guest finished without answering; its outcome says why.
    NeverSet(Result<(), InvokeError>),
}

/// The handler's arguments, made before the guest runs, by WASI version.
enum Call {
    /// WASI 0.2: the request and the outparam the response head comes by.
    Proxy {
        request: wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostIncomingRequest>,
        outparam:
            wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostResponseOutparam>,
    },
    /// WASI 0.3: the request, and where the response head goes.
    Service {
        request: Box<http::Request<LimitedBody>>,
        head: super::service::HeadSender,
    },
}

/// Where the response head comes from, by WASI version.
enum Heads {
    Proxy(tokio::sync::oneshot::Receiver<Result<http::Response<HyperOutgoingBody>, ErrorCode>>),
    Service(super::service::HeadReceiver),
}

/// A live instance, by WASI version.
pub(crate) enum Instance {
    Proxy(Proxy),
    Service(wasmtime_wasi_http::p3::bindings::Service),
}

/// Drives the guest in this task until it answers with its response head
/// (or an error code). Returns the head and, unless the guest already
/// finished, the rest of its run — which the response body then drives. No
/// task is spawned and no other thread is woken: a request runs start to
/// finish where it arrived.
async fn run_until_response<E: std::fmt::Debug>(
    mut receiver: tokio::sync::oneshot::Receiver<Result<http::Response<HyperOutgoingBody>, E>>,
    mut guest: GuestTask,
) -> (Head, Option<GuestTask>) {
    let shown = |head: Result<_, E>| head.map_err(|code| format!("{code:?}"));
    tokio::select! {
        biased;
        head = &mut receiver => match head {
            Ok(head) => (Head::Response(shown(head)), Some(guest)),
            // The sender was dropped unset: the guest is finishing.
            Err(_) => (Head::NeverSet(guest.await), None),
        },
        outcome = &mut guest => match receiver.try_recv() {
            Ok(head) => (Head::Response(shown(head)), None),
            Err(_) => (Head::NeverSet(outcome), None),
        },
    }
}

/// A response body that drives the rest of the guest's run as it is read.
/// If it is dropped before the guest is done (a `HEAD` request, a client
/// gone), the rest of the run moves to a task of its own, so it still ends
/// within its deadline and is accounted for. If the guest fails before its
/// body is finished (a deadline, a trap), the body ends in an error, not
/// cleanly — the store's end would otherwise look like a finished body — so
/// the client sees a cut-off response, never a truncated one passed off as
/// whole.
struct GuestBody {
    body: HyperOutgoingBody,
    guest: Option<GuestTask>,
    /// Why the guest failed, once known.
    failed: Option<InvokeError>,
    /// Where a limit that cut the body off is counted.
    metrics: Arc<FunctionMetrics>,
}

impl http_body::Body for GuestBody {
    type Data = bytes::Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if let Some(guest) = self.guest.as_mut()
            && let Poll::Ready(outcome) = guest.as_mut().poll(cx)
        {
            self.guest = None;
            self.failed = outcome.err();
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) => match self.failed.take() {
                Some(error) => {
                    tracing::warn!(error = %error, "a function failed mid-response; cutting the response off");
                    if let InvokeError::LimitExceeded { limit, .. } = &error {
                        self.metrics.record_breach(*limit);
                    }
                    Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                        error.to_string(),
                    )))))
                }
                None => Poll::Ready(None),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for GuestBody {
    fn drop(&mut self) {
        if let Some(guest) = self.guest.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(guest);
        }
    }
}

pub(crate) fn request_too_large(limit: u64) -> InvokeError {
    InvokeError::limit(
        Limit::RequestBody,
        format!(
            "the request body exceeds the function's limit of {}",
            units::format_size(limit)
        ),
    )
}

/// The error for a request whose body arrived too slowly.
pub(crate) fn body_too_slow_error() -> InvokeError {
    InvokeError::limit(
        Limit::RequestBodyTime,
        "the request body arrived too slowly (see the host's body pacing)",
    )
}

/// The error for a response declared larger than the function may send.
pub fn response_too_large(limit: u64) -> InvokeError {
    InvokeError::limit(
        Limit::ResponseBody,
        format!(
            "the response body exceeds the function's limit of {}",
            units::format_size(limit)
        ),
    )
}
