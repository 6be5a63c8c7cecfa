//! Events: what runs a function besides a client's HTTP request.
//!
//! [`Trigger`] says what started a run; it reaches the guest as the
//! `x-wisp-trigger` header (which a client can never set: the host strips
//! every header of `wisp_spec::headers::HOST_OWNED_HEADERS` from every
//! inbound request), the
//! access log and `wisp_trigger_runs_total`.
//! `cron.rs` fires schedules; `chain.rs` runs one function's call to
//! another in-process; `calls/` accepts, stores and runs async calls.

pub mod calls;
pub(crate) mod cron;

pub use wisp_spec::api::Trigger;
