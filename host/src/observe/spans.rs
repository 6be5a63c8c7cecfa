//! Trace spans: what the host emits for distributed tracing.
//!
//! The library only emits `tracing` spans, all under target
//! [`SPAN_TARGET`]: one server span per request (named `METHOD /route`,
//! with the OpenTelemetry semantic-convention fields for HTTP and FaaS),
//! and under it `dispatch`, `instantiate`, `guest` and one client span per
//! outbound call. Field names follow `tracing-opentelemetry`'s conventions
//! (`otel.name`, `otel.kind`, `otel.status_code`), so an OpenTelemetry layer
//! exports them as they are. Which trace a span belongs to is the business
//! of whoever installs the subscriber: an embedder passes a [`TraceContext`]
//! in [`crate::HostConfig::trace_context`] (the CLI passes one backed by
//! OpenTelemetry), and the host asks it to continue an incoming
//! `traceparent`, to write one into each outbound request and for the trace
//! id its log lines carry. With no subscriber interested in the target, a
//! span costs one cached check.

use http::HeaderMap;
use tracing::Span;
use tracing::field::Empty;

/// The target of every span the host emits.
pub const SPAN_TARGET: &str = "wisp::span";

/// Joins the host's spans to distributed traces. Implement it over the
/// tracing stack you install (e.g. `tracing-opentelemetry` with a W3C
/// propagator).
pub trait TraceContext: Send + Sync + std::fmt::Debug + 'static {
    /// Makes `span`, not yet entered, continue the trace `headers` carry (a
    /// W3C `traceparent`), if any.
    fn continue_trace(&self, span: &Span, headers: &HeaderMap);

    /// Writes `span`'s trace context into `headers`, an outbound request's.
    fn inject(&self, span: &Span, headers: &mut HeaderMap);

    /// The trace id `span` belongs to (32 hex digits), if it has one.
    fn trace_id(&self, span: &Span) -> Option<String>;
}

/// The server span of a request for `function` at `route`.
pub(crate) fn request_span(
    method: &http::Method,
    route: &str,
    path: &str,
    function: &str,
    trigger: &str,
) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route,
        url.path = path,
        http.response.status_code = Empty,
        faas.name = function,
        faas.version = Empty,
        faas.trigger = trigger,
        faas.invocation_id = Empty,
    )
}

/// Records the answer on a request or client span: its status, and an
/// error status for a 5xx.
pub(crate) fn record_status(span: &Span, status: http::StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}

/// The span of dispatching a request to its version: waiting for a slot
/// (and, for a CGI guest, reading the body), then running it.
pub(crate) fn dispatch_span(request: &Span) -> Span {
    tracing::info_span!(target: SPAN_TARGET, parent: request, "dispatch")
}

/// The span of creating a request's sandbox.
pub(crate) fn instantiate_span(request: &Span) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: request,
        "instantiate",
        wisp.sandbox.prepared = false
    )
}

/// The span of taking a sandbox prepared ahead (see
/// `runtime/prepared.rs`): where a request would have instantiated.
pub(crate) fn prepared_span(request: &Span) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: request,
        "instantiate",
        wisp.sandbox.prepared = true
    )
}

/// The span of running a request's guest.
pub(crate) fn guest_span(request: &Span) -> Span {
    tracing::info_span!(target: SPAN_TARGET, parent: request, "guest")
}

/// The client span of a guest's outbound call to `uri`.
pub(crate) fn outbound_span(request: &Span, method: &http::Method, uri: &http::Uri) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: request,
        "outbound",
        otel.name = %method,
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = %method,
        url.full = %uri,
        server.address = uri.host().unwrap_or_default(),
        http.response.status_code = Empty,
    )
}
