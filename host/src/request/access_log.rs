//! The access log: one line per request, through `tracing` (target
//! `wisp::access`), written in one place on the request path.

use crate::request::trace::RequestTrace;
use std::time::Duration;

/// What one access-log line says about a request.
pub(crate) struct AccessRecord<'a> {
    pub(crate) method: &'a http::Method,
    pub(crate) path: &'a str,
    pub(crate) status: http::StatusCode,
    pub(crate) elapsed: Duration,
    pub(crate) function: &'a str,
    pub(crate) version: u32,
    pub(crate) trace: &'a RequestTrace,
    pub(crate) request_id: &'a str,
}

impl AccessRecord<'_> {
    /// Writes the line.
    pub(crate) fn write(&self) {
        tracing::info!(
            target: "wisp::access",
            method = %self.method,
            path = self.path,
            status = self.status.as_u16(),
            duration_us = u64::try_from(self.elapsed.as_micros()).unwrap_or(u64::MAX),
            function = self.function,
            version = self.version,
            instantiate_us = self.trace.instantiate().map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            request_id = self.request_id,
            "request"
        );
    }
}
