//! The access log: one line per request, through `tracing` (target
//! `wisp::access`), written in one place on the request path.
//!
//! A routed request's line is written when its response is over, not when
//! its head is ready: [`LoggedBody`] wraps the body and writes the line when
//! the body ends (`outcome=complete`) or is dropped or fails before its end
//! (`outcome=aborted`: the client went away, a limit cut the response off,
//! or the guest failed mid-stream), with the bytes actually sent. An
//! unrouted request gets its line at once.

use crate::observe::trace::RequestTrace;
use crate::runtime::body::{BoxError, ResponseBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// What one access-log line says about a request.
pub(crate) struct AccessRecord {
    pub(crate) method: http::Method,
    pub(crate) path: String,
    pub(crate) status: http::StatusCode,
    pub(crate) started: Instant,
    /// The function it was routed to; `None` when unrouted.
    pub(crate) function: Option<Arc<str>>,
    /// The version that served it; `None` when none ran.
    pub(crate) version: Option<u32>,
    pub(crate) trace: Arc<RequestTrace>,
    pub(crate) request_id: Arc<str>,
}

/// How a response ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Complete,
    Aborted,
}

impl AccessRecord {
    /// Writes the line now (for a response with nothing left to send).
    pub(crate) fn write_now(&self) {
        self.write(Outcome::Complete, 0);
    }

    /// Returns `body` wrapped so the line is written when it is over.
    pub(crate) fn write_when_sent(self, body: ResponseBody) -> ResponseBody {
        // hyper drops these bodies unread: over once the head is sent.
        let bodiless = self.method == http::Method::HEAD
            || self.status == http::StatusCode::NO_CONTENT
            || self.status == http::StatusCode::NOT_MODIFIED;
        LoggedBody {
            inner: body,
            record: self,
            sent: 0,
            outcome: bodiless.then_some(Outcome::Complete),
        }
        .boxed_unsync()
    }

    fn write(&self, outcome: Outcome, sent: u64) {
        let function = self.function.as_deref().unwrap_or("-");
        let version = self.version;
        tracing::info!(
            target: "wisp::access",
            method = %self.method,
            path = self.path,
            status = self.status.as_u16(),
            outcome = match outcome {
                Outcome::Complete => "complete",
                Outcome::Aborted => "aborted",
            },
            bytes_sent = sent,
            duration_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            function,
            version,
            instantiate_us = self.trace.instantiate().map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            request_id = &*self.request_id,
            trigger = self.trace.trigger.as_str(),
            trace_id = self.trace.trace_id.as_deref(),
            "request"
        );
    }
}

/// A response body that writes its request's access-log line when over.
struct LoggedBody {
    inner: ResponseBody,
    record: AccessRecord,
    sent: u64,
    outcome: Option<Outcome>,
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.outcome = Some(Outcome::Complete),
            Poll::Ready(Some(Err(_))) => this.outcome = Some(Outcome::Aborted),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.outcome = Some(Outcome::Complete);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let outcome = match self.outcome {
            Some(outcome) => outcome,
            // Never polled but nothing to send (an empty body): complete.
            None if self.inner.is_end_stream() => Outcome::Complete,
            None => Outcome::Aborted,
        };
        self.record.write(outcome, self.sent);
    }
}
