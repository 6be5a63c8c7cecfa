//! In-memory destinations for a guest's stdout and stderr, with byte caps.
//!
//! [`OutputCapture`] is handed to WASI as a stdout/stderr stream. When it is
//! full it either refuses further writes and remembers that (a CGI guest's
//! stdout, which is its response: an overflow is a response-size breach) or
//! keeps what it has and counts the rest as dropped (logs: a guest must never
//! grow host memory by printing).

use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// What happens to writes past the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Fail the write and mark the capture as overflowed.
    Refuse,
    /// Accept the write, keep nothing of it, count its bytes as dropped.
    Drop,
}

#[derive(Debug)]
struct Buffer {
    bytes: BytesMut,
    cap: usize,
    when_full: WhenFull,
    overflowed: bool,
    dropped: u64,
}

/// A capped in-memory output stream; clones share the same buffer.
#[derive(Debug, Clone)]
pub struct OutputCapture(Arc<Mutex<Buffer>>);

impl OutputCapture {
    /// A capture holding at most `cap` bytes.
    pub fn new(cap: usize, when_full: WhenFull) -> Self {
        OutputCapture(Arc::new(Mutex::new(Buffer {
            bytes: BytesMut::new(),
            cap,
            when_full,
            overflowed: false,
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

    /// True when a write was refused because the cap was reached.
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Bytes written past the cap and not kept.
    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Appends `data`, honouring the cap; returns how many bytes were taken
    /// (all of them, unless the write is refused).
    fn append(&self, data: &[u8]) -> Result<usize, ()> {
        let mut buffer = self.lock();
        let room = buffer.cap.saturating_sub(buffer.bytes.len());
        if data.len() <= room {
            buffer.bytes.extend_from_slice(data);
            return Ok(data.len());
        }
        match buffer.when_full {
            WhenFull::Refuse => {
                buffer.overflowed = true;
                Err(())
            }
            WhenFull::Drop => {
                buffer.bytes.extend_from_slice(&data[..room]);
                buffer.dropped += (data.len() - room) as u64;
                Ok(data.len())
            }
        }
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
        self.append(&bytes).map(drop).map_err(|()| {
            StreamError::LastOperationFailed(wasmtime::format_err!("output exceeds its size limit"))
        })
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        let buffer = self.lock();
        if buffer.when_full == WhenFull::Refuse && buffer.overflowed {
            return Err(StreamError::Closed);
        }
        // Always accept a write: an overflow is detected (and reported) in
        // `write`, which sees the real size.
        Ok(64 << 10)
    }
}

impl AsyncWrite for OutputCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.append(data)
                .map_err(|()| std::io::Error::other("output exceeds its size limit")),
        )
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
    fn refusing_capture_marks_overflow() {
        let out = OutputCapture::new(4, WhenFull::Refuse);
        assert_eq!(out.append(b"abc"), Ok(3));
        assert_eq!(out.append(b"de"), Err(()));
        assert!(out.overflowed());
        assert_eq!(&out.contents()[..], b"abc");
    }

    #[test]
    fn dropping_capture_keeps_the_head_and_counts_the_rest() {
        let out = OutputCapture::new(4, WhenFull::Drop);
        assert_eq!(out.append(b"abcdef"), Ok(6));
        assert_eq!(&out.contents()[..], b"abcd");
        assert_eq!(out.dropped(), 2);
        assert!(!out.overflowed());
    }
}
