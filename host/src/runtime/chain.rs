//! Function chaining: a guest's outbound request to
//! `http://NAME.wisp.internal/PATH` goes in-process to function NAME, with
//! no socket.
//!
//! The caller's allow-list must grant it (`--allow-outbound
//! http://NAME.wisp.internal`, or `http://*.wisp.internal`); that check is
//! the outbound policy's, before anything here runs. The callee gets PATH
//! unchanged, as if mounted at `/`, with scheme `http` and authority
//! `NAME.wisp.internal` (its `Host` too), with the caller's request id and
//! `traceparent` and `x-wisp-caller: CALLER`. It runs as its own request:
//! its own version pick, limits, metering and access line, with trigger
//! `chain`. A chain deeper than [`MAX_CHAIN_DEPTH`] calls is answered
//! `508 Loop Detected` without running; past [`MAX_CHAINED_CALLS`] calls
//! started by one client request — at any depth, so a guest cannot fan out
//! N calls at each of 8 levels — a call is answered `429 Too Many
//! Requests` without running. A chained call also ends with its caller: it
//! runs inside the caller's sandbox's outbound call, which is dropped when
//! the caller's deadline ends it.

use crate::observe::spans::TraceContext;
use crate::runtime::body::ResponseBody;
use http::HeaderValue;
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tracing::Instrument;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};
use wisp_spec::api::Trigger;
use wisp_spec::headers::{
    CALLER_HEADER, DEPTH_HEADER, REQUEST_ID_HEADER, TRACEPARENT, TRIGGER_HEADER, strip_host_headers,
};

/// The callee a guest's call to the bare `http://wisp.internal` is
/// dispatched to: the host's publish endpoint (`POST /publish`), not a
/// function (no function has an empty name).
pub(crate) const PUBLISH_TARGET: &str = "";

/// The callee a guest's call to `http://self.alt/PATH` (Spin's name for
/// its own app) is dispatched to: whichever function serves PATH on the
/// public listener, given PATH whole (no function is named `/`).
pub(crate) const SELF_TARGET: &str = "/";

/// The callee a guest's internal call goes to: function NAME for
/// `NAME.wisp.internal`, the publish endpoint for `wisp.internal`, the
/// function serving the path for `self.alt`.
pub(crate) fn internal_callee(host: &str) -> Option<&str> {
    if host.eq_ignore_ascii_case(wisp_spec::settings::INTERNAL_DOMAIN) {
        return Some(PUBLISH_TARGET);
    }
    if host.eq_ignore_ascii_case(wisp_spec::settings::SPIN_SELF_HOST) {
        return Some(SELF_TARGET);
    }
    wisp_spec::settings::internal_function(host)
}

/// Most calls one chain may make, counting from the first request.
pub const MAX_CHAIN_DEPTH: u32 = 8;

/// Most chained calls one client request may lead to, counting every call
/// of every function its calls run.
pub const MAX_CHAINED_CALLS: u32 = 64;

/// The chained calls left to one client request's tree of calls; shared by
/// every sandbox in the tree through the callee requests' extensions.
#[derive(Debug)]
pub(crate) struct ChainBudget(AtomicU32);

impl Default for ChainBudget {
    fn default() -> Self {
        ChainBudget(AtomicU32::new(MAX_CHAINED_CALLS))
    }
}

impl ChainBudget {
    /// The budget its caller handed on to a request, if a call started it
    /// (a client's request gets one only when its guest first calls out,
    /// so the request path allocates nothing for it).
    pub(crate) fn inherited(extensions: &http::Extensions) -> Option<Arc<ChainBudget>> {
        extensions.get::<Arc<ChainBudget>>().cloned()
    }

    /// Takes one call from the budget; false when it is spent.
    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

/// The narrow handle a sandbox holds to reach the request path: runs
/// function `name` for `trigger` as its own request, and says how outbound
/// calls carry the trace (the dispatcher implements it). Nothing else of
/// the host is reachable from a sandbox.
pub(crate) trait Dispatch: Send + Sync {
    /// How the host's spans join distributed traces, if it traces.
    fn trace_context(&self) -> Option<&Arc<dyn TraceContext>>;

    /// Runs `request` with function `name`, started by `trigger`.
    fn run<'a>(
        self: Arc<Self>,
        name: &'a str,
        request: http::Request<WasiBody>,
        trigger: Trigger,
    ) -> Pin<Box<dyn Future<Output = http::Response<ResponseBody>> + Send + 'a>>;

    /// Sends a guest's allowed call to a destination outside the host for
    /// it, when this process may not open sockets itself (a guest worker
    /// asks its front process, which checks the allow-list again); gives
    /// `request` back when the caller sends it itself.
    fn send_outside(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
    ) -> Result<OutsideCall, Box<http::Request<WasiBody>>> {
        Err(Box::new(request))
    }
}

/// An outbound call another process makes for a guest.
pub(crate) type OutsideCall =
    Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, HttpError>> + Send>>;

