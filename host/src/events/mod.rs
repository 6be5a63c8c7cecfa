//! Events: what runs a function besides a client's HTTP request.
//!
//! [`Trigger`] says what started a run; it reaches the guest as the
//! `x-wisp-trigger` header (which a client can never set: the host strips
//! every header of [`HOST_OWNED_HEADERS`] from every inbound request), the
//! access log and `wisp_trigger_runs_total`.
//! `cron.rs` fires schedules; `chain.rs` runs one function's call to
//! another in-process; `calls/` accepts, stores and runs async calls.

pub mod calls;
pub(crate) mod chain;
pub(crate) mod cron;

use http::HeaderName;

/// Request header telling the guest what started its run (`cron`); absent
/// for ordinary HTTP requests.
pub const TRIGGER_HEADER: HeaderName = HeaderName::from_static("x-wisp-trigger");

/// Request header carrying the schedule of a cron run.
pub const SCHEDULE_HEADER: HeaderName = HeaderName::from_static("x-wisp-schedule");

pub use wisp_spec::api::Trigger;

/// Every request header only the host sets for guests: what started a run,
/// a cron run's schedule, an async call's id and attempt, and where a
/// chained call came from. A later host-set header joins this list.
pub const HOST_OWNED_HEADERS: [HeaderName; 6] = [
    TRIGGER_HEADER,
    SCHEDULE_HEADER,
    calls::CALL_ID_HEADER,
    calls::ATTEMPT_HEADER,
    chain::CALLER_HEADER,
    chain::DEPTH_HEADER,
];

/// Removes from a request the headers only the host may set
/// ([`HOST_OWNED_HEADERS`]): every inbound request (a client's, a chained
/// call's, a stored async call's) passes here before the host sets its own.
pub(crate) fn strip_host_headers(headers: &mut http::HeaderMap) {
    for name in HOST_OWNED_HEADERS {
        headers.remove(name);
    }
}
