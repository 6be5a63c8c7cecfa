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

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A client's HTTP request.
    Http,
    /// A cron schedule's tick.
    Cron,
    /// Another function's call to `http://NAME.wisp.internal`.
    Chain,
    /// A stored async call (`Prefer: respond-async`).
    Async,
}

impl Trigger {
    /// Its name in headers, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Cron => "cron",
            Trigger::Chain => "chain",
            Trigger::Async => "async",
        }
    }
}
