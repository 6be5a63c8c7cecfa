//! The request path: route → pick a version → (read a CGI body) → take
//! slots → run the guest in a fresh sandbox → answer.
//!
//! [`Dispatcher`] owns it. The facade's `Host::handle` (the public
//! listener's, or an embedder's, entry) routes with [`Dispatcher::route`]
//! and dispatches, unless the request asks to be an async call;
//! `Host::handle_with` is the operator's path (`wisp invoke`). They differ
//! in one thing: which versions `x-wisp-version` may pin ([`Audience`]).
//! Chained calls, cron ticks and async calls re-enter through
//! [`Dispatcher::handle_named`] (chained calls through the narrow
//! [`Dispatch`] handle a sandbox holds). Routing reads the registry's snapshot without a lock;
//! the only waits are for the request body (paced, see [`pacing`]) and for
//! concurrency slots, which are taken only when the guest is about to run.
//! Every failure becomes one JSON error response. The access-log line and
//! the status and duration metrics are written here (the line when the
//! response is over, by [`access_log`]); a limit that cuts a response off
//! mid-stream is counted by the ABI that streams it.

pub(crate) mod access_log;
pub(crate) mod inbound;

use crate::error::InvokeError;
use crate::observe::metrics::Metrics;
use crate::observe::spans;
use crate::observe::spans::TraceContext;
use crate::observe::trace::{self, RequestTrace};
use crate::registry::Registry;
use crate::registry::{Audience, FunctionEntry};
use crate::runtime::Runtime;
use crate::runtime::body::{BoxError, RequestBody, ResponseBody, full};
use crate::runtime::chain::Dispatch;
use crate::runtime::connection::ConnectionInfo;
use crate::runtime::function::Function;
use crate::runtime::function::RequestContext;
use crate::runtime::pacing::{BodyPacing, PacedBody};
pub(crate) use crate::runtime::slots::NoRoom;
use access_log::AccessRecord;
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use tracing::Instrument;
use wasmtime_wasi_http::WasiBody;
use wisp_spec::api::Trigger;
use wisp_spec::headers::{REQUEST_ID_HEADER, VERSION_HEADER};

/// What the dispatcher is built from: how requests are logged, traced,
/// paced and queued.
pub(crate) struct DispatchOptions {
    /// Whether each request writes an access-log line.
    pub(crate) access_log: bool,
    /// How spans join distributed traces, if the host traces.
    pub(crate) trace_context: Option<Arc<dyn TraceContext>>,
    /// How slowly a request body may arrive.
    pub(crate) body_pacing: BodyPacing,
    /// How long a client request may wait for a concurrency slot.
    pub(crate) queue_timeout: Duration,
    /// Whether components' next sandboxes are prepared ahead.
    pub(crate) prepare: bool,
}

/// The request path: routes, picks a version, takes slots and runs the
/// guest on the runtime, recording what operators see.
pub(crate) struct Dispatcher {
    pub(crate) registry: Arc<Registry>,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) options: DispatchOptions,
}

impl Dispatch for Dispatcher {
    fn trace_context(&self) -> Option<&Arc<dyn TraceContext>> {
        self.options.trace_context.as_ref()
    }

    fn run<'a>(
        self: Arc<Self>,
        name: &'a str,
        request: http::Request<WasiBody>,
        trigger: Trigger,
    ) -> Pin<Box<dyn Future<Output = http::Response<ResponseBody>> + Send + 'a>> {
        Box::pin(async move {
            self.handle_named(name, request, Audience::Public, trigger)
                .await
        })
    }
}

impl Dispatcher {
    /// The function whose route matches `path`, and the rest of the path.
    pub(crate) fn route(&self, path: &str) -> Option<(Arc<FunctionEntry>, String)> {
        let snapshot = self.registry.snapshot();
        snapshot
            .route(path)
            .map(|(entry, rest)| (entry.clone(), rest.to_owned()))
    }

