//! Body types on the request path, and the two byte caps on them.
//!
//! [`LimitedBody`] streams a request body to a guest and fails once it passes
//! the function's request-body cap, remembering that it did so the host can
//! answer 413. [`CappedBody`] streams a guest's response and cuts it off at the
//! response-body cap with a logged error. Neither buffers: bytes flow through.

use crate::error::{InvokeError, Limit};
use crate::runtime::buffers::BufferCharge;
use crate::runtime::pacing::BodyTooSlow;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use wisp_spec::limits::Limits;
use wisp_spec::units;

/// The error type of bodies that cross the host.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body, whichever ABI produced it.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A request body of any type, boxed.
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete in-memory response body.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An error reading a request body: the client's stream failed, or the body
/// passed its cap.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    /// The body is larger than the function accepts.
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// Reading the client's body failed.
    #[error("reading the request body failed: {0}")]
    Read(BoxError),
}

impl From<RequestBodyError> for wasmtime_wasi_http::Error {
    fn from(e: RequestBodyError) -> Self {
        match e {
            RequestBodyError::TooLarge(limit) => {
                wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit))
            }
            RequestBodyError::Read(_) => wasmtime_wasi_http::Error::HttpProtocolError,
        }
    }
}

/// A request body that fails after `limit` bytes.
pub struct LimitedBody {
    inner: RequestBody,
    remaining: u64,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl LimitedBody {
    /// Wraps `inner`; `exceeded` is set if the body passes `limit` bytes.
    pub fn new(inner: RequestBody, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        LimitedBody {
            inner,
            remaining: limit,
            limit,
            exceeded,
        }
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = &mut *self;
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(RequestBodyError::Read(e)))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > this.remaining {
                this.exceeded.store(true, Ordering::Relaxed);
                this.remaining = 0;
                return Poll::Ready(Some(Err(RequestBodyError::TooLarge(this.limit))));
            }
            this.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body cut off, with an error, after `limit` bytes.
pub struct CappedBody<B> {
    inner: B,
    remaining: u64,
    limit: u64,
    function: Arc<str>,
}

impl<B> CappedBody<B> {
    /// Wraps a guest's response body for `function`.
    pub fn new(inner: B, limit: u64, function: Arc<str>) -> Self {
        CappedBody {
            inner,
            remaining: limit,
            limit,
            function,
        }
    }
}

impl<B> Body for CappedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > this.remaining {
                this.remaining = 0;
                tracing::error!(
                    function = %this.function,
                    limit_bytes = this.limit,
                    "response body exceeds the function's limit; cutting the response off"
                );
                return Poll::Ready(Some(Err(format!(
                    "response body exceeds the limit of {} bytes",
                    this.limit
                )
                .into())));
            }
            this.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads a response body to its end (so a streaming guest finishes),
/// keeping its first `max` bytes: the kept bytes, the full length, and
/// whether it was cut (or failed mid-stream: what arrived is the answer).
pub(crate) async fn read_prefix(mut body: ResponseBody, max: usize) -> (Bytes, u64, bool) {
    let mut kept = BytesMut::new();
    let mut total = 0u64;
    let mut cut = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            cut = true;
            break;
        };
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
            let room = max.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    (kept.freeze(), total, cut || total > max as u64)
}

/// Reads a whole request body (a CGI guest's, an async call's), within
/// the function's cap and the buffer budget.
pub(crate) async fn read_whole(
    body: RequestBody,
    limits: &Limits,
    charge: &mut BufferCharge,
) -> Result<Bytes, InvokeError> {
    let mut body = LimitedBody::new(
        body,
        limits.max_request_body_bytes,
        Arc::new(AtomicBool::new(false)),
    );
    // Sized from the declared length (within the cap), so the buffer does
    // not grow by doubling; whatever capacity it takes is charged.
    let declared = body.size_hint().exact().unwrap_or(0);
    let mut bytes = BytesMut::with_capacity(
        usize::try_from(declared.min(limits.max_request_body_bytes)).unwrap_or(0),
    );
    charge.grow(bytes.capacity() as u64)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e {
            RequestBodyError::TooLarge(_) => InvokeError::limit(
                Limit::RequestBody,
                format!(
                    "the request body exceeds the function's limit of {}",
                    units::format_size(limits.max_request_body_bytes)
                ),
            ),
            RequestBodyError::Read(e) if e.downcast_ref::<BodyTooSlow>().is_some() => {
                InvokeError::limit(Limit::RequestBodyTime, e.to_string())
            }
            RequestBodyError::Read(e) => {
                InvokeError::BadRequest(format!("reading the request body failed: {e}"))
            }
        })?;
        if let Some(data) = frame.data_ref() {
            let before = bytes.capacity();
            bytes.extend_from_slice(data);
            charge.grow((bytes.capacity() - before) as u64)?;
        }
    }
    Ok(bytes.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    fn chunks(parts: &[&'static [u8]]) -> RequestBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn limited_body_passes_bodies_within_the_limit() {
        let flag = Arc::new(AtomicBool::new(false));
        let body = LimitedBody::new(chunks(&[b"abc", b"def"]), 6, flag.clone());
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abcdef");
        assert!(!flag.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn limited_body_fails_past_the_limit_and_says_so() {
        let flag = Arc::new(AtomicBool::new(false));
        let body = LimitedBody::new(chunks(&[b"abc", b"defg"]), 6, flag.clone());
        let err = body.collect().await.unwrap_err();
        assert!(matches!(err, RequestBodyError::TooLarge(6)));
        assert!(flag.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn capped_body_errors_once_past_the_cap() {
        let ok = CappedBody::new(chunks(&[b"abc"]), 3, "f".into());
        assert_eq!(&ok.collect().await.unwrap().to_bytes()[..], b"abc");
        let cut = CappedBody::new(chunks(&[b"abc", b"d"]), 3, "f".into());
        assert!(cut.collect().await.is_err());
    }
}
