//! A request body must keep arriving: [`PacedBody`] fails one that stalls or
//! trickles.
//!
//! Two bounds, as nginx's `client_body_timeout` and Apache's
//! `mod_reqtimeout` `MinRate` do:
//!
//! * **idle**: no new bytes for `idle` (default [`DEFAULT_BODY_IDLE_TIMEOUT`]);
//! * **rate**: after a grace of `idle`, the body must average at least
//!   `min_bytes_per_sec` (default [`DEFAULT_MIN_BODY_RATE`]).
//!
//! Only the client's time counts: the clock runs while the reader waits for
//! bytes, not while a busy guest leaves the body unread.
//!
//! Breaching either ends the body with [`BodyTooSlow`] and sets the shared
//! flag, so the host answers `408 Request Timeout` (and closes an HTTP/1
//! connection, whose unread body cannot be skipped).
//! The timer is one `Sleep`, made the first time the reader has to wait and
//! re-armed per wait: no task, no thread, and nothing for a body that never
//! keeps its reader waiting.

use crate::runtime::body::{BoxError, RequestBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Default longest pause between two pieces of a request body.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default lowest average rate of a request body, in bytes per second,
/// enforced once the body has taken longer than its idle timeout.
pub const DEFAULT_MIN_BODY_RATE: u64 = 1024;

/// A request body, paced unless it is already over (a GET's); `too_slow`
/// is set if it arrives too slowly.
pub(crate) fn paced<B>(body: B, pacing: BodyPacing, too_slow: &Arc<AtomicBool>) -> RequestBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let body = body.map_err(Into::into).boxed_unsync();
    if Body::is_end_stream(&body) {
        body
    } else {
        PacedBody::new(body, pacing, too_slow.clone()).boxed_unsync()
    }
}

/// How fast a request body must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPacing {
    /// Longest pause between two pieces; also the grace before the rate counts.
    pub idle: Duration,
    /// Lowest average rate after the grace, in bytes per second (0: none).
    pub min_bytes_per_sec: u64,
}

impl Default for BodyPacing {
    fn default() -> Self {
        BodyPacing {
            idle: DEFAULT_BODY_IDLE_TIMEOUT,
            min_bytes_per_sec: DEFAULT_MIN_BODY_RATE,
        }
    }
}

/// The error a too-slow body ends with.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body arrived too slowly (it must not pause for {idle:?} and must average {rate} bytes/s)"
)]
pub struct BodyTooSlow {
    idle: Duration,
    rate: u64,
}

/// A request body held to a [`BodyPacing`].
pub struct PacedBody {
    inner: RequestBody,
    pacing: BodyPacing,
    received: u64,
    /// Time spent waiting for the client, before the current wait.
    waited: Duration,
    /// When the current wait for the client began.
    waiting_since: Option<Instant>,
    deadline: Option<Pin<Box<Sleep>>>,
    too_slow: Arc<AtomicBool>,
}

impl PacedBody {
    /// Paces `inner`; `too_slow` is set if the body breaches `pacing`.
    pub fn new(inner: RequestBody, pacing: BodyPacing, too_slow: Arc<AtomicBool>) -> PacedBody {
        PacedBody {
            inner,
            pacing,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            deadline: None,
            too_slow,
        }
    }

    /// The latest instant the next piece may arrive, for a wait that began
    /// at `since`.
    fn deadline_from(&self, since: Instant) -> Instant {
        let idle = since + self.pacing.idle;
        if self.pacing.min_bytes_per_sec == 0 {
            return idle;
        }
        // Client time `received` bytes may take at the minimum rate.
        let allowed =
            Duration::from_secs_f64(self.received as f64 / self.pacing.min_bytes_per_sec as f64)
                .max(self.pacing.idle);
        idle.min(since + allowed.saturating_sub(self.waited))
    }
}

impl Body for PacedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(since) = this.waiting_since.take() {
                this.waited += since.elapsed();
            }
            if let Some(Ok(frame)) = &frame
                && let Some(data) = frame.data_ref()
            {
                this.received += data.len() as u64;
            }
            return Poll::Ready(frame);
        }
        let deadline = match this.waiting_since {
            Some(_) => this.deadline.as_mut(),
            None => {
                let now = Instant::now();
                this.waiting_since = Some(now);
                let at = this.deadline_from(now);
                let sleep = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                sleep.as_mut().reset(at);
                Some(sleep)
            }
        };
        if deadline.is_none_or(|sleep| sleep.as_mut().poll(cx).is_pending()) {
            return Poll::Pending;
        }
        this.too_slow.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(Box::new(BodyTooSlow {
            idle: this.pacing.idle,
            rate: this.pacing.min_bytes_per_sec,
        }))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    /// A body yielding `pieces` of `size` bytes, one every `every`.
    fn trickle(pieces: usize, size: usize, every: Duration) -> RequestBody {
        let stream = futures_util::stream::unfold(0, move |sent| async move {
            if sent == pieces {
                return None;
            }
            tokio::time::sleep(every).await;
            let frame: Result<Frame<Bytes>, BoxError> =
                Ok(Frame::data(Bytes::from(vec![b'x'; size])));
            Some((frame, sent + 1))
        });
        StreamBody::new(stream).boxed_unsync()
    }

    fn pacing(idle_ms: u64, rate: u64) -> BodyPacing {
        BodyPacing {
            idle: Duration::from_millis(idle_ms),
            min_bytes_per_sec: rate,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_passes() {
        let flag = Arc::new(AtomicBool::new(false));
        let body = PacedBody::new(
            trickle(20, 1000, Duration::from_millis(50)),
            pacing(100, 1000),
            flag.clone(),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 20_000);
        assert!(!flag.load(Ordering::Relaxed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_idle_timeout() {
        let flag = Arc::new(AtomicBool::new(false));
        let body = PacedBody::new(
            trickle(2, 10, Duration::from_millis(500)),
            pacing(100, 0),
            flag.clone(),
        );
        let error = body.collect().await.unwrap_err();
        assert!(error.downcast_ref::<BodyTooSlow>().is_some());
        assert!(flag.load(Ordering::Relaxed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_below_the_minimum_rate_fails_after_the_grace() {
        let flag = Arc::new(AtomicBool::new(false));
        // One byte every 50 ms (20 B/s) never pauses for the 100 ms idle
        // timeout, but is far below 1000 B/s.
        let began = Instant::now();
        let body = PacedBody::new(
            trickle(1000, 1, Duration::from_millis(50)),
            pacing(100, 1000),
            flag.clone(),
        );
        assert!(body.collect().await.is_err());
        assert!(flag.load(Ordering::Relaxed));
        assert!(
            began.elapsed() < Duration::from_millis(300),
            "{:?}",
            began.elapsed()
        );
    }
}
