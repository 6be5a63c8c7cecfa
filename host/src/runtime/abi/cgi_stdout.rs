//! A CGI guest's stdout as a bounded pipe to its response.
//!
//! The guest writes into a window of at most [`WINDOW_BYTES`]; once the
//! window is full its writes wait (WASI backpressure) until the host takes
//! the bytes out to send them. So a guest that prints 50 MiB to a client that
//! reads slowly holds one window of memory, not 50 MiB. The pipe also counts
//! every byte against the function's response cap: past it, the guest's
//! writes fail and the pipe remembers the overflow.

use bytes::{Bytes, BytesMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Bytes of output held before the guest has to wait for the client.
pub const WINDOW_BYTES: usize = 128 << 10;

#[derive(Debug)]
struct Pipe {
    window: BytesMut,
    /// Bytes the window holds before the writer waits: [`WINDOW_BYTES`],
    /// or all of a cap no larger than that (so a small response is never
    /// streamed, and an overflow is always an error answer).
    window_limit: usize,
    written: u64,
    cap: u64,
    overflowed: bool,
    reader_gone: bool,
    writer: Option<Waker>,
    reader: Option<Waker>,
}

/// Both ends of the pipe; clones share it.
#[derive(Debug, Clone)]
pub struct StdoutPipe(Arc<Mutex<Pipe>>);

impl StdoutPipe {
    /// A pipe that accepts at most `cap` bytes in all.
    pub fn new(cap: u64) -> StdoutPipe {
        let window_limit = if cap <= WINDOW_BYTES as u64 {
            usize::MAX
        } else {
            WINDOW_BYTES
        };
        StdoutPipe(Arc::new(Mutex::new(Pipe {
            window: BytesMut::new(),
            window_limit,
            written: 0,
            cap,
            overflowed: false,
            reader_gone: false,
            writer: None,
            reader: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Pipe> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when the guest wrote past the cap.
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// True when the window is full (the guest waits for the reader).
    pub fn is_full(&self) -> bool {
        let pipe = self.lock();
        pipe.window.len() >= pipe.window_limit
    }

    /// The bytes in the window, left in place.
    pub fn peek(&self) -> Bytes {
        Bytes::copy_from_slice(&self.lock().window)
    }

    /// Takes what the window holds (possibly nothing), making room for the
    /// guest; registers `cx` to be woken by the next write.
    pub fn poll_take(&self, cx: &mut Context<'_>) -> Bytes {
        let mut pipe = self.lock();
        let taken = pipe.window.split().freeze();
        if let Some(writer) = pipe.writer.take() {
            writer.wake();
        }
        pipe.reader = Some(cx.waker().clone());
        taken
    }

    /// The reader is gone: further writes fail.
    pub fn close_reader(&self) {
        let mut pipe = self.lock();
        pipe.reader_gone = true;
        if let Some(writer) = pipe.writer.take() {
            writer.wake();
        }
    }

    fn room(pipe: &Pipe) -> usize {
        pipe.window_limit.saturating_sub(pipe.window.len())
    }
}

impl IsTerminal for StdoutPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StdoutPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StdoutPipe {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| {
            let mut pipe = self.lock();
            if pipe.reader_gone || pipe.overflowed || Self::room(&pipe) > 0 {
                return Poll::Ready(());
            }
            pipe.writer = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

impl OutputStream for StdoutPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        let mut pipe = self.lock();
        if pipe.reader_gone {
            return Err(StreamError::Closed);
        }
        pipe.written += bytes.len() as u64;
        if pipe.written > pipe.cap {
            pipe.overflowed = true;
            return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                "output exceeds its size limit"
            )));
        }
        pipe.window.extend_from_slice(&bytes);
        if let Some(reader) = pipe.reader.take() {
            reader.wake();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        let pipe = self.lock();
        if pipe.reader_gone || pipe.overflowed {
            return Err(StreamError::Closed);
        }
        Ok(Self::room(&pipe))
    }
}

impl tokio::io::AsyncWrite for StdoutPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let room = {
            let mut pipe = self.lock();
            if pipe.reader_gone || pipe.overflowed {
                return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
            }
            let room = Self::room(&pipe);
            if room == 0 {
                pipe.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            room
        };
        let n = room.min(data.len());
        let mut writer = self.get_mut().clone();
        match writer.write(Bytes::copy_from_slice(&data[..n])) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(std::io::Error::other("output exceeds its size limit"))),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_stops_the_writer_until_the_reader_takes_it() {
        let pipe = StdoutPipe::new(u64::MAX);
        let mut writer = pipe.clone();
        writer.write(Bytes::from(vec![b'x'; WINDOW_BYTES])).unwrap();
        assert!(pipe.is_full());
        assert_eq!(writer.check_write().unwrap(), 0);
        let waker = futures_util::task::noop_waker();
        let taken = pipe.poll_take(&mut Context::from_waker(&waker));
        assert_eq!(taken.len(), WINDOW_BYTES);
        assert_eq!(writer.check_write().unwrap(), WINDOW_BYTES);
    }

    #[test]
    fn writes_past_the_cap_fail_and_are_remembered() {
        let pipe = StdoutPipe::new(4);
        let mut writer = pipe.clone();
        writer.write(Bytes::from_static(b"abc")).unwrap();
        assert!(writer.write(Bytes::from_static(b"de")).is_err());
        assert!(pipe.overflowed());
        assert_eq!(pipe.peek(), "abc");
    }

    #[test]
    fn a_cap_within_one_window_is_never_streamed() {
        let pipe = StdoutPipe::new(WINDOW_BYTES as u64);
        let mut writer = pipe.clone();
        writer.write(Bytes::from(vec![b'x'; WINDOW_BYTES])).unwrap();
        assert!(!pipe.is_full());
        assert!(writer.write(Bytes::from_static(b"y")).is_err());
        assert!(pipe.overflowed());
    }
}
