//! Captured stdout and stderr with a hard cap: a write past the cap keeps
//! what fits and then ends the job (rather than handing the guest an error it
//! may ignore while it spins).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::outcome::Stream;

/// The error that ends a job whose output exceeded its cap.
#[derive(Debug, thiserror::Error)]
#[error("{stream} exceeded its limit of {limit} bytes")]
pub struct OutputLimitExceeded {
    /// The stream that overflowed.
    pub stream: Stream,
    /// The cap in bytes.
    pub limit: usize,
}

/// A capped in-memory output stream. Clones share the same buffer.
#[derive(Clone)]
pub struct CappedOutput {
    stream: Stream,
    limit: usize,
    buffer: Arc<Mutex<Vec<u8>>>,
    overflowed: Arc<AtomicBool>,
}

impl CappedOutput {
    /// An empty stream that keeps at most `limit` bytes.
    pub fn new(stream: Stream, limit: usize) -> Self {
        Self {
            stream,
            limit,
            buffer: Arc::default(),
            overflowed: Arc::default(),
        }
    }

    /// The bytes written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True once the guest tried to write past the cap.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The error reported when the cap was exceeded.
    pub fn limit_error(&self) -> OutputLimitExceeded {
        OutputLimitExceeded {
            stream: self.stream,
            limit: self.limit,
        }
    }

    /// Appends what fits; returns false if `bytes` didn't fit entirely.
    fn append(&self, bytes: &[u8]) -> bool {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.limit.saturating_sub(buffer.len());
        let take = room.min(bytes.len());
        buffer.extend_from_slice(&bytes[..take]);
        if take < bytes.len() {
            self.overflowed.store(true, Ordering::Relaxed);
            false
        } else {
            true
        }
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        if self.append(&bytes) {
            Ok(())
        } else {
            Err(StreamError::Trap(wasmtime::Error::new(self.limit_error())))
        }
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always accept a full write so that an overflowing write reaches
        // `write` and ends the job, instead of being split or refused.
        Ok(64 * 1024)
    }
}

impl AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.append(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(io::Error::other(self.limit_error())))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
