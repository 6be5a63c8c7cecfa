//! The request path: route → pick a version → (read a CGI body) → take
//! slots → run the guest in a fresh sandbox → answer.
//!
//! [`Dispatcher`] owns it. The facade's `Host::handle` (the public
//! listener's, or an embedder's, entry) routes with [`Dispatcher::route`]
//! and dispatches, unless the request asks to be an async call;
//! `Host::handle_with` is the operator's path (`wisp invoke`). They differ
//! in one thing: which versions `x-wisp-version` may pin ([`Audience`]).
//! Chained calls, cron ticks, async calls and WebSocket event batches
//! re-enter through
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
mod spin;

use crate::error::InvokeError;
use crate::observe::metrics::Metrics;
use crate::observe::spans;
use crate::observe::spans::TraceContext;
use crate::observe::trace::{self, RunOf, Traced};
use crate::registry::Registry;
use crate::registry::{Audience, FunctionEntry};
use crate::runtime::Runtime;
use crate::runtime::body::{BoxError, ResponseBody, full};
use crate::runtime::chain::{Dispatch, PUBLISH_TARGET, SELF_TARGET};
use crate::runtime::connection::ConnectionInfo;
use crate::runtime::function::Function;
use crate::runtime::function::RequestContext;
use crate::runtime::pacing::{BodyPacing, paced};
pub(crate) use crate::runtime::slots::NoRoom;
use access_log::AccessRecord;
use bytes::Bytes;
use http::HeaderValue;
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
    /// Where a guest's publishes go.
    pub(crate) publisher: Arc<crate::channels::Publisher>,
    /// The guest workers, when guests run in worker processes.
    pub(crate) workers: Option<Arc<crate::runtime::workers::WorkerPool>>,
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
        if name == PUBLISH_TARGET {
            return self.publish_for_guest(request).await;
        }
        let entry = if name == SELF_TARGET {
            // A call to the app itself: the function that serves the path
            // publicly, which it gets whole, as a client's request.
            let path = request.uri().path();
            let routed = self
                .registry
                .snapshot()
                .route(path)
                .map(|(entry, _)| entry.clone());
            match routed {
                Some(entry) => entry,
                None => return error_response(&InvokeError::NoRoute(path.to_owned())),
            }
        } else {
            match self.registry.snapshot().get(name).cloned() {
                Some(entry) => entry,
                None => return error_response(&InvokeError::UnknownFunction(name.to_owned())),
            }
        };
        let path = request.uri().path();
        // A chained call (or `wisp invoke`) addresses the function as if
        // mounted at `/`; a cron tick or an async call under its route.
        let path_info = match trigger {
            Trigger::Cron | Trigger::Async | Trigger::WebSocket => {
                entry.route.strip(path).unwrap_or(path)
            }
            _ => path,
        }
        .to_owned();
        self.dispatch(&entry, &path_info, request, audience, trigger)
            .await
    }

    /// Runs `request` with a version of `entry`, `path_info` being the
    /// path after its route: a pipeline of named steps, each owned by the
    /// part it names — choose the version (the registry), admit the
    /// headers (`inbound`), begin the trace (`observe`), run the guest
    /// under its slots and pacing (`run`, on the runtime) and answer
    /// (`answer`: metrics, history, headers, the access log).
    pub(crate) async fn dispatch<B>(
        self: &Arc<Self>,
        entry: &FunctionEntry,
        path_info: &str,
        mut request: http::Request<B>,
        audience: Audience,
        trigger: Trigger,
    ) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let name = &entry.record.name;
        let function = match entry.choose(request.headers(), audience) {
            Ok(function) => function,
            Err(error) => return self.refuse(&request, started, Some(name), &error),
        };
        if trigger != Trigger::WebSocket
            && wisp_spec::headers::is_websocket_events(request.headers())
        {
            // Events come only from the host's gateway: a client (or
            // another function) cannot speak for a connection.
            let error = InvokeError::BadRequest(
                "`application/websocket-events` bodies come only from the host's WebSocket gateway"
                    .to_owned(),
            );
            return self.refuse(&request, started, Some(name), &error);
        }
        if trigger == Trigger::Async && !self.runtime.slots.has_room(&function) {
            // A background run never waits for, or takes, a slot a client
            // request may want: the call goes back to its queue.
            return no_room();
        }
        inbound::admit(request.headers_mut(), trigger);
        if let Some(route) = &function.settings.spin_route {
            let connection = request
                .extensions()
                .get::<ConnectionInfo>()
                .copied()
                .unwrap_or_default();
            let uri = request.uri().clone();
            spin::set_headers(request.headers_mut(), route, &uri, &connection);
        }
        if trigger != Trigger::Http {
            self.metrics.record_trigger(name, trigger);
        }
        let run = RunOf {
            route: entry.route.as_str(),
            function: name,
            version: function.version,
            trigger,
        };
        let traced = trace::begin(&mut request, run, self.options.trace_context.as_ref());
        let asked = Asked {
            method: request.method().clone(),
            path: self
                .options
                .access_log
                .then(|| request.uri().path().to_owned()),
            started,
        };
        let response = self
            .run(entry, path_info, request, &function, &traced, &asked)
            .await;
        self.answer(&function, traced, asked, response)
    }

    /// Runs the guest: its body paced, a slot waited for (a background run
    /// waits for none), errors turned into their responses.
    async fn run<B>(
        self: &Arc<Self>,
        entry: &FunctionEntry,
        path_info: &str,
        request: http::Request<B>,
        function: &Arc<Function>,
        traced: &Traced,
        asked: &Asked,
    ) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let http1 = request.version() < http::Version::HTTP_2;
        let body_too_slow = Arc::new(AtomicBool::new(false));
        let connection = request
            .extensions()
            .get::<ConnectionInfo>()
            .copied()
            .unwrap_or_default();
        let slot_wait = match traced.trace.trigger {
            Trigger::Async => Duration::ZERO,
            _ => self.options.queue_timeout,
        };
        let pacing = self.options.body_pacing;
        let request = request.map(|body| paced(body, pacing, &body_too_slow));
        let dispatch: Arc<dyn Dispatch> = self.clone();
        let context = RequestContext {
            route: &entry.route,
            path_info,
            connection,
            trace: &traced.trace,
            request_id: &traced.request_id,
            ticket: self
                .runtime
                .slots
                .ticket(function, slot_wait, asked.started),
            body_too_slow: &body_too_slow,
            runtime: &self.runtime,
            dispatch: &dispatch,
            workers: self.workers.as_ref(),
        };
        let result = function
            .invoke(request, context)
            .instrument(spans::dispatch_span(&traced.trace.span))
            .await;
        result.unwrap_or_else(|error| {
            if let InvokeError::LimitExceeded { limit, .. } = &error {
                function.metrics().record_breach(*limit);
            }
            let mut response = error_response(&error);
            if http1 && error.status() == http::StatusCode::REQUEST_TIMEOUT {
                // The rest of a too-slow body is not worth waiting for.
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        })
    }

    /// Records what a run answered — its next sandbox prepared, status
    /// metrics, span status, history — and marks the response with the
    /// version and request id; its access line is written once it is sent.
    fn answer(
        &self,
        function: &Arc<Function>,
        traced: Traced,
        asked: Asked,
        mut response: http::Response<ResponseBody>,
    ) -> http::Response<ResponseBody> {
        if self.options.prepare {
            self.runtime.prepare_next(function);
        }
        let status = response.status();
        function.metrics().record_status(status);
        spans::record_status(&traced.trace.span, status);
        function
            .history()
            .record(status, asked.started.elapsed(), traced.trace.instantiate());
        let headers = response.headers_mut();
        headers.insert(VERSION_HEADER, HeaderValue::from(function.version));
        if let Some(value) = traced.id_header {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        match asked.path {
            Some(path) => {
                let record = AccessRecord {
                    method: asked.method,
                    path,
                    status,
                    started: asked.started,
                    function: Some(function.name.clone()),
                    version: Some(function.version),
                    trace: traced.trace,
                    request_id: traced.request_id,
                };
                response.map(|body| record.write_when_sent(body))
            }
            None => response,
        }
    }
}

