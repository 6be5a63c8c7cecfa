//! A run's report carried in its response's trailers, so a call costs the
//! worker and the front one exchange, not two: the worker's response body
//! ([`Carrying`]) holds its end a moment (at most [`WAIT_FOR_REPORT`]) for
//! the run's report and adds it to the trailers; the front's
//! ([`Unpacking`]) takes it out of them before the client sees them. A run
//! still going when the response ends (work after the response) reports on
//! its own, as does one with much captured output.

use super::back::Back;
use super::link::LinkBody;
use super::remote::Reports;
use super::wire::{self, Finished, REPORT_HEADER};
use crate::runtime::body::{BoxError, ResponseBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

/// Most bytes of a guest's own trailers passed on (beside the report, all
/// must fit one frame of the link).
const MAX_GUEST_TRAILER_BYTES: usize = 64 << 10;

/// How long a worker's response holds its end for the run's report.
const WAIT_FOR_REPORT: Duration = Duration::from_millis(2);

/// The worker's response body of call `call`.
pub(crate) struct Carrying {
    inner: ResponseBody,
    call: u64,
    reports: Arc<Reports>,
    /// The guest's own trailers, held until the end.
    trailers: Option<http::HeaderMap>,
    /// Set once the guest's body has ended: the wait for the report.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl Carrying {
    pub(crate) fn new(inner: ResponseBody, call: u64, reports: Arc<Reports>) -> Carrying {
        Carrying {
            inner,
            call,
            reports,
            trailers: None,
            waiting: None,
            done: false,
        }
    }

    /// The end: the guest's trailers, with `report` when there is one.
    fn end(&mut self, report: Option<Finished>) -> Option<Result<Frame<Bytes>, BoxError>> {
        self.done = true;
        let mut trailers = self.trailers.take().unwrap_or_default();
        if let Some(value) = report.as_ref().and_then(wire::encode_header) {
            trailers.insert(REPORT_HEADER, value);
        }
        (!trailers.is_empty()).then(|| Ok(Frame::trailers(trailers)))
    }
}

impl Body for Carrying {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        while self.waiting.is_none() {
            match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_trailers() {
                    Ok(mut trailers) => {
                        wire::strip_worker_headers(&mut trailers);
                        let bytes: usize = trailers
                            .iter()
                            .map(|(name, value)| name.as_str().len() + value.len())
                            .sum();
                        if bytes > MAX_GUEST_TRAILER_BYTES {
                            // As an HTTP/2 peer would refuse them.
                            tracing::warn!(
                                "a guest's trailers of {bytes} bytes were dropped (at most {MAX_GUEST_TRAILER_BYTES})"
                            );
                            trailers.clear();
                        }
                        self.trailers = Some(trailers);
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(e)) => {
                    self.done = true;
                    self.reports.give_up(self.call);
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    // Most runs have reported by now: no timer for those.
                    if let Some(report) = self.reports.take_report(self.call, cx.waker()) {
                        return Poll::Ready(self.end(Some(report)));
                    }
                    self.waiting = Some(Box::pin(tokio::time::sleep(WAIT_FOR_REPORT)));
                }
            }
        }
        let call = self.call;
        if let Some(report) = self.reports.take_report(call, cx.waker()) {
            return Poll::Ready(self.end(Some(report)));
        }
        if let Some(waiting) = self.waiting.as_mut() {
            ready!(waiting.as_mut().poll(cx));
        }
        self.reports.give_up(call);
        Poll::Ready(self.end(None))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Carrying {
    fn drop(&mut self) {
        if !self.done {
            self.reports.give_up(self.call);
        }
    }
}

/// The front's view of a worker's response body: its report, when the
/// trailers carry one, goes to the call's books, and the rest reaches the
/// client. A client that stops reading before the trailers (an HTTP/1.1
/// response with a `Content-Length` is over at its last byte) leaves a
/// little for [`drain`] to read.
pub(crate) struct Unpacking {
    inner: Option<LinkBody>,
    back: Arc<Back>,
    call: u64,
}

impl Unpacking {
    pub(crate) fn new(inner: LinkBody, back: Arc<Back>, call: u64) -> Unpacking {
        Unpacking {
            inner: Some(inner),
            back,
            call,
        }
    }
}

/// Takes the report of call `call` out of `trailers`, to `back`'s books;
/// a report naming another call is dropped.
fn unpack(back: &Back, call: u64, trailers: &mut http::HeaderMap) {
    if let Some(report) = trailers
        .remove(REPORT_HEADER)
        .and_then(|v| wire::decode_header::<Finished>(&v))
        .filter(|report| report.call == call)
    {
        back.finish(report);
    }
}

impl Body for Unpacking {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(Pin::new(inner).poll_frame(cx));
        match frame {
            Some(Ok(frame)) => match frame.into_trailers() {
                Ok(mut trailers) => {
                    self.inner = None;
                    unpack(&self.back, self.call, &mut trailers);
                    if trailers.is_empty() {
                        Poll::Ready(None)
                    } else {
                        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                    }
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Some(Err(e)) => {
                self.inner = None;
                Poll::Ready(Some(Err(BoxError::from(e))))
            }
            None => {
                self.inner = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Unpacking {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(drain(inner, self.back.clone(), self.call));
        }
    }
}

/// Most bytes read after the client stopped, looking for the trailers.
const MAX_DRAINED_BYTES: usize = 64 << 10;

/// How long to look for them.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads what is left of a worker's response the client did not read (a
/// little, for a while) for the report in its trailers; past either bound,
/// the report comes on its own, or the call is settled when overdue.
async fn drain(mut inner: LinkBody, back: Arc<Back>, call: u64) {
    use http_body_util::BodyExt;
    let read = async {
        let mut drained = 0;
        while let Some(Ok(frame)) = inner.frame().await {
            match frame.into_trailers() {
                Ok(mut trailers) => return unpack(&back, call, &mut trailers),
                Err(frame) => {
                    drained += frame.data_ref().map_or(0, Bytes::len);
                    if drained > MAX_DRAINED_BYTES {
                        return;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}