    /// Runs `request` with function `name` for `audience`, started by
    /// `trigger`: another function's in-process call ([`Trigger::Chain`]:
    /// its path as if `name` were mounted at `/`), a cron tick
    /// ([`Trigger::Cron`]: its path under the function's route), a stored
    /// async call ([`Trigger::Async`]: routed as when it was accepted, and
    /// run only if a slot is free at once, else the response carries
    /// [`NoRoom`]) or the operator's `wisp invoke` ([`Trigger::Http`]).
    pub(crate) async fn handle_named<B>(
        self: &Arc<Self>,
        name: &str,
        request: http::Request<B>,
        audience: Audience,
        trigger: Trigger,
    ) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let entry = self.registry.snapshot().get(name).cloned();
        let Some(entry) = entry else {
            return error_response(&InvokeError::UnknownFunction(name.to_owned()));
        };
        let path = request.uri().path();
        // A chained call (or `wisp invoke`) addresses the function as if
        // mounted at `/`; a cron tick or an async call under its route.
        let path_info = match trigger {
            Trigger::Cron | Trigger::Async => entry.route.strip(path).unwrap_or(path),
            _ => path,
        }
        .to_owned();
        self.dispatch(&entry, &path_info, request, audience, trigger)
            .await
    }

    /// Runs `request` with a version of `entry`, `path_info` being the
    /// path after its route.
    pub(crate) async fn dispatch<B>(
        self: &Arc<Self>,
        entry: &FunctionEntry,
        path_info: &str,
        request: http::Request<B>,
        audience: Audience,
        trigger: Trigger,
    ) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let name = &entry.record.name;
        let function = match choose(entry, request.headers(), audience) {
            Ok(function) => function,
            Err(error) => return self.refuse(&request, started, Some(name), &error),
        };
        if trigger == Trigger::Async && !self.runtime.slots.has_room(&function) {
            // A background run never waits for, or takes, a slot a client
            // request may want: the call goes back to its queue.
            return no_room();
        }
        let metrics = function.metrics();
        let mut request = request;
        inbound::strip_session_cookie(request.headers_mut());
        if trigger == Trigger::Http {
            // Only the host says what started a run, and its call's id.
            wisp_spec::headers::strip_host_headers(request.headers_mut());
        } else {
            self.metrics.record_trigger(name, trigger);
        }
        let id = trace::request_id(request.headers());
        let id_header = HeaderValue::try_from(id.as_str()).ok();
        if let Some(value) = &id_header {
            request
                .headers_mut()
                .insert(REQUEST_ID_HEADER, value.clone());
        }
        let request_id: Arc<str> = Arc::from(id);
        let span = spans::request_span(
            request.method(),
            entry.route.as_str(),
            request.uri().path(),
            name,
            trigger.as_str(),
        );
        span.record("faas.version", function.version);
        let trace_id = self.options.trace_context.as_ref().and_then(|context| {
            context.continue_trace(&span, request.headers());
            context.trace_id(&span).map(Arc::from)
        });
        let request_trace = Arc::new(RequestTrace::new(trigger, span.clone(), trace_id));
        let method = request.method().clone();
        let http1 = request.version() < http::Version::HTTP_2;
        let path = self
            .options
            .access_log
            .then(|| request.uri().path().to_owned());
        let body_too_slow = Arc::new(AtomicBool::new(false));
        let connection = request
            .extensions()
            .get::<ConnectionInfo>()
            .copied()
            .unwrap_or_default();
        let pacing = self.options.body_pacing;
        let slot_wait = match trigger {
            Trigger::Async => Duration::ZERO,
            _ => self.options.queue_timeout,
        };
        let request = request.map(|body| paced(body, pacing, &body_too_slow));
        let dispatch: Arc<dyn Dispatch> = self.clone();
        let context = RequestContext {
            route: &entry.route,
            path_info,
            connection,
            trace: &request_trace,
            request_id: &request_id,
            ticket: self.runtime.slots.ticket(&function, slot_wait, started),
            body_too_slow: &body_too_slow,
            runtime: &self.runtime,
            dispatch: &dispatch,
        };
        let mut response = match function
            .invoke(request, context)
            .instrument(spans::dispatch_span(&span))
            .await
        {
            Ok(response) => response,
            Err(error) => {
                if let InvokeError::LimitExceeded { limit, .. } = &error {
                    metrics.record_breach(*limit);
                }
                let mut response = error_response(&error);
                if http1 && error.status() == http::StatusCode::REQUEST_TIMEOUT {
                    // The rest of a too-slow body is not worth waiting for.
                    response
                        .headers_mut()
                        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
                response
            }
        };
        if self.options.prepare {
            self.runtime.prepare_next(&function);
        }
        metrics.record_status(response.status());
        spans::record_status(&span, response.status());
        function.history().record(
            response.status(),
            started.elapsed(),
            request_trace.instantiate(),
        );
        let headers = response.headers_mut();
        headers.insert(VERSION_HEADER, HeaderValue::from(function.version));
        if let Some(value) = id_header {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        match path {
            Some(path) => {
                let record = AccessRecord {
                    method,
                    path,
                    status: response.status(),
                    started,
                    function: Some(function.name.clone()),
                    version: Some(function.version),
                    trace: request_trace,
                    request_id,
                };
                response.map(|body| record.write_when_sent(body))
            }
            None => response,
        }
    }
}

