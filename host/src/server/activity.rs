//! What one connection is doing, so idle and stalled connections can be
//! closed whatever the protocol.
//!
//! hyper closes an HTTP/1 connection whose headers are slow, but has no such
//! timer for HTTP/2, and neither protocol closes a connection whose client
//! stops reading a response. [`Activity`] counts a connection's open
//! requests (a request is open until its response body is done or dropped)
//! and notes the last time anything moved; [`TrackedBody`] wraps each
//! response body to keep it up to date. The serve loop asks
//! [`Activity::verdict`] on a timer.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The timers a connection is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// From accept to the first request.
    pub first_request: Duration,
    /// From the end of the last response to the next request.
    pub idle: Duration,
    /// How long a response may wait for the client to read it.
    pub write: Duration,
}

/// What the serve loop should do with a connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Leave it be.
    Keep,
    /// No request came within the first-request timeout.
    NeverUsed,
    /// It has been idle past the idle timeout.
    Idle,
    /// A response has waited for the client past the write timeout.
    Stalled,
}

/// One connection's open requests and last progress.
pub(crate) struct Activity {
    born: Instant,
    used: AtomicBool,
    open: AtomicUsize,
    /// Response bodies that handed hyper a frame and were not polled since:
    /// hyper polls again once it has written the frame out.
    unwritten: AtomicUsize,
    last_progress_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            used: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            unwritten: AtomicUsize::new(0),
            last_progress_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_progress_ms.store(now, Ordering::Relaxed);
    }

    /// A request arrived; it stays open until the returned guard (moved into
    /// its response's [`TrackedBody`]) is dropped.
    pub(crate) fn request_started(self: &Arc<Self>) -> OpenRequest {
        self.used.store(true, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        self.touch();
        OpenRequest(self.clone())
    }

    /// True when no request is open.
    pub(crate) fn is_idle(&self) -> bool {
        self.open.load(Ordering::Relaxed) == 0
    }

    /// Whether the connection should be closed now.
    pub(crate) fn verdict(&self, timeouts: &Timeouts) -> Verdict {
        let now = self.born.elapsed();
        let quiet = now.saturating_sub(Duration::from_millis(
            self.last_progress_ms.load(Ordering::Relaxed),
        ));
        if self.is_idle() {
            if !self.used.load(Ordering::Relaxed) {
                if now >= timeouts.first_request {
                    return Verdict::NeverUsed;
                }
            } else if quiet >= timeouts.idle {
                return Verdict::Idle;
            }
        } else if self.unwritten.load(Ordering::Relaxed) > 0 && quiet >= timeouts.write {
            return Verdict::Stalled;
        }
        Verdict::Keep
    }
}

/// One open request of a connection; dropping it closes the request (also
/// when the handler is cancelled before it answers).
pub(crate) struct OpenRequest(Arc<Activity>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.touch();
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its connection's [`Activity`] up to date.
pub(crate) struct TrackedBody<B> {
    inner: B,
    request: OpenRequest,
    unwritten: bool,
}

impl<B> TrackedBody<B> {
    /// Wraps the response body of `request`.
    pub(crate) fn new(inner: B, request: OpenRequest) -> Self {
        TrackedBody {
            inner,
            request,
            unwritten: false,
        }
    }

    fn written(&mut self) {
        if std::mem::take(&mut self.unwritten) {
            self.request.0.unwritten.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<B> Body for TrackedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        this.written();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            this.request.0.touch();
            this.unwritten = true;
            this.request.0.unwritten.fetch_add(1, Ordering::Relaxed);
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

impl<B> Drop for TrackedBody<B> {
    fn drop(&mut self) {
        self.written();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    /// Wide margins (500 ms bounds, 600 ms sleeps): a sleep is never shorter
    /// than asked, and a loaded machine gets 500 ms for the checks that must
    /// come before a bound.
    fn timeouts(ms: u64) -> Timeouts {
        let t = Duration::from_millis(ms);
        Timeouts {
            first_request: t,
            idle: t,
            write: t,
        }
    }

    #[tokio::test]
    async fn a_connection_that_never_sends_a_request_is_closed() {
        let activity = Activity::new();
        assert_eq!(activity.verdict(&timeouts(500)), Verdict::Keep);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(activity.verdict(&timeouts(500)), Verdict::NeverUsed);
    }

    #[tokio::test]
    async fn an_open_request_keeps_its_connection_until_its_body_is_done() {
        let activity = Activity::new();
        let request = activity.request_started();
        let body = TrackedBody::new(Full::new(Bytes::from_static(b"hi")), request);
        tokio::time::sleep(Duration::from_millis(600)).await;
        // Open and nothing unwritten: the guest may be computing.
        assert_eq!(activity.verdict(&timeouts(500)), Verdict::Keep);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hi");
        assert!(activity.is_idle());
        assert_eq!(activity.verdict(&timeouts(500)), Verdict::Keep);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(activity.verdict(&timeouts(500)), Verdict::Idle);
    }

    #[tokio::test]
    async fn a_frame_the_client_does_not_take_stalls_the_connection() {
        let activity = Activity::new();
        let request = activity.request_started();
        let mut body = TrackedBody::new(Full::new(Bytes::from_static(b"hi")), request);
        let _frame = body.frame().await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(activity.verdict(&timeouts(500)), Verdict::Stalled);
        drop(body);
        assert!(activity.is_idle());
    }
}
