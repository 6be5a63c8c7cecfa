//! Request ids and the per-request trace the access log reports.
//!
//! Every request gets an id: the client's `x-request-id` when it is sane,
//! else the trace id of a W3C `traceparent`, else a fresh random one. The id
//! goes to the guest (as `x-request-id`), into its log lines, onto the
//! response and into the access log.

use super::spans::{self, TraceContext};
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::Span;
use wisp_spec::api::Trigger;

pub use wisp_spec::headers::REQUEST_ID_HEADER;

/// Longest client-supplied request id accepted.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of a request with `headers`.
pub fn request_id(headers: &HeaderMap) -> String {
    if let Some(id) = headers
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        && !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.bytes().all(|b| b.is_ascii_graphic())
    {
        return id.to_owned();
    }
    if let Some(trace_id) = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(traceparent_trace_id)
    {
        return trace_id.to_owned();
    }
    format!("{:032x}", fastrand::u128(..))
}

/// The trace id of a `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), unless
/// it is malformed or all zeros.
fn traceparent_trace_id(value: &str) -> Option<&str> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = hex(version, 2) && hex(trace_id, 32) && hex(parent, 16) && hex(flags, 2);
    (valid && trace_id.bytes().any(|b| b != b'0')).then_some(trace_id)
}

/// What the request path learns about one request while serving it. It
/// lives as long as the request: until its response is sent and its guest
/// has ended.
#[derive(Debug)]
pub struct RequestTrace {
    /// What started the request.
    pub trigger: Trigger,
    /// Its server span (see `observe/spans.rs`), the parent of its guest's
    /// spans; it ends with the request.
    pub span: Span,
    /// The distributed trace it belongs to, when the host has a
    /// [`crate::observe::spans::TraceContext`].
    pub trace_id: Option<Arc<str>>,
    instantiate_ns: AtomicU64,
}

impl Default for RequestTrace {
    /// An HTTP request in no span.
    fn default() -> Self {
        RequestTrace::new(Trigger::Http, Span::none(), None)
    }
}

impl RequestTrace {
    /// The trace of a request `trigger` started, in `span`.
    pub fn new(trigger: Trigger, span: Span, trace_id: Option<Arc<str>>) -> RequestTrace {
        RequestTrace {
            trigger,
            span,
            trace_id,
            instantiate_ns: AtomicU64::new(0),
        }
    }

    /// Records how long the sandbox took to create.
    pub fn set_instantiate(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.instantiate_ns.store(ns, Ordering::Relaxed);
    }

    /// How long the sandbox took to create, once known.
    pub fn instantiate(&self) -> Option<Duration> {
        match self.instantiate_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }
}

/// A request's identity and trace, made as it enters the request path.
pub(crate) struct Traced {
    /// Its id (see [`request_id`]).
    pub(crate) request_id: Arc<str>,
    /// The id as a header value, when it is one (it goes on the response).
    pub(crate) id_header: Option<HeaderValue>,
    /// Its span and what it learns while it runs.
    pub(crate) trace: Arc<RequestTrace>,
}

/// Which run a request is, for its span.
pub(crate) struct RunOf<'a> {
    /// The function's route.
    pub(crate) route: &'a str,
    /// The function's name.
    pub(crate) function: &'a str,
    /// The version that runs it.
    pub(crate) version: u32,
    /// What started it.
    pub(crate) trigger: Trigger,
}

/// Gives `request` its id (set as `x-request-id` for the guest) and its
/// server span, continuing the client's distributed trace when the host
/// has a [`TraceContext`].
pub(crate) fn begin<B>(
    request: &mut http::Request<B>,
    run: RunOf<'_>,
    context: Option<&Arc<dyn TraceContext>>,
) -> Traced {
    let id = request_id(request.headers());
    let id_header = HeaderValue::try_from(id.as_str()).ok();
    if let Some(value) = &id_header {
        request
            .headers_mut()
            .insert(REQUEST_ID_HEADER, value.clone());
    }
    let span = spans::request_span(
        request.method(),
        run.route,
        request.uri().path(),
        run.function,
        run.trigger.as_str(),
    );
    span.record("faas.version", run.version);
    let trace_id = context.and_then(|context| {
        context.continue_trace(&span, request.headers());
        context.trace_id(&span).map(Arc::from)
    });
    Traced {
        request_id: Arc::from(id),
        id_header,
        trace: Arc::new(RequestTrace::new(run.trigger, span, trace_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(HeaderName::try_from(*name).unwrap(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_sane_client_id_is_kept() {
        assert_eq!(
            request_id(&headers(&[("x-request-id", "abc-123")])),
            "abc-123"
        );
    }

    #[test]
    fn traceparent_supplies_the_trace_id() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            request_id(&headers(&[("traceparent", tp)])),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let zeros = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        assert_ne!(
            request_id(&headers(&[("traceparent", zeros)])),
            "00000000000000000000000000000000"
        );
    }

    #[test]
    fn otherwise_a_fresh_id_is_generated() {
        let long = "x".repeat(200);
        let a = request_id(&headers(&[("x-request-id", &long)]));
        let b = request_id(&HeaderMap::new());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