impl Dispatcher {
    /// A guest's publish (`POST http://wisp.internal/publish`, allowed by
    /// its `allow-outbound`) to its own channels: the body of a GRIP
    /// publish, answered as Pushpin's publish endpoint answers.
    async fn publish_for_guest<B>(&self, request: http::Request<B>) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        use http_body_util::BodyExt;
        let answer = |status: http::StatusCode, text: String| {
            let mut response = http::Response::new(full(text));
            *response.status_mut() = status;
            response
        };
        let caller = request
            .headers()
            .get(wisp_spec::headers::CALLER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let path = request.uri().path();
        if request.method() != http::Method::POST || !matches!(path, "/publish" | "/publish/") {
            return answer(
                http::StatusCode::NOT_FOUND,
                "the host takes publishes at `POST http://wisp.internal/publish`\n".to_owned(),
            );
        }
        let limit = crate::channels::MAX_PUBLISH_BYTES;
        let body = match http_body_util::Limited::new(request.into_body(), limit)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return answer(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a publish is at most {limit} bytes\n"),
                );
            }
        };
        // The caller's own channels: the host set this header on the call.
        let Some(caller) = caller else {
            return answer(
                http::StatusCode::BAD_REQUEST,
                "a publish comes from a function\n".to_owned(),
            );
        };
        match self.publisher.publish(&caller, body).await {
            Ok(_) => answer(http::StatusCode::OK, "Published\n".to_owned()),
            Err(crate::channels::PublishError::Invalid(why)) => {
                answer(http::StatusCode::BAD_REQUEST, format!("{why}\n"))
            }
            Err(crate::channels::PublishError::Unavailable(why)) => {
                answer(http::StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"))
            }
            Err(error @ crate::channels::PublishError::UnknownFunction(_)) => {
                answer(http::StatusCode::NOT_FOUND, format!("{error}\n"))
            }
        }
    }
}

/// What the access log needs of a request, kept before the request is
/// handed to its guest.
struct Asked {
    method: http::Method,
    /// Its path, when access lines are written.
    path: Option<String>,
    started: Instant,
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
