//! What operators see: Prometheus metrics, guest logs, and usage metering.
//! Each has one owner on the request path, so a request is counted once.

pub(crate) mod logs;
pub(crate) mod meter;
pub(crate) mod metrics;