impl Dispatcher {
    /// Answers a request no version ran for with `error`, and logs its
    /// access line.
    pub(crate) fn refuse<B>(
        &self,
        request: &http::Request<B>,
        started: Instant,
        function: Option<&str>,
        error: &InvokeError,
    ) -> http::Response<ResponseBody> {
        let response = error_response(error);
        if self.options.access_log {
            AccessRecord {
                method: request.method().clone(),
                path: request.uri().path().to_owned(),
                status: response.status(),
                started,
                function: function.map(Arc::from),
                version: None,
                trace: Arc::default(),
                request_id: Arc::from(trace::request_id(request.headers())),
            }
            .write_now();
        }
        response
    }
}

/// The version of `entry` that a request with `headers` runs on: the one
/// `x-wisp-version` pins, if `audience` may pin it, else the traffic
/// split's pick.
pub(crate) fn choose(
    entry: &FunctionEntry,
    headers: &http::HeaderMap,
    audience: Audience,
) -> Result<Arc<Function>, InvokeError> {
    let name = &entry.record.name;
    if entry.is_damaged() {
        return Err(InvokeError::Damaged(name.clone()));
    }
    let pinned = match headers.get(&VERSION_HEADER).map(parse_version) {
        None => None,
        Some(Ok(version)) => Some(version),
        Some(Err(text)) => {
            return Err(InvokeError::NoSuchVersion {
                name: name.clone(),
                version: text,
            });
        }
    };
    entry
        .pick(pinned, audience)
        .cloned()
        .ok_or_else(|| match pinned {
            Some(version) => InvokeError::NoSuchVersion {
                name: name.clone(),
                version: version.to_string(),
            },
            None => InvokeError::Unavailable(name.clone()),
        })
}

/// A request body, paced unless it is already over (a GET's); `too_slow`
/// is set if it arrives too slowly.
pub(crate) fn paced<B>(body: B, pacing: BodyPacing, too_slow: &Arc<AtomicBool>) -> RequestBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let body = body.map_err(Into::into).boxed_unsync();
    if http_body::Body::is_end_stream(&body) {
        body
    } else {
        PacedBody::new(body, pacing, too_slow.clone()).boxed_unsync()
    }
}

/// `4` or `v4` → 4; anything else is returned as text for the error.
fn parse_version(value: &HeaderValue) -> Result<u32, String> {
    let text = value.to_str().unwrap_or_default().trim();
    wisp_spec::traffic::parse_version(text).ok_or_else(|| text.to_owned())
}

/// The answer to a background run that found no free slot.
fn no_room() -> http::Response<ResponseBody> {
    let error = InvokeError::limit(
        crate::error::Limit::Concurrency,
        "no free slot for a background run",
    );
    let mut response = error_response(&error);
    response.extensions_mut().insert(NoRoom);
    response
}

fn error_response(error: &InvokeError) -> http::Response<ResponseBody> {
    error.to_response().map(full)
}
