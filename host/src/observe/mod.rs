//! What operators see: Prometheus metrics, guest logs, usage metering,
//! trace spans, and each request's id and trace context. Each has one owner on the request path, so a request is
//! counted once.

pub(crate) mod books;
pub(crate) mod history;
pub(crate) mod logs;
pub(crate) mod meter;
pub(crate) mod metrics;
pub mod spans;
pub(crate) mod trace;
