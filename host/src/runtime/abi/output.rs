//! In-memory destinations for a guest's log output, with byte caps.
//!
//! [`OutputCapture`] is handed to WASI as a stdout/stderr stream whose bytes
//! become the function's logs. When it is full it keeps what it has and
//! counts the rest as dropped: a guest must never grow host memory by
//! printing. (A CGI guest's stdout is its response, and goes through
//! `cgi_stdout` instead.)

use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

#[derive(Debug)]
struct Buffer {
    bytes: BytesMut,
    cap: usize,
    dropped: u64,
}

/// A capped in-memory output stream; clones share the same buffer.
#[derive(Debug, Clone)]
pub struct OutputCapture(Arc<Mutex<Buffer>>);

impl OutputCapture {
    /// A capture holding at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        OutputCapture(Arc::new(Mutex::new(Buffer {
            bytes: BytesMut::new(),
            cap,
            dropped: 0,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A poisoned lock only means a writer panicked mid-append; the bytes
        // are still a valid prefix, so keep using them.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Everything captured so far.
    pub fn contents(&self) -> Bytes {
        self.lock().bytes.clone().freeze()
    }

    /// Everything captured so far, leaving the capture empty (a reused
    /// instance's output, handed to each request as it ends).
    pub fn take(&self) -> Bytes {
        self.lock().bytes.split().freeze()
    }

    /// Bytes written past the cap and not kept.
    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Appends what fits of `data` under the cap and counts the rest as
    /// dropped; every byte counts as written.
    fn append(&self, data: &[u8]) -> usize {
        let mut buffer = self.lock();
        let room = buffer.cap.saturating_sub(buffer.bytes.len());
        let kept = data.len().min(room);
        buffer.bytes.extend_from_slice(&data[..kept]);
        buffer.dropped += (data.len() - kept) as u64;
        data.len()
    }
}

impl IsTerminal for OutputCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputCapture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputCapture {
    async fn ready(&mut self) {}
}

impl OutputStream for OutputCapture {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always accept a write: what passes the cap is dropped in `write`.
        Ok(64 << 10)
    }
}

impl AsyncWrite for OutputCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(self.append(data)))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_capture_keeps_the_head_and_counts_the_rest() {
        let out = OutputCapture::new(4);
        assert_eq!(out.append(b"abcdef"), 6);
        assert_eq!(&out.contents()[..], b"abcd");
        assert_eq!(out.dropped(), 2);
    }
}
