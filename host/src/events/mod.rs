//! Events: what runs a function besides a client's HTTP request.
//!
//! [`Trigger`] says what started a run; it reaches the guest as the
//! `x-wisp-trigger` header (which a client can never set: the host strips
//! it from public requests), the access log and `wisp_trigger_runs_total`.
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

/// Removes from a client's request the headers only the host may set
/// (what started a run, and where a chained call came from).
pub(crate) fn strip_host_headers(headers: &mut http::HeaderMap) {
    for name in [
        TRIGGER_HEADER,
        SCHEDULE_HEADER,
        chain::CALLER_HEADER,
        chain::DEPTH_HEADER,
    ] {
        headers.remove(name);
    }
}
