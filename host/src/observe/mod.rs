//! What operators see: Prometheus metrics, guest logs, usage metering and
//! trace spans. Each has one owner on the request path, so a request is
//! counted once.

pub(crate) mod history;
pub(crate) mod logs;
pub(crate) mod meter;
pub(crate) mod metrics;
pub mod spans;