/// Where a guest's chained calls come from: what a callee must be told.
/// Moved into the request's sandbox; cloned only for a chained call.
#[derive(Clone)]
pub(crate) struct ChainOrigin {
    /// The request path, to dispatch to.
    pub(crate) dispatch: Arc<dyn Dispatch>,
    /// The calls that led to the caller's request (0 for a client's).
    pub(crate) depth: u32,
    /// The caller's request id, passed on.
    pub(crate) request_id: Arc<str>,
    /// The caller's W3C `traceparent`, passed on when the guest's call
    /// sets none of its own.
    pub(crate) traceparent: Option<HeaderValue>,
    /// The calls the whole tree of this client request may still make;
    /// made on the first chained call of a request no call started.
    pub(crate) budget: Option<Arc<ChainBudget>>,
}

impl ChainOrigin {
    /// The depth of a request, from its (host-set) header.
    pub(crate) fn depth_of(headers: &http::HeaderMap) -> u32 {
        headers
            .get(&DEPTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Runs `request` with function `callee` for `caller`, in-process.
    pub(crate) async fn call(
        &self,
        caller: &str,
        callee: &str,
        request: http::Request<WasiBody>,
    ) -> http::Response<WasiBody> {
        let depth = self.depth.saturating_add(1);
        if depth > MAX_CHAIN_DEPTH {
            tracing::warn!(
                caller,
                callee,
                depth,
                "chained call refused: the chain is too deep"
            );
            return loop_detected(depth);
        }
        let budget = self.budget.clone().unwrap_or_default();
        if !budget.take() {
            tracing::warn!(
                caller,
                callee,
                "chained call refused: this request's calls spent their budget"
            );
            return refusal(
                http::StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "429 Too Many Requests: one request may lead to at most {MAX_CHAINED_CALLS} chained calls\n"
                ),
            );
        }
        let (mut parts, body) = request.into_parts();
        // As if mounted at `/` of `http://CALLEE.wisp.internal`: the callee
        // sees the authority it was called by (as Spin's callees see
        // `NAME.spin.internal`), so a guest that calls its own URL again
        // reaches itself.
        let domain = wisp_spec::settings::INTERNAL_DOMAIN;
        let authority = match callee {
            PUBLISH_TARGET => domain.to_owned(),
            SELF_TARGET => wisp_spec::settings::SPIN_SELF_HOST.to_owned(),
            callee => format!("{callee}.{domain}"),
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        parts.uri = http::Uri::try_from(format!("http://{authority}{path}"))
            .unwrap_or_else(|_| http::Uri::from_static("/"));
        let headers = &mut parts.headers;
        match HeaderValue::try_from(&authority) {
            Ok(host) => headers.insert(http::header::HOST, host),
            Err(_) => headers.remove(http::header::HOST),
        };
        // The guest may not claim what only the host says (a cron trigger,
        // an async call's id, a shallower depth).
        strip_host_headers(headers);
        headers.insert(
            TRIGGER_HEADER,
            HeaderValue::from_static(Trigger::Chain.as_str()),
        );
        if let Ok(value) = HeaderValue::try_from(caller) {
            headers.insert(CALLER_HEADER, value);
        }
        if let Ok(value) = HeaderValue::try_from(&*self.request_id) {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        headers.insert(DEPTH_HEADER, HeaderValue::from(depth));
        if let Some(traceparent) = &self.traceparent
            && !headers.contains_key(TRACEPARENT)
        {
            headers.insert(TRACEPARENT, traceparent.clone());
        }
        parts.extensions.insert(budget);
        let request = http::Request::from_parts(parts, body);
        // The callee runs on a task of its own: a WASI 0.3 caller polls
        // this call inside its store's event loop, and a 0.3 callee's own
        // event loop may not run inside another's on one thread.
        let dispatch = self.dispatch.clone();
        let callee = callee.to_owned();
        let run = async move { dispatch.run(&callee, request, Trigger::Chain).await };
        let mut task = AbortOnDrop(tokio::spawn(run.in_current_span()));
        match (&mut task.0).await {
            Ok(response) => response.map(into_wasi_body),
            Err(_) => refusal(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error: the called function's run failed\n".into(),
            ),
        }
    }
}

/// A spawned task that ends with whoever waits for it: a chained call
/// stops when its caller is torn down.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn into_wasi_body(body: ResponseBody) -> WasiBody {
    body.map_err(|_| HttpError::HttpResponseIncomplete)
        .boxed_unsync()
}

/// The answer to a call past [`MAX_CHAIN_DEPTH`].
fn loop_detected(depth: u32) -> http::Response<WasiBody> {
    refusal(
        http::StatusCode::LOOP_DETECTED,
        format!(
            "508 Loop Detected: this call would be number {depth} of one chain; at most {MAX_CHAIN_DEPTH} are allowed\n"
        ),
    )
}

/// A call answered by the host without running.
fn refusal(status: http::StatusCode, text: String) -> http::Response<WasiBody> {
    let mut response = http::Response::new(
        http_body_util::Full::new(bytes::Bytes::from(text))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}
